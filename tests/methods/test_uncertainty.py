"""Per-map uncertainty: Welford's moments, the SD maps of the methods, and the stability figure."""

import numpy as np
import pytest
import tensorflow as tf
from analytic_models import linear_model, power_model, small_cnn

from medxai.heatmap import heatmap_sd, to_heatmap
from medxai.methods._engine.uncertainty import (
    STABILITY_RADIUS,
    STABILITY_SAMPLES,
    Uncertainty,
    Welford,
    max_sensitivity,
    stability_noise,
)
from medxai.methods.gradcam import GradCAM
from medxai.methods.gradient import Gradient
from medxai.methods.gradient_x_input import GradientXInput
from medxai.methods.integrated_gradients import IntegratedGradients
from medxai.methods.lime import LIME
from medxai.methods.occlusion import Occlusion
from medxai.methods.rise import RISE
from medxai.methods.smoothgrad import SmoothGrad

SHAPE = (4, 4, 1)


def test_welford_equals_numpy_on_the_stacked_samples():
    rng = np.random.default_rng(3)
    samples = rng.normal(5.0, 3.0, size=(37, 2, 3, 4))  # 37 samples of 2 images
    moments = Welford(2, (3, 4))
    for sample in samples:
        for i in range(2):
            moments.add(i, sample[i])
    np.testing.assert_allclose(moments.mean, samples.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.variance(), samples.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(moments.sd(), samples.std(axis=0), rtol=1e-6)


def test_welford_of_one_sample_has_no_spread():
    moments = Welford(1, (2,))
    moments.add(0, np.array([1.0, -4.0]))
    assert moments.variance().tolist() == [[0.0, 0.0]]


def _images(n=2, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def test_smoothgrad_sd_is_numpys_std_over_the_per_sample_gradients():
    """F(x) = (v . x)^2: grad F(x_k) = 2 (v . x_k) v at each noisy copy x_k = x + sigma * noise_k."""
    model, v = power_model(SHAPE, 2)
    images = _images()
    samples, noise, seed = 6, 0.15, 11
    method = SmoothGrad(model, samples=samples, noise=noise, seed=seed, batch_size=5, uncertainty=True)
    explanation = method.explain(images, 1)
    for i, image in enumerate(images):
        sigma = noise * (image.max() - image.min())
        grads = []
        for k in range(samples):
            drawn = tf.random.stateless_normal(image.shape, tf.constant([seed, k], tf.int64), alg="philox").numpy()
            x_k = (image + np.float32(sigma) * drawn).astype(np.float64)
            grads.append(2.0 * (v @ x_k.ravel()) * v)
        grads = np.stack(grads).reshape(samples, *SHAPE)
        np.testing.assert_allclose(explanation.attributions[i], grads.mean(axis=0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(explanation.sd[i], grads.std(axis=0), rtol=1e-3, atol=1e-6)


def test_the_sd_does_not_depend_on_batch_size():
    model, _ = power_model(SHAPE, 2)
    images = _images(3)
    maps = [
        SmoothGrad(model, samples=5, batch_size=b, uncertainty={"samples": 1}).explain(images, 1).sd for b in (1, 7)
    ]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-5, atol=1e-7)


def test_ig_over_random_baselines_gives_the_sd_over_the_baselines():
    model, weights, _ = linear_model(SHAPE)
    images = _images()
    method = IntegratedGradients(model, steps=4, baseline="uniform", n_baselines=5, seed=2, uncertainty=True)
    explanation = method.explain(images, 0)
    single = [
        IntegratedGradients(model, steps=4, baseline=b)
        for b in method._baselines(images).transpose(1, 0, 2, 3, 4)  # one (N, ...) baseline array per draw
    ]
    per_baseline = np.stack([m.attribute(images, 0) for m in single])
    np.testing.assert_allclose(explanation.attributions, per_baseline.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(explanation.sd, per_baseline.std(axis=0), rtol=1e-3, atol=1e-6)
    assert np.all(explanation.sd > 0)


@pytest.mark.parametrize(
    "build",
    [
        lambda m: Gradient(m, uncertainty={"samples": 2}),
        lambda m: IntegratedGradients(m, steps=4, uncertainty={"samples": 2}),
        lambda m: GradCAM(m, uncertainty={"samples": 2}),
        lambda m: Occlusion(m, window=4, stride=4, uncertainty={"samples": 2}),
    ],
    ids=["gradient", "ig_one_baseline", "gradcam", "occlusion"],
)
def test_the_sd_map_of_a_deterministic_method_is_zero(build):
    model = small_cnn((8, 8, 1))
    images = _images(2, (8, 8, 1))
    explanation = build(model).explain_with_uncertainty(images, 0)
    assert explanation.sd.shape == explanation.attributions.shape
    assert np.all(explanation.sd == 0)
    assert explanation.stability.shape == (2,) and np.all(np.isfinite(explanation.stability))


@pytest.mark.parametrize("cls,extra", [(RISE, {"cells": 2}), (LIME, {"segmentation": "grid"})], ids=["rise", "lime"])
def test_rise_and_lime_sd_over_seed_groups(cls, extra):
    model = small_cnn((8, 8, 1))
    images = _images(2, (8, 8, 1))
    plain = cls(model, samples=32, **extra).explain(images, 0)
    explained = cls(model, samples=32, uncertainty=True, **extra).explain(images, 0)
    np.testing.assert_allclose(explained.attributions, plain.attributions, rtol=1e-5, atol=1e-9)
    assert plain.sd is None
    assert explained.sd.shape == plain.attributions.shape and np.all(explained.sd > 0)


def test_rise_with_uncertainty_needs_two_groups_of_two():
    with pytest.raises(ValueError, match="samples must be at least 4 with uncertainty"):
        RISE(small_cnn((8, 8, 1)), samples=3, uncertainty=True)


def test_stability_of_a_linear_models_gradient_is_exactly_zero():
    """The gradient of a linear model is its weights, whatever the input: every perturbed map is the map."""
    model, _, _ = linear_model(SHAPE)
    explanation = Gradient(model, uncertainty={"samples": 5}).explain_with_uncertainty(_images(), 1)
    assert explanation.stability.tolist() == [0.0, 0.0]


def test_stability_matches_the_closed_form():
    """Gradient x input of F(x) = w . x is w * x: a perturbed map differs by w * d_k, so the figure is
    max_k ||w * d_k|| / ||x|| with d_k the documented draws (uniform in +-radius * value range)."""
    model, weights, _ = linear_model(SHAPE)
    images = _images()
    setting = Uncertainty(samples=7, radius=0.05, seed=4)
    explanation = GradientXInput(model, uncertainty=setting).explain_with_uncertainty(images, 2)
    w = weights[:, 2].reshape(SHAPE).astype(np.float64)
    for i, image in enumerate(images):
        expected = max(
            np.linalg.norm((w * stability_noise(image, k, 0.05, 4)).ravel()) / np.linalg.norm(image.ravel())
            for k in range(7)
        )
        assert explanation.stability[i] == pytest.approx(expected, rel=1e-4)
        relative = max(
            np.linalg.norm((w * stability_noise(image, k, 0.05, 4)).ravel()) / np.linalg.norm((w * image).ravel())
            for k in range(7)
        )
        assert explanation.stability_relative[i] == pytest.approx(relative, rel=1e-4)  # over the map's own norm


def test_max_sensitivity_is_seeded_and_takes_the_maximum():
    images = _images(1)
    maps = images * 3.0

    def explain(copies, owner):
        return copies * 3.0

    setting = Uncertainty(samples=4, radius=0.1, seed=1)
    first, relative = max_sensitivity(explain, images, maps, setting, chunk=3)
    again, relative_again = max_sensitivity(explain, images, maps, setting, chunk=1)
    assert first.tolist() == again.tolist() and relative.tolist() == relative_again.tolist()
    draws = [3.0 * np.linalg.norm(stability_noise(images[0], k, 0.1, 1)) for k in range(4)]
    assert first[0] == pytest.approx(max(draws) / np.linalg.norm(images[0]), rel=1e-5)
    assert relative[0] == pytest.approx(max(draws) / np.linalg.norm(maps[0]), rel=1e-5)  # free of the map's scale
    tenfold = max_sensitivity(lambda c, o: c * 30.0, images, maps * 10, setting, chunk=2)
    assert tenfold[0][0] == pytest.approx(10 * first[0]) and tenfold[1][0] == pytest.approx(relative[0])


def test_the_relative_figure_of_a_zero_map():
    images = _images(2)
    zero = np.zeros_like(images)
    setting = Uncertainty(samples=2, radius=0.1, seed=0)
    assert max_sensitivity(lambda c, o: np.zeros_like(c), images, zero, setting, 2)[1].tolist() == [0.0, 0.0]
    assert np.isinf(max_sensitivity(lambda c, o: c, images, zero, setting, 2)[1]).all()


def test_stability_noise_is_uniform_within_the_radius_of_the_value_range():
    image = np.linspace(-100, 300, 64, dtype=np.float32).reshape(8, 8, 1)
    noise = stability_noise(image, 0, 0.2, 0)
    assert np.abs(noise).max() <= 0.2 * 400 + 1e-3
    assert np.abs(noise).max() > 0.15 * 400  # it fills the range
    assert stability_noise(image, 0, 0.2, 0).tolist() == noise.tolist()
    assert stability_noise(image, 1, 0.2, 0).tolist() != noise.tolist()


def test_quantus_defaults():
    assert (STABILITY_SAMPLES, STABILITY_RADIUS) == (200, 0.2)
    assert Uncertainty.of(True) == Uncertainty(200, 0.2, 0)
    assert Uncertainty.of(False) is None
    assert Uncertainty.of({"samples": 3}, seed=9) == Uncertainty(3, 0.2, 9)
    assert Uncertainty.of({"samples": 3, "seed": 1}, seed=9).seed == 1


@pytest.mark.parametrize("value", ["yes", 1, {"samples": 0}, {"radius": -1}, {"sample": 3}])
def test_bad_uncertainty_names_the_key(value):
    with pytest.raises(ValueError, match="uncertainty"):
        Gradient(linear_model(SHAPE)[0], uncertainty=value)


def test_heatmap_sd_is_in_the_maps_units():
    attributions = np.array([[[1.0, -1.0], [3.0, 0.0]], [[0.0, 0.0], [5.0, 2.0]]])  # (2, 2, C=2)
    sd = np.full(attributions.shape, 0.5)
    values = np.abs(attributions).sum(axis=-1)  # abs_sum
    spread = values.max() - values.min()
    np.testing.assert_allclose(heatmap_sd(attributions, sd), np.full((2, 2), 1.0 / spread), rtol=1e-6)
    l2 = heatmap_sd(attributions, sd, {"reduce": "l2"})
    norms = np.sqrt(np.square(attributions).sum(axis=-1))
    np.testing.assert_allclose(l2, np.full((2, 2), np.sqrt(0.5) / (norms.max() - norms.min())), rtol=1e-6)
    assert heatmap_sd(np.ones((2, 2, 1)), np.ones((2, 2, 1))).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert to_heatmap(attributions).shape == heatmap_sd(attributions, sd).shape


def test_without_uncertainty_nothing_changes():
    model, _ = power_model(SHAPE, 2)
    images = _images()
    method = SmoothGrad(model, samples=4)
    explanation = method.explain_with_uncertainty(images, 1)
    assert explanation.sd is None and explanation.stability is None
    assert "uncertainty" not in method.params()
    assert SmoothGrad(model, samples=4, uncertainty=True).params()["uncertainty"] == {
        "samples": 200,
        "radius": 0.2,
        "seed": 0,
    }


def _group_sd(group_maps):
    return np.stack(group_maps).std(axis=0)


def test_lime_sd_is_the_std_of_each_seed_groups_own_regression():
    """8 groups of 4 of 32 samples: each group's weighted ridge on its own samples (centred on its own mean)."""
    from medxai.methods._engine.forward import forward_engine
    from medxai.methods.lime import _Superpixels, sample_bits, weighted_ridge

    model = small_cnn((8, 8, 1))
    method = LIME(model, samples=32, segmentation="grid", segmentation_params={"cell": 4}, uncertainty=True)
    images, targets = method.engine.check_inputs(_images(2, (8, 8, 1)), 0)
    explanation = method.explain(images, targets)
    segments = np.stack([method.segment(image) for image in images])
    counts = segments.reshape(2, -1).max(axis=1) + 1
    bits = sample_bits(32, int(counts.max()), method.seed)
    superpixels = _Superpixels(segments, counts, bits, method.fill, method.kernel_width)
    scores = forward_engine(method.engine).scores(images, targets, superpixels, method.batch_size)
    for i, j in enumerate(counts):
        maps = []
        for g in range(8):
            rows = slice(4 * g, 4 * g + 4)
            w, z = superpixels.weights[i][rows], bits[rows, :j].astype(np.float64)
            xty = (z - w @ z / w.sum()).T @ (w * scores[i, rows])
            maps.append(weighted_ridge(bits[rows, :j], w, xty, method.ridge)[segments[i]])
        np.testing.assert_allclose(explanation.sd[i, ..., 0], _group_sd(maps), rtol=1e-4, atol=1e-7)


def test_rise_sd_is_the_std_of_each_seed_groups_own_saliency():
    """8 groups of 4 of 32 masks: S_g = sum_{k in g} (F_k - mean_g F) M_k / ((4 - 1) p)."""
    from medxai.methods._engine.forward import forward_engine
    from medxai.methods.rise import _Masks

    model = small_cnn((8, 8, 1))
    method = RISE(model, samples=32, cells=2, uncertainty=True)
    images, targets = method.engine.check_inputs(_images(2, (8, 8, 1)), 0)
    explanation = method.explain(images, targets)
    masks = _Masks(32, 2, method.p, method.seed)
    described = {k: tf.constant(v) for k, v in masks.rows(np.arange(32)).items()}
    _, mask = masks.apply(tf.ones((32, 8, 8, 1)), {}, described)
    mask = mask.numpy().astype(np.float64)
    scores = forward_engine(method.engine).scores(images, targets, masks, method.batch_size)
    for i in range(2):
        maps = []
        for g in range(8):
            f = scores[i, 4 * g : 4 * g + 4]
            maps.append(np.tensordot(f - f.mean(), mask[4 * g : 4 * g + 4], axes=1) / (3 * method.p))
        np.testing.assert_allclose(explanation.sd[i, ..., 0], _group_sd(maps), rtol=1e-4, atol=1e-7)
