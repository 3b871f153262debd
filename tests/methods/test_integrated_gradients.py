"""Integrated Gradients against closed forms and the axioms of Sundararajan et al. (2017)."""

import keras
import numpy as np
import pytest
from analytic_models import UNIT, exp_model, linear_model, power_model, small_cnn

from medxai import IntegratedGradients
from medxai.methods._engine.quadrature import RULES

SHAPE = (4, 5, 1)


def rand(shape, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(np.float32)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_linear_model_ig_is_w_times_x_minus_baseline(rule):
    model, weights, _ = linear_model(SHAPE, n_classes=3)
    x = rand((3, *SHAPE))
    baseline = rand(SHAPE, seed=7)
    ig = IntegratedGradients(model, steps=3, rule=rule, baseline=baseline)
    attributions, delta = ig.attribute(x, [0, 2, 1], return_delta=True)
    for i, target in enumerate([0, 2, 1]):
        expected = weights[:, target] * (x[i] - baseline).ravel()
        np.testing.assert_allclose(attributions[i].ravel(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(delta, 0, atol=1e-5)


def _closed_form_exp(v, x):
    s = float(v @ x.ravel())
    return v * x.ravel() * np.expm1(s) / s


def test_exp_model_matches_closed_form_integral():
    model, v = exp_model(SHAPE)
    x = rand((1, *SHAPE))
    attributions = IntegratedGradients(model, steps=16).attribute(x, UNIT)
    np.testing.assert_allclose(attributions[0].ravel(), _closed_form_exp(v, x[0]), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "rule,order", [("riemann_left", 1), ("riemann_right", 1), ("riemann_middle", 2), ("trapezoid", 2)]
)
def test_riemann_rules_converge_at_their_order(rule, order):
    model, v = exp_model(SHAPE)
    x = 2 * rand((1, *SHAPE))
    exact = _closed_form_exp(v, x[0])
    errors = [
        np.abs(IntegratedGradients(model, steps=s, rule=rule).attribute(x, UNIT)[0].ravel() - exact).max()
        for s in (4, 16, 64)
    ]
    assert errors[0] > errors[1] > errors[2]
    # quadrupling the steps divides the error by about 4**order
    assert errors[0] / errors[1] > 0.6 * 4**order


def test_gauss_legendre_exact_for_low_degree_polynomial_paths():
    # F = (v.x)^4: the path gradient is a cubic in alpha, integrated exactly by 2 Gauss-Legendre points.
    model, v = power_model(SHAPE, 4)
    x = rand((1, *SHAPE))
    s = float(v @ x[0].ravel())
    expected = s**3 * v * x[0].ravel()  # closed form with a zero baseline
    gl = IntegratedGradients(model, steps=2, rule="gauss_legendre").attribute(x, UNIT)[0].ravel()
    np.testing.assert_allclose(gl, expected, rtol=1e-5)
    trapezoid = IntegratedGradients(model, steps=2, rule="trapezoid").attribute(x, UNIT)[0].ravel()
    assert np.abs(trapezoid - expected).max() > 0.1 * np.abs(expected).max()


def test_completeness_on_small_cnn_under_one_percent():
    model = small_cnn((16, 16, 1))
    x = rand((4, 16, 16, 1))
    explanation = IntegratedGradients(model, steps=32).explain(x, [0, 1, 0, 1])
    assert explanation.relative_delta.max() < 0.01
    np.testing.assert_allclose(explanation.attributions.reshape(4, -1).sum(1), explanation.gap, rtol=0.01, atol=1e-6)


def test_sensitivity_a_single_differing_feature_gets_the_whole_difference():
    model, v = exp_model(SHAPE)
    baseline = rand(SHAPE, seed=3)
    x = baseline.copy()
    x[2, 3, 0] += 1.0
    attributions, delta = IntegratedGradients(model, steps=32, baseline=baseline).attribute(
        x[None], UNIT, return_delta=True
    )
    others = np.delete(attributions[0].ravel(), np.ravel_multi_index((2, 3, 0), SHAPE))
    assert np.all(others == 0)
    gap = np.exp(v @ x.ravel()) - np.exp(v @ baseline.ravel())
    assert np.isclose(attributions[0, 2, 3, 0], gap, rtol=1e-4)
    assert abs(delta[0]) < 1e-4 * abs(gap)


def test_sensitivity_b_features_the_model_ignores_get_zero():
    mask = np.zeros(SHAPE, np.float32)
    mask[:2] = 1
    inputs = keras.Input(SHAPE)
    masked = keras.layers.Lambda(lambda z: z * mask)(inputs)
    hidden = keras.layers.Dense(6, activation="tanh")(keras.layers.Flatten()(masked))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    attributions = IntegratedGradients(model, steps=8).attribute(rand((2, *SHAPE)), 1)
    assert np.all(attributions[:, 2:] == 0)
    assert np.all(attributions[:, :2] != 0)


def test_implementation_invariance():
    # Two different networks computing the same function: ReLU(2z)/2 == ReLU(z).
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(20, 6)).astype(np.float32), rng.normal(size=6).astype(np.float32)
    w2, b2 = rng.normal(size=(6, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)

    def net(scale, extra_layer):
        inputs = keras.Input(SHAPE)
        first, last = keras.layers.Dense(6, activation="relu"), keras.layers.Dense(2)
        hidden = first(keras.layers.Flatten()(inputs))
        if extra_layer:
            hidden = keras.layers.Rescaling(1.0)(hidden)
        model = keras.Model(inputs, last(hidden))
        first.set_weights([w1 * scale, b1 * scale])
        last.set_weights([w2 / scale, b2])
        return model

    x = rand((3, *SHAPE))
    a = IntegratedGradients(net(1.0, False), steps=16).attribute(x, 1)
    b = IntegratedGradients(net(2.0, True), steps=16).attribute(x, 1)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("baseline", ["zeros", "black", "white", "blur", 0.5])
def test_completeness_holds_for_every_baseline_on_linear_model(baseline):
    model, weights, _ = linear_model(SHAPE, n_classes=2)
    x = rand((2, *SHAPE))
    attributions, delta = IntegratedGradients(model, steps=4, baseline=baseline).attribute(x, 1, return_delta=True)
    np.testing.assert_allclose(delta, 0, atol=1e-5)


def test_white_and_black_baselines_are_what_they_say():
    model, weights, _ = linear_model(SHAPE, n_classes=1)
    x = rand((1, *SHAPE))
    white = IntegratedGradients(model, steps=2, baseline="white").attribute(x, UNIT)
    np.testing.assert_allclose(white[0].ravel(), weights[:, 0] * (x[0] - x[0].max()).ravel(), rtol=1e-5, atol=1e-6)
    black = IntegratedGradients(model, steps=2, baseline="black").attribute(x, UNIT)
    np.testing.assert_allclose(black[0].ravel(), weights[:, 0] * x[0].ravel(), rtol=1e-5, atol=1e-6)


def test_uniform_baselines_average_and_keep_completeness():
    model, weights, _ = linear_model(SHAPE, n_classes=2)
    x = rand((2, *SHAPE))
    ig = IntegratedGradients(model, steps=2, baseline="uniform", n_baselines=3, seed=5)
    attributions, delta = ig.attribute(x, 0, return_delta=True)
    np.testing.assert_allclose(delta, 0, atol=1e-5)
    baselines = ig.plan(x).baselines  # (N, 3, ...)
    assert baselines.shape == (2, 3, *SHAPE)
    assert not np.allclose(baselines[0, 0], baselines[0, 1])
    expected = weights[:, 0] * (x[0] - baselines[0].mean(0)).ravel()
    np.testing.assert_allclose(attributions[0].ravel(), expected, rtol=1e-4, atol=1e-6)
    again = IntegratedGradients(model, steps=2, baseline="uniform", n_baselines=3, seed=5).attribute(x, 0)
    np.testing.assert_array_equal(attributions, again)
    other = IntegratedGradients(model, steps=2, baseline="uniform", n_baselines=3, seed=6).attribute(x, 0)
    assert not np.allclose(attributions, other)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"baseline": "grey"}, "unknown baseline"),
        ({"n_baselines": 3}, "random baseline"),
        ({"steps": 0}, "steps"),
        ({"rule": "simpson"}, "integration rule"),
        ({"baseline": np.zeros((2, 2, 1))}, None),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_parameters_fail_clearly(kwargs, match):
    model, _, _ = linear_model(SHAPE)
    if match is None:  # a wrongly shaped array fails when used, naming both shapes
        ig = IntegratedGradients(model, **kwargs)
        with pytest.raises(ValueError, match="shaped like one image"):
            ig.attribute(rand((1, *SHAPE)), 0)
        return
    with pytest.raises(ValueError, match=match):
        IntegratedGradients(model, **kwargs)


def test_blur_baseline_is_the_blurred_input():
    from medxai.filters import gaussian_blur
    from medxai.methods._engine.baselines import default_blur_sigma, make_baselines

    x = rand((2, 16, 16, 1))
    np.testing.assert_array_equal(make_baselines(x, "blur", blur_sigma=1.5)[:, 0], gaussian_blur(x, 1.5, batch=True))
    assert default_blur_sigma((16, 24)) == 2.0
    np.testing.assert_array_equal(make_baselines(x, "blur")[:, 0], gaussian_blur(x, 2.0, batch=True))


def test_array_baseline_with_several_baselines_is_a_clear_error():
    model, _, _ = linear_model(SHAPE)
    with pytest.raises(ValueError, match="n_baselines=2 only makes sense for a random baseline.*an array baseline"):
        IntegratedGradients(model, baseline=np.zeros(SHAPE, np.float32), n_baselines=2)
