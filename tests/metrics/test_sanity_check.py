"""The model-randomisation check: layer re-initialisation, per-method errors, undefined correlations."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medxai import Gradient
from medxai.metrics.randomisation import cascading_randomisation, randomised_copy, weighted_layers


def bn_model(*, nested: bool = False) -> keras.Model:
    """Conv-BatchNorm-ReLU, global pooling, Dense(2); BatchNorm statistics as after training."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    block = [keras.layers.Conv2D(3, 3, padding="same", name="conv"), keras.layers.BatchNormalization(name="bn")]
    if nested:
        x = keras.Sequential([keras.Input((8, 8, 1)), *block], name="block")(inputs)
    else:
        x = block[1](block[0](inputs))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(x))
    bn = model.get_layer("block").get_layer("bn") if nested else model.get_layer("bn")
    rng = np.random.default_rng(1)
    bn.set_weights([rng.uniform(0.5, 2.0, 3), rng.normal(0, 1, 3), rng.normal(0, 1, 3), rng.uniform(0.01, 3.0, 3)])
    return model


def gradient_explain(images, classes):
    def explain(model, name):
        return Gradient(model).attribute(images, classes)

    return explain


def test_randomised_batchnorm_gets_its_initial_values():
    model = bn_model()
    trained = [w.copy() for w in model.get_weights()]
    layers = weighted_layers(model)
    assert layers == ["dense", "bn", "conv"]
    copy = randomised_copy(model, layers, seed=3)
    gamma, beta, mean, variance = copy.get_layer("bn").get_weights()
    np.testing.assert_array_equal(variance, np.ones(3))  # its initializer, never negative
    np.testing.assert_array_equal(mean, np.zeros(3))
    np.testing.assert_array_equal(gamma, np.ones(3))
    np.testing.assert_array_equal(beta, np.zeros(3))
    assert not np.allclose(copy.get_layer("conv").get_weights()[0], model.get_layer("conv").get_weights()[0])
    for a, b in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the trained model is left alone
    same = randomised_copy(model, layers, seed=3).get_layer("conv").get_weights()[0]
    other = randomised_copy(model, layers, seed=4).get_layer("conv").get_weights()[0]
    np.testing.assert_array_equal(same, copy.get_layer("conv").get_weights()[0])
    assert not np.array_equal(other, same)


def test_cascade_on_a_conv_batchnorm_relu_model_is_finite():
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    result = cascading_randomisation(bn_model(), gradient_explain(images, [0, 1]), ["gradient"], seeds=(0, 1))
    assert result.errors == {}
    assert [(s.step, s.layer) for s in result.steps] == [(1, "dense"), (2, "bn"), (3, "conv")]
    for s in result.steps:
        assert all(np.isfinite(v) for v in (s.spearman, s.spearman_sd, s.spearman_abs, s.spearman_abs_sd))
        assert s.undefined == 0
    assert result.verdict("gradient")["verdict"] in ("PASS", "FAIL")


def test_nested_model_layers_are_randomised_one_by_one():
    model = bn_model(nested=True)
    assert weighted_layers(model) == ["dense", "block/bn", "block/conv"]
    copy = randomised_copy(model, ["block/bn"], seed=0)
    np.testing.assert_array_equal(copy.get_layer("block").get_layer("bn").get_weights()[3], np.ones(3))
    np.testing.assert_array_equal(
        copy.get_layer("block").get_layer("conv").get_weights()[0],
        model.get_layer("block").get_layer("conv").get_weights()[0],
    )
    images = np.random.default_rng(0).random((1, 8, 8, 1)).astype(np.float32)
    result = cascading_randomisation(model, gradient_explain(images, [1]), ["gradient"])
    assert [s.layer for s in result.steps] == ["dense", "block/bn", "block/conv"]
    assert all(np.isfinite(s.spearman_abs) for s in result.steps)


def test_signed_and_absolute_correlations_and_verdicts():
    model = bn_model()
    a = np.array([[1.0, -2.0], [3.0, -4.0]])[None, ..., None]
    zero_rho = np.array([[2.0, 4.0], [1.0, 3.0]])[None, ..., None]  # ranks 2,4,1,3 vs 1,2,3,4: rho = 0

    def explain(m, name):
        if m is model:
            return a if name == "flipped" else np.abs(a)
        return -a if name == "flipped" else zero_rho

    result = cascading_randomisation(model, explain, ["flipped", "independent"], seeds=(0, 1, 2))
    flipped = [s for s in result.steps if s.method == "flipped"]
    assert all(s.spearman == pytest.approx(-1.0) and s.spearman_abs == pytest.approx(1.0) for s in flipped)
    assert flipped[-1].spearman_sd == pytest.approx(0.0)
    verdict = result.verdict("flipped")
    assert verdict["verdict"] == "FAIL" and verdict["passed"] is False and verdict["seeds"] == 3
    verdict = result.verdict("independent", threshold=0.5)
    assert verdict["verdict"] == "PASS" and verdict["final_spearman"] == pytest.approx(0.0)


def test_a_constant_map_is_undefined_not_pass_or_fail():
    model = bn_model()
    reference = np.random.default_rng(0).random((2, 8, 8, 1))

    def explain(m, name):
        return reference if m is model else np.zeros_like(reference)

    result = cascading_randomisation(model, explain, ["flat"], seeds=(0, 1))
    assert all(np.isnan(s.spearman) and np.isnan(s.spearman_abs) and s.undefined == 4 for s in result.steps)
    verdict = result.verdict("flat")
    assert verdict["verdict"] == "undefined" and verdict["passed"] is None


def test_a_method_that_raises_is_recorded_and_the_others_go_on():
    model = bn_model()
    images = np.random.default_rng(0).random((1, 8, 8, 1)).astype(np.float32)
    calls = {"broken": 0}
    gradient = gradient_explain(images, [0])

    def explain(m, name):
        if name == "broken":
            calls["broken"] += 1
            if calls["broken"] == 3:
                raise RuntimeError("out of memory")
        return gradient(m, name)

    result = cascading_randomisation(model, explain, ["broken", "gradient"])
    assert result.errors == {"broken": "seed 0, step 2 (bn): RuntimeError: out of memory"}
    assert [s.step for s in result.steps if s.method == "broken"] == [1]
    assert [s.step for s in result.steps if s.method == "gradient"] == [1, 2, 3]
    verdict = result.verdict("broken")
    assert verdict["verdict"] == "error" and "out of memory" in verdict["error"] and verdict["passed"] is None
    result = cascading_randomisation(model, lambda m, name: np.zeros((2, 2)), ["bad_shape"])
    assert "(N, *spatial, C)" in result.errors["bad_shape"]


def test_seeded_initializers_still_give_one_randomisation_per_seed():
    """A model built with ``GlorotUniform(seed=7)`` must not randomise to one model for every seed."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=7), name="conv")(inputs)
    inner = keras.Model(inputs, x, name="inner")
    outer_in = keras.Input((8, 8, 1))
    y = keras.layers.GlobalAveragePooling2D()(inner(outer_in))
    model = keras.Model(outer_in, keras.layers.Dense(2, kernel_initializer=keras.initializers.HeNormal(seed=3))(y))
    kernels = {}
    for seed in (0, 1):
        copy = randomised_copy(model, weighted_layers(model), seed=seed)
        kernels[seed] = [w.copy() for w in copy.get_weights() if w.ndim > 1]
    assert all(not np.allclose(a, b) for a, b in zip(kernels[0], kernels[1]))
    again = randomised_copy(model, weighted_layers(model), seed=1).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip([w for w in again if w.ndim > 1], kernels[1]))
