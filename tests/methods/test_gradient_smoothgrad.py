import keras
import numpy as np
import pytest
from analytic_models import UNIT, exp_model, linear_model, small_cnn

from medxai import Gradient, IntegratedGradients, SmoothGrad
from medxai.methods._engine.baselines import make_baselines

SHAPE = (6, 6, 1)


def rand(shape, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(np.float32)


def test_gradient_of_exp_model_is_analytic():
    model, v = exp_model(SHAPE)
    x = rand((2, *SHAPE))
    signed = Gradient(model, absolute=False).attribute(x, UNIT)
    for i in range(2):
        np.testing.assert_allclose(signed[i].ravel(), np.exp(v @ x[i].ravel()) * v, rtol=1e-5)
    np.testing.assert_allclose(Gradient(model).attribute(x, UNIT), np.abs(signed))


def test_smoothgrad_with_zero_noise_equals_gradient():
    model = small_cnn(SHAPE)
    x = rand((3, *SHAPE))
    signed = Gradient(model, absolute=False).attribute(x, [0, 1, 0])
    smooth = SmoothGrad(model, noise=0.0, samples=4).attribute(x, [0, 1, 0])
    np.testing.assert_allclose(smooth, signed, rtol=1e-5, atol=1e-8)
    smooth_abs = SmoothGrad(model, noise=0.0, samples=4, base_params={"absolute": True}).attribute(x, [0, 1, 0])
    np.testing.assert_allclose(smooth_abs, Gradient(model).attribute(x, [0, 1, 0]), rtol=1e-5, atol=1e-8)


def test_zero_noise_statistics():
    model = small_cnn(SHAPE)
    x = rand((2, *SHAPE))
    g = Gradient(model, absolute=False).attribute(x, 1)
    squared = SmoothGrad(model, noise=0.0, samples=3, statistic="squared").attribute(x, 1)
    np.testing.assert_allclose(squared, g**2, rtol=1e-5, atol=1e-10)
    variance = SmoothGrad(model, noise=0.0, samples=3, statistic="variance").attribute(x, 1)
    np.testing.assert_allclose(variance, 0, atol=1e-10)


def test_same_seed_same_result_other_seed_other_result():
    model = small_cnn(SHAPE)
    x = rand((2, *SHAPE))
    a = SmoothGrad(model, samples=5, seed=3).attribute(x, 0)
    b = SmoothGrad(model, samples=5, seed=3).attribute(x, 0)
    c = SmoothGrad(model, samples=5, seed=4).attribute(x, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_noise_does_not_depend_on_batch_position():
    model = small_cnn(SHAPE)
    x = rand((3, *SHAPE))
    together = SmoothGrad(model, samples=5).attribute(x, 1)
    alone = SmoothGrad(model, samples=5).attribute(x[2:], 1)
    np.testing.assert_allclose(together[2], alone[0], rtol=1e-5, atol=1e-8)


def test_variance_is_non_negative_and_positive_with_noise():
    model = small_cnn(SHAPE)
    variance = SmoothGrad(model, samples=6, statistic="variance").attribute(rand((2, *SHAPE)), 0)
    assert variance.min() >= 0
    assert variance.max() > 0


def test_smoothgrad_noise_levels():
    # For a linear model the gradient is the same everywhere, so any noise leaves SmoothGrad unchanged;
    # the variance statistic then measures nothing but float noise.
    model, weights, _ = linear_model(SHAPE, n_classes=2)
    x = rand((1, *SHAPE))
    smooth = SmoothGrad(model, noise=0.5, samples=4).attribute(x, 1)
    np.testing.assert_allclose(smooth[0].ravel(), weights[:, 1], rtol=1e-5)
    absolute = SmoothGrad(model, noise=2.0, noise_mode="absolute", samples=4).plan(x)
    assert absolute.noise_sigma.tolist() == [2.0]
    relative = SmoothGrad(model, noise=0.1, samples=4).plan(x)
    assert np.isclose(relative.noise_sigma[0], 0.1 * (x.max() - x.min()))


def test_smoothgrad_over_integrated_gradients():
    model, weights, _ = linear_model(SHAPE, n_classes=2)
    x = rand((2, *SHAPE))
    plain = IntegratedGradients(model, steps=4).attribute(x, 0)
    smooth = SmoothGrad(model, base="ig", base_params={"steps": 4}, noise=0.0, samples=2).attribute(x, 0)
    np.testing.assert_allclose(smooth, plain, rtol=1e-5, atol=1e-7)
    noisy = SmoothGrad(model, base="integrated_gradients", base_params={"steps": 4}, samples=3).attribute(x, 0)
    assert not np.allclose(noisy, plain)  # the noisy copies move (x - baseline)
    assert SmoothGrad(model, base="ig", base_params={"steps": 4}, samples=3).plan(x).evaluations_per_image == 12


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"samples": 0}, "samples"),
        ({"noise": -0.1}, "noise"),
        ({"noise_mode": "percent"}, "noise_mode"),
        ({"statistic": "median"}, "statistic"),
        ({"base": "gradcam"}, "base"),
        ({"base_params": {"steps": 0}}, "absolute|steps|unexpected"),
    ],
)
def test_bad_parameters(kwargs, match):
    model, _, _ = linear_model(SHAPE)
    with pytest.raises((ValueError, TypeError), match=match):
        SmoothGrad(model, **kwargs)


def test_gradient_has_no_delta():
    model, _, _ = linear_model(SHAPE)
    with pytest.raises(ValueError, match="no completeness delta"):
        Gradient(model).attribute(rand((1, *SHAPE)), 0, return_delta=True)


def square_model(v):
    """F(x) = (v . flatten(x))^2 with its last layer named "square"."""
    inputs = keras.Input((2, 2, 1))
    dense = keras.layers.Dense(1, use_bias=False)
    out = keras.layers.Lambda(keras.ops.square, name="square")(dense(keras.layers.Flatten()(inputs)))
    model = keras.Model(inputs, out)
    dense.set_weights([v[:, None]])
    return model


@pytest.mark.parametrize("statistic", ["mean", "squared"])
def test_noisy_smoothgrad_matches_its_expectation(statistic):
    # grad F(x + e) = 2 v (s + v.e) with v.e ~ N(0, tau^2), tau^2 = sigma^2 |v|^2:
    # E[grad] = 2 s v and E[grad^2] = 4 v^2 (s^2 + tau^2); tolerance: 5 standard errors (central limit theorem).
    v = np.array([0.5, -1.0, 0.25, 0.75], dtype=np.float32)
    model = square_model(v)
    x = np.array([[[0.2], [0.9]], [[0.4], [0.1]]], dtype=np.float32)[None]
    sigma, samples = 0.3, 4000
    s, tau2 = float(v @ x.ravel()), sigma**2 * float(v @ v)
    smooth = SmoothGrad(
        model,
        output="square",
        samples=samples,
        noise=sigma,
        noise_mode="absolute",
        statistic=statistic,
        batch_size=1000,
    )
    result = smooth.attribute(x, 0)[0].ravel()
    if statistic == "mean":
        expected, spread = 2 * s * v, 2 * np.abs(v) * np.sqrt(tau2)
    else:
        expected, spread = 4 * v**2 * (s**2 + tau2), 4 * v**2 * np.sqrt(4 * s**2 * tau2 + 2 * tau2**2)
    np.testing.assert_allclose(result, expected, atol=float(np.max(5 * spread / np.sqrt(samples))))


def test_statistics_over_several_baselines_take_each_samples_mean_first():
    model = small_cnn(SHAPE)
    x = rand((2, *SHAPE))
    ig = dict(steps=4, baseline="uniform", n_baselines=2)
    mean_ig = IntegratedGradients(model, **ig).attribute(x, 1)  # the mean over the 2 baselines
    squared = SmoothGrad(model, base="ig", base_params=ig, noise=0.0, samples=2, statistic="squared").attribute(x, 1)
    np.testing.assert_allclose(squared, mean_ig**2, rtol=1e-4, atol=1e-12)
    one, two = (
        IntegratedGradients(model, steps=4, baseline=b).attribute(x, 1)
        for b in make_baselines(x, "uniform", n_baselines=2).transpose(1, 0, 2, 3, 4)
    )
    assert not np.allclose(squared, (one**2 + two**2) / 2, rtol=1e-3)  # what used to be computed
    variance = SmoothGrad(model, base="ig", base_params=ig, noise=0.0, samples=2, statistic="variance").attribute(x, 1)
    np.testing.assert_allclose(variance, 0, atol=1e-10)


@pytest.mark.parametrize(
    "build",
    [
        lambda m, p: Gradient(m, heatmap={"polarity": p}),
        lambda m, p: SmoothGrad(m, statistic="squared", heatmap={"polarity": p}),
        lambda m, p: SmoothGrad(m, statistic="variance", heatmap={"polarity": p}),
        lambda m, p: SmoothGrad(m, base_params={"absolute": True}, heatmap={"polarity": p}),
    ],
)
@pytest.mark.parametrize("polarity", ["positive", "negative"])
def test_polarity_of_a_non_negative_method_is_refused(build, polarity):
    model, _, _ = linear_model(SHAPE)
    with pytest.raises(ValueError, match=f"polarity '{polarity}'.*never negative.*use polarity 'absolute'"):
        build(model, polarity)


def test_polarity_of_signed_methods_is_accepted():
    model, weights, _ = linear_model(SHAPE)
    x = rand((1, *SHAPE))
    negative = Gradient(model, absolute=False, heatmap={"polarity": "negative"}).compute_heatmap(x[0], 0)
    assert negative.max() == 1 and np.argmax(negative) == np.argmin(weights[:, 0])
    SmoothGrad(model, heatmap={"polarity": "positive"})
    IntegratedGradients(model, heatmap={"polarity": "negative"})


@pytest.mark.parametrize(
    "base_params,match",
    [
        ({"batch_size": 8}, "base_params cannot set 'batch_size'"),
        ({"output": "probabilities"}, "base_params cannot set 'output'"),
        ({"stepz": 8}, "base_params: .*stepz"),
        ([("steps", 8)], "base_params must be a mapping"),
    ],
)
def test_bad_base_params_are_named(base_params, match):
    model, _, _ = linear_model(SHAPE)
    with pytest.raises(ValueError, match=match):
        SmoothGrad(model, base="ig", base_params=base_params)
