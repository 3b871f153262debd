"""The explained output is really what the user asked for (logits by default)."""

import keras
import numpy as np
import pytest
from analytic_models import linear_model

from medxai import Gradient, IntegratedGradients
from medxai.errors import OutputSelectionError
from medxai.methods._engine.output import explained_model
from medxai.methods._engine.spec import OutputSpec

SHAPE = (3, 3, 1)
x = np.random.default_rng(0).uniform(size=(4, *SHAPE)).astype(np.float32)


def logits_of(weights, bias, images):
    return images.reshape(len(images), -1) @ weights + bias


def test_logits_of_a_softmax_model_are_the_pre_activation():
    model, weights, bias = linear_model(SHAPE, n_classes=3, activation="softmax")
    logits = explained_model(model, "logits")
    assert logits is not model
    np.testing.assert_allclose(logits(x).numpy(), logits_of(weights, bias, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.softmax(logits(x)).numpy(), model(x).numpy(), rtol=1e-5)
    # the original model is untouched
    assert model.layers[-1].activation.__name__ == "softmax"


def test_ig_on_softmax_model_explains_logits_by_default_and_probabilities_on_request():
    model, weights, bias = linear_model(SHAPE, n_classes=3, activation="softmax")
    a, delta = IntegratedGradients(model, steps=4).attribute(x, 2, return_delta=True)
    np.testing.assert_allclose(a.reshape(4, -1), weights[:, 2] * x.reshape(4, -1), rtol=1e-5, atol=1e-6)
    p, p_delta = IntegratedGradients(model, steps=64, output="probabilities").attribute(x, 2, return_delta=True)
    probabilities = model(x).numpy()[:, 2]
    baseline_probability = model(np.zeros((1, *SHAPE), np.float32)).numpy()[0, 2]
    np.testing.assert_allclose(p.reshape(4, -1).sum(1), probabilities - baseline_probability, atol=1e-4)
    assert not np.allclose(p, a)


def test_sigmoid_and_separate_activation_layers():
    sig_model, weights, bias = linear_model(SHAPE, n_classes=1, activation="sigmoid")
    z = logits_of(weights, bias, x)
    # one sigmoid unit reads as two classes: 0 = the negative logit, 1 = the logit
    np.testing.assert_allclose(
        explained_model(sig_model)(x).numpy(), np.concatenate([-z, z], axis=1), rtol=1e-5, atol=1e-6
    )
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(
        explained_model(sig_model, "probabilities")(x).numpy(), np.concatenate([1 - p, p], axis=1), rtol=1e-5, atol=1e-6
    )
    inputs = keras.Input(SHAPE)
    dense = keras.layers.Dense(2)
    out = keras.layers.Softmax()(dense(keras.layers.Flatten()(inputs)))
    model = keras.Model(inputs, out)
    w, b = dense.get_weights()
    np.testing.assert_allclose(explained_model(model)(x).numpy(), logits_of(w, b, x), rtol=1e-5, atol=1e-6)
    seq = keras.Sequential(
        [keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(2), keras.layers.Activation("softmax")]
    )
    w, b = seq.layers[1].get_weights()
    np.testing.assert_allclose(explained_model(seq)(x).numpy(), logits_of(w, b, x), rtol=1e-5, atol=1e-6)


def test_linear_model_is_its_own_logits():
    model, _, _ = linear_model(SHAPE)
    assert explained_model(model, "logits") is model
    # a model without a head: its probabilities are the softmax of its logits (sigmoid with model.activation)
    z = model(x).numpy()
    softmax = np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    np.testing.assert_allclose(explained_model(model, "probabilities")(x).numpy(), softmax, rtol=1e-5, atol=1e-7)
    sigmoid = explained_model(model, OutputSpec("probabilities", activation="sigmoid"))(x).numpy()
    np.testing.assert_allclose(sigmoid, 1 / (1 + np.exp(-z)), rtol=1e-5, atol=1e-7)


def test_named_layer_output():
    inputs = keras.Input(SHAPE)
    hidden = keras.layers.Dense(5, name="hidden")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    chosen = explained_model(model, "hidden")
    assert chosen.outputs[0].shape[-1] == 5
    w, b = model.get_layer("hidden").get_weights()
    np.testing.assert_allclose(chosen(x).numpy(), logits_of(w, b, x), rtol=1e-5, atol=1e-6)
    g = Gradient(model, output="hidden", absolute=False).attribute(x, 4)
    np.testing.assert_allclose(g.reshape(4, -1), np.tile(w[:, 4], (4, 1)), rtol=1e-5)


def test_feature_map_layer_is_averaged_over_space():
    inputs = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(3, 1, name="conv")
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(conv(inputs))))
    chosen = explained_model(model, "conv")
    images = np.random.default_rng(1).uniform(size=(2, 4, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(chosen(images).numpy(), conv(images).numpy().mean(axis=(1, 2)), rtol=1e-5)


def test_unknown_layer_lists_layers():
    model, _, _ = linear_model(SHAPE)
    with pytest.raises(OutputSelectionError, match="layers: .*dense"):
        explained_model(model, "pre_softmax")


def test_multi_output_model_rejected():
    inputs = keras.Input(SHAPE)
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(flat), keras.layers.Dense(3)(flat)])
    with pytest.raises(OutputSelectionError, match="one input and one output"):
        explained_model(model)
