"""Blur IG (Xu et al. 2020) and Guided IG (Kapishnikov et al. 2021): exact maths, completeness, contract."""

import numpy as np
import pytest
from analytic_models import UNIT, exp_model, linear_model, small_cnn

from medxai import BlurIG, GuidedIG
from medxai.filters import gaussian_blur
from medxai.methods.registry import resolve_method

SHAPE = (6, 7, 1)


def rand(shape, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def cnn():
    return small_cnn((12, 12, 1))


# ------------------------------------------------------------------ Blur IG
@pytest.mark.parametrize("steps", [1, 4])
def test_blur_ig_of_a_linear_model_is_w_times_x_minus_blurred_x(steps):
    model, weights, _ = linear_model(SHAPE, n_classes=3)
    x = rand((3, *SHAPE))
    attributions, delta = BlurIG(model, steps=steps, max_sigma=2.0).attribute(x, [0, 2, 1], return_delta=True)
    for i, target in enumerate([0, 2, 1]):
        expected = weights[:, target] * (x[i] - gaussian_blur(x[i], 2.0)).ravel()
        np.testing.assert_allclose(attributions[i].ravel(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(delta, 0, atol=1e-5)


def test_blur_path_runs_from_the_blurred_image_to_the_input():
    model, _, _ = linear_model(SHAPE)
    x = rand((2, *SHAPE))
    method = BlurIG(model, steps=3, max_sigma=1.5)
    sigmas = method.sigmas(x)
    assert sigmas[0] == 0 and sigmas[-1] == 1.5 and np.all(np.diff(sigmas) > 0)
    np.testing.assert_array_equal(method.blurred(x, sigmas[0]), x)
    np.testing.assert_array_equal(method.blurred(x, sigmas[-1]), gaussian_blur(x, 1.5, batch=True))
    # the plan's directions telescope from the blurred image to the input
    plan = method.plan(x)
    image, point = np.repeat([0, 1], 3), np.tile([0, 1, 2], 2)
    points, directions = plan.path(image, point)
    total = directions.reshape(2, 3, *SHAPE).sum(axis=1)
    np.testing.assert_allclose(total, x - gaussian_blur(x, 1.5, batch=True), atol=1e-6)
    np.testing.assert_allclose(points[0], gaussian_blur(x[0], 0.25), atol=1e-6)  # first segment's middle sigma


def test_blur_ig_default_max_sigma_is_a_sixth_of_the_smallest_side():
    model, _, _ = linear_model((12, 18, 1))
    method = BlurIG(model)
    assert method.sigma_max(np.zeros((1, 12, 18, 1))) == 2.0 and method.params()["max_sigma"] is None


def test_blur_ig_completeness_error_shrinks_with_steps(cnn):
    x = rand((2, 12, 12, 1))
    errors = [BlurIG(cnn, steps=s).explain(x, [0, 1]) for s in (4, 16, 64)]
    for e in errors:  # the gap is F(x) - F(most blurred x), on logits
        np.testing.assert_allclose(e.attributions.reshape(2, -1).sum(1) - e.delta, e.gap, rtol=1e-6, atol=1e-7)
    worst = [np.abs(e.delta).max() for e in errors]
    assert worst[0] > worst[1] > worst[2]
    assert errors[-1].relative_delta.max() < 0.01


def test_blur_ig_batch_size_does_not_change_results(cnn):
    x = rand((3, 12, 12, 1))
    a = BlurIG(cnn, steps=5, batch_size=1).attribute(x, [0, 1, 0])
    b = BlurIG(cnn, steps=5, batch_size=7).attribute(x, [0, 1, 0])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_blur_ig_3d_linear_model_is_exact():
    shape = (4, 5, 6, 2)
    model, weights, _ = linear_model(shape, n_classes=2)
    x = rand((2, *shape))
    attributions, delta = BlurIG(model, steps=3, max_sigma=1.0).attribute(x, [1, 0], return_delta=True)
    for i, target in enumerate([1, 0]):
        expected = weights[:, target] * (x[i] - gaussian_blur(x[i], 1.0)).ravel()
        np.testing.assert_allclose(attributions[i].ravel(), expected, rtol=1e-5, atol=1e-6)
    assert attributions.dtype == np.float32 and np.abs(delta).max() < 1e-5


@pytest.mark.parametrize(
    "params,name",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"max_sigma": 0}, "max_sigma"),
        ({"max_sigma": -1.0}, "max_sigma"),
        ({"max_sigma": "big"}, "max_sigma"),
        ({"max_sigma": float("inf")}, "max_sigma"),
    ],
)
def test_blur_ig_bad_parameters_name_the_parameter(params, name):
    model, _, _ = linear_model(SHAPE)
    with pytest.raises(ValueError, match=name):
        BlurIG(model, **params)


def test_blur_ig_is_registered_with_aliases():
    for name in ("blur_ig", "blur-ig", "blurig", "blur_integrated_gradients"):
        assert resolve_method(name) is BlurIG


# ---------------------------------------------------------------- Guided IG
def _reference_guided_ig(x, baseline, grad, steps, fraction, max_dist):
    """One image, transliterated from Algorithm 1 of Kapishnikov et al. (2021) (the authors' code)."""
    x_in, base = x.astype(np.float64).ravel(), baseline.astype(np.float64).ravel()
    point, attr, diff = base.copy(), np.zeros_like(x_in), x_in - base
    l1_total = np.abs(diff).sum()
    for step in range(steps):
        g_actual = grad(point)
        g = g_actual.copy()
        alpha = (step + 1.0) / steps
        a_min, a_max = max(alpha - max_dist, 0.0), min(alpha + max_dist, 1.0)
        x_min, x_max = base + diff * a_min, base + diff * a_max
        target = l1_total * (1 - alpha)
        gamma = np.inf
        while gamma > 1.0:
            old = point.copy()
            with np.errstate(all="ignore"):
                pos = np.where(diff != 0, (point - base) / diff, a_max)
            point[pos < a_min] = x_min[pos < a_min]
            current = np.abs(point - x_in).sum()
            if abs(current - target) <= max(1e-9 * max(abs(current), abs(target)), 1e-9):
                attr += (point - old) * g_actual
                break
            g[point == x_max] = np.inf
            threshold = np.quantile(np.abs(g), fraction, method="lower")
            s = (np.abs(g) <= threshold) & (g != np.inf)
            l1_s = (np.abs(point - x_max) * s).sum()
            gamma = (current - target) / l1_s if l1_s > 0 else np.inf
            if gamma > 1.0:
                point[s] = x_max[s]
            else:
                point[s] = (point + (x_max - point) * gamma)[s]
            attr += (point - old) * g_actual
    return attr.reshape(x.shape)


@pytest.mark.parametrize("max_dist", [0.02, 1.0])
def test_guided_ig_follows_algorithm_1_of_the_paper(max_dist):
    model, v = exp_model(SHAPE)
    x = 2 * rand((2, *SHAPE))

    def grad(point):  # F = exp(v . x), evaluated in float32 like the model
        return (v * np.exp(np.float32(v @ point.astype(np.float32)))).astype(np.float64)

    method = GuidedIG(model, steps=9, fraction=0.1, max_dist=max_dist)
    attributions = method.attribute(x, UNIT)
    for i in range(2):
        expected = _reference_guided_ig(x[i], np.zeros(SHAPE), grad, 9, 0.1, max_dist)
        np.testing.assert_allclose(attributions[i], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("steps,baseline", [(1, "zeros"), (5, "zeros"), (6, "white")])
def test_guided_ig_of_a_linear_model_is_w_times_x_minus_baseline(steps, baseline):
    model, weights, _ = linear_model(SHAPE, n_classes=3)
    x = rand((3, *SHAPE))
    method = GuidedIG(model, steps=steps, baseline=baseline)
    attributions, delta = method.attribute(x, [0, 2, 1], return_delta=True)
    b = np.zeros_like(x) if baseline == "zeros" else x.max(axis=(1, 2, 3), keepdims=True) + 0 * x
    for i, target in enumerate([0, 2, 1]):
        np.testing.assert_allclose(
            attributions[i].ravel(), weights[:, target] * (x[i] - b[i]).ravel(), rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(delta, 0, atol=1e-5)


def test_guided_ig_completeness_error_shrinks_with_steps(cnn):
    # a feature jumps up to 2 * max_dist at once: shrink it with the steps (see the module docstring)
    x = rand((2, 12, 12, 1))
    explanations = [GuidedIG(cnn, steps=s, max_dist=2.0 / s).explain(x, [0, 1]) for s in (16, 64, 256)]
    worst = [e.relative_delta.max() for e in explanations]
    assert worst[0] > worst[1] > worst[2] and worst[2] < 0.1
    e = explanations[-1]
    np.testing.assert_allclose(e.attributions.reshape(2, -1).sum(1) - e.delta, e.gap, rtol=1e-6, atol=1e-7)
    assert list(e.evaluations) == [256, 256] and list(e.steps) == [256, 256]


def test_guided_ig_batch_size_and_batch_company_do_not_change_results(cnn):
    x = rand((3, 12, 12, 1))
    together = GuidedIG(cnn, steps=6, batch_size=7).attribute(x, [0, 1, 0])
    small = GuidedIG(cnn, steps=6, batch_size=1).attribute(x, [0, 1, 0])
    alone = GuidedIG(cnn, steps=6).attribute(x[1:2], 1)
    np.testing.assert_allclose(small, together, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(alone[0], together[1], rtol=1e-4, atol=1e-6)


def test_guided_ig_3d_linear_model_and_an_input_equal_to_its_baseline():
    shape = (4, 5, 6, 2)
    model, weights, _ = linear_model(shape, n_classes=2)
    x = rand((2, *shape))
    x[1] = 0  # nothing to move: zero attributions, no gradient spent
    explanation = GuidedIG(model, steps=4).explain(x, [1, 0])
    np.testing.assert_allclose(explanation.attributions[0].ravel(), weights[:, 1] * x[0].ravel(), rtol=1e-5, atol=1e-6)
    assert explanation.attributions.dtype == np.float32 and not explanation.attributions[1].any()
    assert list(explanation.evaluations) == [4, 0] and np.abs(explanation.delta).max() < 1e-5


@pytest.mark.parametrize(
    "params,name",
    [
        ({"steps": 0}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"fraction": 0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"max_dist": 0.0}, "max_dist"),
        ({"max_dist": True}, "max_dist"),
        ({"baseline": "grey"}, "baseline"),
    ],
)
def test_guided_ig_bad_parameters_name_the_parameter(params, name):
    model, _, _ = linear_model(SHAPE)
    with pytest.raises(ValueError, match=name):
        GuidedIG(model, **params)


def test_guided_ig_is_registered_with_aliases():
    for name in ("guided_ig", "guided-ig", "guidedig", "guided_integrated_gradients"):
        assert resolve_method(name) is GuidedIG
