"""IntegratedGradients(steps="auto"): per-image refinement to a per-pixel tolerance."""

import keras
import numpy as np
import pytest
from analytic_models import UNIT, exp_model, linear_model, small_cnn, tanh_model

from medxai import IntegratedGradients, SmoothGrad
from medxai.methods._engine.adaptive import _Terms, _to_bisect, relative_change


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
    easy_steps = IntegratedGradients(easy, steps="auto", rule="trapezoid").explain(x, UNIT).steps
    hard_steps = IntegratedGradients(hard, steps="auto", rule="trapezoid").explain(x, UNIT).steps
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
    together = IntegratedGradients(model, steps="auto", rule="trapezoid", batch_size=5).explain(x, 1)
    for i in range(4):
        alone = IntegratedGradients(model, steps="auto", rule="trapezoid", batch_size=64).explain(x[i : i + 1], 1)
        np.testing.assert_allclose(alone.attributions[0], together.attributions[i], rtol=1e-4, atol=1e-7)
        assert alone.steps[0] == together.steps[i]


def test_several_random_baselines():
    model, weights, _ = linear_model((3, 3, 1), n_classes=1)
    x = rand((2, 3, 3, 1))
    explanation = IntegratedGradients(model, steps="auto", rule="trapezoid", baseline="uniform", n_baselines=3).explain(
        x, 0
    )
    assert np.all(explanation.relative_delta <= 1e-5)
    assert explanation.steps.tolist() == [5, 5] and explanation.evaluations.tolist() == [15, 15]  # per baseline x 3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tolerance": 0}, "tolerance"),
        ({"tolerance": -1}, "tolerance"),
        ({"max_steps": 4, "rule": "trapezoid"}, "max_steps must be an integer >= 5 for rule 'trapezoid'"),
        ({"max_steps": 2}, "max_steps must be an integer >= 3 for rule 'adaptive_simpson'"),
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


EMBEDDED = ["adaptive_simpson", "gauss_kronrod_7", "gauss_kronrod_15"]


def saturating(n=3, scale=12.0, hard=False, shape=(4, 4, 1)):
    """F(x) = sum tanh(v x) (or clip) with v x up to ``scale``: the path gradient is a spike (a step) near 0."""
    model, v = tanh_model(shape, scale, hard=hard)
    x = rand((n, *shape), seed=2, high=1.0)
    squash = (lambda z: np.clip(z, -1, 1)) if hard else np.tanh  # noqa: E731
    return model, x, squash(v * x.reshape(n, -1)).reshape(x.shape)  # IG from 0, exactly


@pytest.mark.parametrize("rule,points", [("adaptive_simpson", 3), ("gauss_kronrod_15", 15), ("gauss_kronrod_7", 7)])
def test_embedded_pairs_are_exact_on_a_linear_model_with_one_panel(rule, points):
    model, weights, _ = linear_model((3, 3, 1), n_classes=2)
    x = rand((2, 3, 3, 1))
    explanation = IntegratedGradients(model, steps="auto", rule=rule).explain(x, 1)
    np.testing.assert_allclose(
        explanation.attributions.reshape(2, -1), weights[:, 1] * x.reshape(2, -1), rtol=1e-5, atol=1e-6
    )
    assert explanation.steps.tolist() == explanation.evaluations.tolist() == [points] * 2  # fine = coarse: done


@pytest.mark.parametrize("rule", EMBEDDED)
@pytest.mark.parametrize("tolerance", [0.05, 1e-3])
def test_embedded_pairs_meet_their_tolerance_per_pixel_against_the_closed_form(rule, tolerance):
    model, x, exact = saturating()
    explanation = IntegratedGradients(model, steps="auto", rule=rule, tolerance=tolerance, max_steps=1024).explain(
        x, UNIT
    )
    assert np.all(explanation.warnings == "")
    assert np.all(per_image_error(explanation.attributions, exact) <= tolerance)
    # completeness: the attributions sum to F(x) - F(0), as closely as the map is accurate
    assert np.all(explanation.relative_delta <= tolerance)
    np.testing.assert_allclose(explanation.gap, exact.reshape(3, -1).sum(1), rtol=1e-5)


@pytest.mark.parametrize("rule", EMBEDDED)
def test_embedded_pairs_spend_fewer_gradients_than_a_fixed_rule_at_the_same_error(rule):
    # a hard-saturating model (its path gradients jump, as a ReLU network's do): subdivision finds the jumps
    model, x, exact = saturating(scale=20.0, hard=True, shape=(2, 2, 1))
    explanation = IntegratedGradients(model, steps="auto", rule=rule, tolerance=1e-3, max_steps=1024).explain(x, UNIT)
    reached = per_image_error(explanation.attributions, exact)
    assert np.all(reached <= 1e-3) and np.all(reached >= 0.2e-3)  # met, not overshot by much
    for i, spent in enumerate(explanation.evaluations):
        # the fixed rules, given as many gradients as auto spent in all, miss the error it reached
        for fixed in ("gauss_legendre", "trapezoid"):
            same_budget = IntegratedGradients(model, steps=int(spent), rule=fixed).attribute(x[i : i + 1], UNIT)
            assert per_image_error(same_budget, exact[i : i + 1])[0] > reached[i]


@pytest.mark.parametrize("tolerance", [0.05, 0.01])
def test_adaptive_simpson_delivers_its_tolerance_within_the_band_on_a_jumping_path(tolerance):
    # the path gradient of a clipped model is a step (as a ReLU network's): Simpson's error is not
    # Richardson's 1/15 of the trapezoid's; the calibrated estimate neither overshoots nor wastes much
    model, x, exact = saturating(n=4, scale=12.0, hard=True)
    explanation = IntegratedGradients(model, steps="auto", tolerance=tolerance, max_steps=1024).explain(x, UNIT)
    delivered = per_image_error(explanation.attributions, exact) / tolerance
    assert np.all(delivered <= 1.0) and np.all(delivered >= 0.3), delivered


@pytest.mark.parametrize("rule", ["adaptive_simpson", "gauss_kronrod_7"])
def test_embedded_pairs_do_not_depend_on_batching(rule):
    model, x, _ = saturating(n=4)
    ig = lambda size: IntegratedGradients(  # noqa: E731
        model, steps="auto", rule=rule, tolerance=1e-3, batch_size=size, max_steps=1024
    )
    together = ig(5).explain(x, UNIT)
    for i in range(4):
        alone = ig(256).explain(x[i : i + 1], UNIT)
        np.testing.assert_allclose(alone.attributions[0], together.attributions[i], rtol=1e-5, atol=1e-7)
        assert (alone.steps[0], alone.evaluations[0]) == (together.steps[i], together.evaluations[i])


def test_embedded_pairs_several_baselines_and_max_steps():
    model, x, _ = saturating(n=2)
    short = IntegratedGradients(model, steps="auto", rule="gauss_kronrod_15", tolerance=1e-9, max_steps=45).explain(
        x, UNIT
    )
    assert short.steps.tolist() == [45, 45]  # 1, then 2, then 3 panels: no room for a fourth
    assert all("not met within max_steps=45" in w and "estimated error" in w for w in short.warnings)
    model, weights, _ = linear_model((3, 3, 1), n_classes=1)
    explanation = IntegratedGradients(
        model, steps="auto", rule="gauss_kronrod_7", baseline="uniform", n_baselines=3
    ).explain(rand((2, 3, 3, 1)), 0)
    assert np.all(explanation.relative_delta <= 1e-5)
    assert explanation.steps.tolist() == [7, 7] and explanation.evaluations.tolist() == [21, 21]  # 7 per baseline


def test_adaptive_simpson_evaluates_each_point_once_and_is_the_default():
    model, x, _ = saturating(n=1, scale=20.0, hard=True, shape=(2, 2, 1))
    ig = IntegratedGradients(model, steps="auto", tolerance=1e-3)
    assert ig.rule == "adaptive_simpson"
    explanation = ig.explain(x, UNIT)
    # bisecting a panel adds its two quarter points: every gradient is kept in the map
    assert explanation.steps.tolist() == explanation.evaluations.tolist()
    assert explanation.steps[0] > 3 and explanation.steps[0] % 2 == 1


def test_kronrod_needs_one_panel_and_auto():
    model, _, _ = linear_model((2, 2, 1))
    with pytest.raises(ValueError, match="max_steps must be an integer >= 15 for rule 'gauss_kronrod_15'"):
        IntegratedGradients(model, steps="auto", rule="gauss_kronrod_15", max_steps=14)
    with pytest.raises(ValueError, match="use it with steps='auto'"):
        IntegratedGradients(model, steps=15, rule="gauss_kronrod_15")


def test_term_store_keeps_filled_slots_when_it_grows_and_reuses_freed_ones():
    store = _Terms(2, 3)
    first = store.take(2)
    store.data[first] = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    more = store.take(5)  # the store grows in place
    assert len(store.data) >= 7 and not set(first.tolist()) & set(more.tolist())
    np.testing.assert_array_equal(store.data[first], np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    store.give(first)
    assert sorted(store.take(2).tolist()) == sorted(first.tolist())


def test_to_bisect_takes_each_images_worst_panels_holding_half_its_squared_error_within_its_budget():
    image = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    lo = np.array([0.0, 0.25, 0.5, 0.75, 0.0, 0.5, 0.0, 0.5])
    size = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 1.0, 2.0, 2.0])
    # image 0: four equal panels, half the mass is two of them (lower lo first); image 1: the big one
    # holds 90 %; image 2: equal pair, but a budget of one
    chosen = _to_bisect(image, lo, size, np.array([9, 9, 1]))
    assert sorted(chosen.tolist()) == [0, 1, 4, 6]
    assert _to_bisect(image[:0], lo[:0], size[:0], np.array([1])).size == 0
