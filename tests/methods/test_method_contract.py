"""The contract every registered method keeps (xplique style: one test, every method)."""

import numpy as np
import pytest
from analytic_models import small_cnn

import medxai
from medxai import XAIMethod
from medxai.methods.registry import canonical_methods

FAST = {
    "integrated_gradients": {"steps": 4},
    "smoothgrad": {"samples": 3},
    "gradient": {},
    "gradcam": {},
    "gradcam_plus_plus": {},
    "hirescam": {},
    "layercam": {},
    "occlusion": {"window": 2},
    "rise": {"samples": 16, "cells": 2},
    "blur_ig": {"steps": 3},
    "guided_ig": {"steps": 4},
    "lime": {"samples": 16},
}
SHAPES = [(8, 8, 1), (8, 8, 3), (4, 6, 6, 1)]


@pytest.fixture(scope="module")
def models():
    return {shape: small_cnn(shape) for shape in SHAPES}


@pytest.mark.parametrize("name", sorted(canonical_methods()))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_contract(models, name, shape):
    method = medxai.get_method(name, models[shape], **FAST.get(name, {}))
    x = np.random.default_rng(0).uniform(size=(2, *shape)).astype(np.float32)
    attributions = method.attribute(x, [0, 1])
    assert attributions.shape == x.shape and attributions.dtype == np.float32
    assert np.all(np.isfinite(attributions))
    heatmap = method.compute_heatmap(x[1], class_index=1)
    assert heatmap.shape == shape[:-1] and heatmap.dtype == np.float32
    assert heatmap.min() == 0.0 and heatmap.max() == 1.0
    np.testing.assert_array_equal(method.compute_heatmap(x[1:2], 1), heatmap)
    # the same image alone or inside a batch: equal up to float rounding of batched convolutions
    np.testing.assert_allclose(heatmap, medxai.to_heatmap(attributions[1], method.heatmap), atol=1e-5)
    with pytest.raises(ValueError, match="one image"):
        method.compute_heatmap(x, 0)
    if method.has_delta:
        _, delta = method.attribute(x, [0, 1], return_delta=True)
        assert delta.shape == (2,)


def test_grey_image_without_channel_axis(models):
    method = medxai.Gradient(models[(8, 8, 1)])
    image = np.random.default_rng(0).uniform(size=(8, 8)).astype(np.float32)
    np.testing.assert_array_equal(method.compute_heatmap(image, 0), method.compute_heatmap(image[..., None], 0))


def test_subclass_without_attribute_cannot_be_instantiated(models):
    class Forgetful(XAIMethod):
        name = "forgetful"

    with pytest.raises(TypeError, match="abstract"):
        Forgetful(models[(8, 8, 1)])


def test_heatmap_policy_is_a_method_option(models):
    x = np.random.default_rng(0).normal(size=(8, 8, 1)).astype(np.float32)
    positive = medxai.Gradient(models[(8, 8, 1)], absolute=False, heatmap={"polarity": "positive"})
    negative = medxai.Gradient(models[(8, 8, 1)], absolute=False, heatmap={"polarity": "negative"})
    g = positive.attribute(x[None], 0)[0, ..., 0]
    assert positive.compute_heatmap(x, 0)[g <= 0].max() == 0
    assert negative.compute_heatmap(x, 0)[g >= 0].max() == 0


@pytest.mark.parametrize("name", sorted(canonical_methods()))
def test_batch_size_and_repetition_never_change_a_result(models, name):
    """Every method: deterministic for its seed, and batch_size bounds memory without changing a result."""
    shape = (8, 8, 1)
    x = np.random.default_rng(1).uniform(size=(3, *shape)).astype(np.float32)
    big = medxai.get_method(name, models[shape], batch_size=64, **FAST.get(name, {})).attribute(x, [0, 1, 1])
    again = medxai.get_method(name, models[shape], batch_size=64, **FAST.get(name, {})).attribute(x, [0, 1, 1])
    small = medxai.get_method(name, models[shape], batch_size=2, **FAST.get(name, {})).attribute(x, [0, 1, 1])
    np.testing.assert_array_equal(again, big)
    np.testing.assert_allclose(small, big, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(canonical_methods()))
def test_a_method_that_cannot_apply_says_so(name):
    """On a model without spatial layers every method either works or refuses with a ValueError."""
    import keras

    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    try:
        attributions = medxai.get_method(name, model, **FAST.get(name, {})).attribute(x, [0, 1])
    except ValueError as err:
        assert "layer" in str(err)  # the CAM family: no layer with spatial axes, named in the message
    else:
        assert attributions.shape == x.shape and np.all(np.isfinite(attributions))
