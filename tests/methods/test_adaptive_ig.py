"""IntegratedGradients(steps="auto"): per-image refinement to a per-pixel tolerance."""

import keras
import numpy as np
import pytest
from analytic_models import UNIT, exp_model, linear_model, small_cnn

from medxai import IntegratedGradients, SmoothGrad
from medxai.methods._engine.adaptive import relative_change


def rand(shape, seed=1, high=1.0):
    return np.random.default_rng(seed).uniform(0, high, size=shape).astype(np.float32)


def relu_cnn(shape, seed):
    """A ReLU CNN with max-pooling and random biases: its path gradients jump (kinks in F)."""
    keras.utils.set_random_seed(seed)
    init = keras.initializers.RandomNormal(stddev=0.3, seed=seed)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer=init)(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer=init)(x)
    x = keras.layers.Dense(16, activation="relu", bias_initializer=init)(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", bias_initializer=init)(x))


def per_image_error(attributions, reference):
    n = len(reference)
    return np.linalg.norm((attributions - reference).reshape(n, -1), axis=1) / np.linalg.norm(
        reference.reshape(n, -1), axis=1
    )


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["trapezoid", "gauss_legendre"])
def test_per_pixel_error_meets_the_tolerance_on_relu_cnns(rule):
    tolerance, shape, errors = 0.05, (12, 12, 1), []
    for seed in range(2):
        model = relu_cnn(shape, seed)
        x = rand((8, *shape), seed=seed)
        reference = IntegratedGradients(model, steps=2048, rule="riemann_middle", batch_size=512).attribute(x, 1)
        explanation = IntegratedGradients(
            model, steps="auto", rule=rule, tolerance=tolerance, max_steps=1024, batch_size=256
        ).explain(x, 1)
        assert np.all(explanation.warnings == "")
        errors.extend(per_image_error(explanation.attributions, reference))
    assert np.median(errors) <= 1.5 * tolerance
    assert np.percentile(errors, 90) <= 3 * tolerance


@pytest.mark.parametrize("rule", ["trapezoid", "gauss_legendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_stops_when_the_map_stops_changing_and_reports_completeness_apart(rule):
    model = small_cnn((12, 12, 1))
    x = rand((3, 12, 12, 1))
    ig = IntegratedGradients(model, steps="auto", rule=rule, tolerance=0.02, max_steps=512)
    explanation = ig.explain(x, [0, 1, 0])
    assert np.all(explanation.warnings == "")
    # the kept map is the fixed-steps IG at the reported step count, and one level coarser differs by <= tolerance
    for i, steps in enumerate(explanation.steps):
        fixed = IntegratedGradients(model, steps=int(steps), rule=rule).attribute(x[i : i + 1], [0, 1, 0][i])
        np.testing.assert_allclose(explanation.attributions[i], fixed[0], rtol=1e-4, atol=1e-6)
        coarser = (int(steps) + 1) // 2 if rule == "trapezoid" else int(steps) // 2
        previous = IntegratedGradients(model, steps=coarser, rule=rule).attribute(x[i : i + 1], [0, 1, 0][i])
        assert relative_change(fixed, previous)[0] <= 0.02 + 1e-5
    np.testing.assert_allclose(
        explanation.attributions.reshape(3, -1).sum(1) - explanation.gap, explanation.delta, atol=1e-4
    )


def test_fewer_points_on_an_easy_model_than_on_a_hard_one():
    shape = (4, 4, 1)
    easy, _, _ = linear_model(shape, n_classes=1)
    hard, _ = exp_model(shape)
    x = rand((3, *shape), high=6.0)  # a long, curved path for the exponential model
    easy_steps = IntegratedGradients(easy, steps="auto").explain(x, UNIT).steps
    hard_steps = IntegratedGradients(hard, steps="auto").explain(x, UNIT).steps
    assert easy_steps.tolist() == [5, 5, 5]  # trapezoid 3 then 5 points: no change, done
    assert np.all(hard_steps > easy_steps)


@pytest.mark.parametrize("rule,steps,evaluations", [("trapezoid", 5, 5), ("gauss_legendre", 8, 12)])
def test_linear_model_is_exact_after_two_levels(rule, steps, evaluations):
    model, weights, _ = linear_model((3, 3, 1), n_classes=2)
    x = rand((2, 3, 3, 1))
    explanation = IntegratedGradients(model, steps="auto", rule=rule).explain(x, 1)
    np.testing.assert_allclose(
        explanation.attributions.reshape(2, -1), weights[:, 1] * x.reshape(2, -1), rtol=1e-5, atol=1e-6
    )
    assert explanation.steps.tolist() == [steps] * 2  # points of the kept map
    assert explanation.evaluations.tolist() == [evaluations] * 2  # what it cost: Gauss-Legendre restarts


def test_smooth_model_converges_to_the_closed_form():
    model, v = exp_model((3, 3, 1))
    x = rand((1, 3, 3, 1), high=4.0)
    s = float(v @ x[0].ravel())
    exact = v * x[0].ravel() * np.expm1(s) / s
    attributions = IntegratedGradients(model, steps="auto", rule="trapezoid", tolerance=1e-4, max_steps=1025).attribute(
        x, UNIT
    )
    np.testing.assert_allclose(attributions[0].ravel(), exact, rtol=1e-3)


def test_nested_rule_evaluates_each_point_once(monkeypatch):
    model, _ = exp_model((3, 3, 1))
    x = rand((1, 3, 3, 1), high=6.0)
    ig = IntegratedGradients(
        model, steps="auto", rule="trapezoid", tolerance=1e-12, max_steps=33
    )  # unreachable: runs to 33
    rows = []
    original = ig.engine._chunk_fn

    def spy(images, row_image, *args):
        rows.append(len(row_image))
        return original(images, row_image, *args)

    monkeypatch.setattr(ig.engine, "_chunk_fn", spy)
    explanation = ig.explain(x, UNIT)
    assert explanation.steps.tolist() == [33] and explanation.evaluations.tolist() == [33]
    assert sum(rows) == 33  # 3 + 2 + 4 + 8 + 16 new points: nothing recomputed


def test_max_steps_keeps_the_finest_map_and_warns():
    model, _ = exp_model((3, 3, 1))
    x = rand((2, 3, 3, 1), high=8.0)
    explanation = IntegratedGradients(model, steps="auto", rule="gauss_legendre", tolerance=1e-9, max_steps=12).explain(
        x, UNIT
    )
    assert explanation.steps.tolist() == [8, 8]  # orders 4 then 8; 16 would pass max_steps
    assert explanation.evaluations.tolist() == [12, 12]
    assert all("not met within max_steps=12" in w and "last relative change" in w for w in explanation.warnings)
    np.testing.assert_allclose(
        explanation.attributions, IntegratedGradients(model, steps=8).attribute(x, UNIT), rtol=1e-5
    )


def test_batch_size_and_batch_composition_do_not_change_adaptive_results():
    model = small_cnn((8, 8, 1))
    x = rand((4, 8, 8, 1))
    together = IntegratedGradients(model, steps="auto", batch_size=5).explain(x, 1)
    for i in range(4):
        alone = IntegratedGradients(model, steps="auto", batch_size=64).explain(x[i : i + 1], 1)
        np.testing.assert_allclose(alone.attributions[0], together.attributions[i], rtol=1e-4, atol=1e-7)
        assert alone.steps[0] == together.steps[i]


def test_several_random_baselines():
    model, weights, _ = linear_model((3, 3, 1), n_classes=1)
    x = rand((2, 3, 3, 1))
    explanation = IntegratedGradients(model, steps="auto", baseline="uniform", n_baselines=3).explain(x, 0)
    assert np.all(explanation.relative_delta <= 1e-5)
    assert explanation.steps.tolist() == [5, 5] and explanation.evaluations.tolist() == [15, 15]  # per baseline x 3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tolerance": 0}, "tolerance"),
        ({"tolerance": -1}, "tolerance"),
        ({"max_steps": 4}, "max_steps must be an integer >= 5 for rule 'trapezoid'"),
        ({"max_steps": 7, "rule": "gauss_legendre"}, "max_steps must be an integer >= 8"),
        ({"rule": "simpson"}, "integration rule"),
    ],
)
def test_bad_auto_parameters(kwargs, match):
    model, _, _ = linear_model((2, 2, 1))
    with pytest.raises(ValueError, match=match):
        IntegratedGradients(model, steps="auto", **kwargs)


def test_auto_is_not_a_fixed_plan_and_not_a_smoothgrad_base():
    model, _, _ = linear_model((2, 2, 1))
    with pytest.raises(ValueError, match="auto"):
        IntegratedGradients(model, steps="auto").plan(rand((1, 2, 2, 1)))
    with pytest.raises(ValueError, match="base_params: steps 'auto'.*fixed number of steps"):
        SmoothGrad(model, base="ig", base_params={"steps": "auto"})


def test_relative_change_edge_cases():
    zero = np.zeros((1, 2))
    assert relative_change(zero, zero).tolist() == [0.0]
    assert relative_change(zero, np.ones((1, 2))).tolist() == [np.inf]
