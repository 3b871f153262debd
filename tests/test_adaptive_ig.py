"""IntegratedGradients(steps="auto"): per-image refinement to a completeness tolerance."""

import numpy as np
import pytest
from analytic_models import exp_model, linear_model, small_cnn

from medxai import IntegratedGradients, SmoothGrad
from medxai.methods.adaptive import first_points


def rand(shape, seed=1, high=1.0):
    return np.random.default_rng(seed).uniform(0, high, size=shape).astype(np.float32)


@pytest.mark.parametrize("rule", ["trapezoid", "gauss_legendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_meets_its_tolerance_on_a_small_cnn(rule):
    model = small_cnn((12, 12, 1))
    x = rand((5, 12, 12, 1))
    explanation = IntegratedGradients(model, steps="auto", rule=rule, tolerance=0.01, max_steps=512).explain(x, [0, 1, 0, 1, 0])
    assert np.all(explanation.relative_delta <= 0.01)
    assert np.all(explanation.warnings == "")
    np.testing.assert_allclose(
        explanation.attributions.reshape(5, -1).sum(1) - explanation.gap, explanation.delta, atol=1e-4
    )


def test_fewer_points_on_an_easy_model_than_on_a_hard_one():
    shape = (4, 4, 1)
    easy, _, _ = linear_model(shape, n_classes=1)
    hard, _ = exp_model(shape)
    x = rand((3, *shape), high=6.0)  # a long, curved path for the exponential model
    easy_steps = IntegratedGradients(easy, steps="auto", rule="trapezoid").explain(x, 0).steps
    hard_steps = IntegratedGradients(hard, steps="auto", rule="trapezoid").explain(x, 0).steps
    assert np.all(easy_steps == first_points("trapezoid")) and easy_steps.tolist() == [3, 3, 3]
    assert np.all(hard_steps > easy_steps)


def test_linear_model_is_exact_at_the_first_level():
    model, weights, _ = linear_model((3, 3, 1), n_classes=2)
    x = rand((2, 3, 3, 1))
    for rule in ("trapezoid", "gauss_legendre"):
        explanation = IntegratedGradients(model, steps="auto", rule=rule).explain(x, 1)
        np.testing.assert_allclose(explanation.attributions.reshape(2, -1), weights[:, 1] * x.reshape(2, -1), rtol=1e-5, atol=1e-6)
        assert explanation.steps.tolist() == [first_points(rule)] * 2


def test_smooth_model_converges_to_the_closed_form():
    model, v = exp_model((3, 3, 1))
    x = rand((1, 3, 3, 1), high=4.0)
    s = float(v @ x[0].ravel())
    exact = v * x[0].ravel() * np.expm1(s) / s
    attributions = IntegratedGradients(model, steps="auto", rule="trapezoid", tolerance=1e-5, max_steps=1025).attribute(x, 0)
    np.testing.assert_allclose(attributions[0].ravel(), exact, rtol=1e-3)


def test_nested_rule_evaluates_each_point_once(monkeypatch):
    model, _ = exp_model((3, 3, 1))
    x = rand((1, 3, 3, 1), high=6.0)
    ig = IntegratedGradients(model, steps="auto", rule="trapezoid", tolerance=1e-12, max_steps=33)  # unreachable: runs to 33
    rows = []
    original = ig.engine._chunk_fn

    def spy(images, row_image, *args):
        rows.append(len(row_image))
        return original(images, row_image, *args)

    monkeypatch.setattr(ig.engine, "_chunk_fn", spy)
    explanation = ig.explain(x, 0)
    assert explanation.steps.tolist() == [33]
    assert sum(rows) == 33  # 3 + 2 + 4 + 8 + 16 new points: nothing recomputed


def test_max_steps_keeps_the_best_estimate_and_warns():
    model, _ = exp_model((3, 3, 1))
    x = rand((2, 3, 3, 1), high=8.0)
    explanation = IntegratedGradients(model, steps="auto", rule="gauss_legendre", tolerance=1e-9, max_steps=12).explain(x, 0)
    assert np.all(explanation.steps == 12)  # orders 4 + 8
    assert all("not met within max_steps=12" in w for w in explanation.warnings)
    order8 = IntegratedGradients(model, steps=8).explain(x, 0)
    np.testing.assert_allclose(explanation.relative_delta, np.minimum(order8.relative_delta, IntegratedGradients(model, steps=4).explain(x, 0).relative_delta), rtol=1e-5)


def test_batch_size_and_batch_composition_do_not_change_adaptive_results():
    model = small_cnn((8, 8, 1))
    x = rand((4, 8, 8, 1))
    together = IntegratedGradients(model, steps="auto", rule="trapezoid", batch_size=5).explain(x, 1)
    for i in range(4):
        alone = IntegratedGradients(model, steps="auto", rule="trapezoid", batch_size=64).explain(x[i : i + 1], 1)
        np.testing.assert_allclose(alone.attributions[0], together.attributions[i], rtol=1e-4, atol=1e-7)
        assert alone.steps[0] == together.steps[i]


def test_several_random_baselines():
    model, weights, _ = linear_model((3, 3, 1), n_classes=1)
    x = rand((2, 3, 3, 1))
    explanation = IntegratedGradients(model, steps="auto", baseline="uniform", n_baselines=3).explain(x, 0)
    assert np.all(explanation.relative_delta <= 1e-5) and explanation.evaluations.tolist() == [12, 12]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tolerance": 0}, "tolerance"),
        ({"tolerance": -1}, "tolerance"),
        ({"max_steps": 2}, "max_steps must be an integer >= 4"),
        ({"rule": "simpson"}, "integration rule"),
    ],
)
def test_bad_auto_parameters(kwargs, match):
    model, _, _ = linear_model((2, 2, 1))
    with pytest.raises(ValueError, match=match):
        IntegratedGradients(model, steps="auto", **kwargs)


def test_auto_is_not_a_fixed_plan():
    model, _, _ = linear_model((2, 2, 1))
    with pytest.raises(ValueError, match="auto"):
        IntegratedGradients(model, steps="auto").plan(rand((1, 2, 2, 1)))
    with pytest.raises(ValueError, match="auto"):
        SmoothGrad(model, base="ig", base_params={"steps": "auto"}).attribute(rand((1, 2, 2, 1)), 0)
