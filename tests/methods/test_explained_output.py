"""``output: logits`` explains the logits however the model spells its softmax, or refuses.

Each construction here used to explain probabilities while saying "logits".
"""

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

from medxai import Gradient, IntegratedGradients, SmoothGrad
from medxai.errors import ModelLoadError, OutputSelectionError
from medxai.io.model import load_model
from medxai.methods._engine.output import explained_output

SHAPE = (3, 3, 1)
x = np.random.default_rng(0).uniform(size=(4, *SHAPE)).astype(np.float32)


def _features():
    inputs = keras.Input(SHAPE)
    return inputs, keras.layers.Flatten()(inputs)


def activation_layer_with_tf_softmax():
    inputs, flat = _features()
    dense = keras.layers.Dense(3)
    return keras.Model(inputs, keras.layers.Activation(tf.nn.softmax)(dense(flat))), dense


def dense_with_tf_softmax():
    inputs, flat = _features()
    dense = keras.layers.Dense(3, activation=tf.nn.softmax)  # its __name__ is softmax_v2
    return keras.Model(inputs, dense(flat)), dense


def ops_softmax_in_graph():
    inputs, flat = _features()
    dense = keras.layers.Dense(3)
    return keras.Model(inputs, keras.ops.softmax(dense(flat))), dense


def ops_sigmoid_in_graph():
    inputs, flat = _features()
    dense = keras.layers.Dense(1)
    return keras.Model(inputs, keras.ops.sigmoid(dense(flat))), dense


def nested_sequential_head():
    inputs, flat = _features()
    dense = keras.layers.Dense(3)
    head = keras.Sequential([dense, keras.layers.Softmax()])
    return keras.Model(inputs, head(flat)), dense


def nested_functional_head():
    head_in = keras.Input((9,))
    dense = keras.layers.Dense(3, activation="softmax")
    head = keras.Model(head_in, dense(head_in), name="head")
    inputs, flat = _features()
    return keras.Model(inputs, head(flat)), dense


def sequential_with_sigmoid_activation_function():
    dense = keras.layers.Dense(2, activation=keras.activations.sigmoid)
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), dense]), dense


def softmax_then_reshape():
    inputs, flat = _features()
    dense = keras.layers.Dense(3, activation="softmax")
    return keras.Model(inputs, keras.layers.Reshape((3,))(dense(flat))), dense


REACHABLE = [
    activation_layer_with_tf_softmax,
    dense_with_tf_softmax,
    ops_softmax_in_graph,
    ops_sigmoid_in_graph,
    nested_sequential_head,
    nested_functional_head,
    sequential_with_sigmoid_activation_function,
    softmax_then_reshape,
]


def logit_gap(dense, images, target):
    w, b = dense.get_weights()
    logits = images.reshape(len(images), -1) @ w + b
    return logits[:, target] - b[target]  # zero baseline


@pytest.mark.parametrize("build", REACHABLE, ids=lambda f: f.__name__)
def test_ig_sums_to_the_logit_gap_for_every_spelling_of_softmax(build):
    model, dense = build()
    target = 1 if dense.units == 1 else 0  # one sigmoid unit reads as two classes: 1 is the unit
    attributions, delta = IntegratedGradients(model, steps=8).attribute(x, target, return_delta=True)
    np.testing.assert_allclose(attributions.reshape(4, -1).sum(1), logit_gap(dense, x, 0), rtol=1e-4, atol=1e-5)
    if dense.units == 1:  # class 0 is the negative logit
        negative = IntegratedGradients(model, steps=8).attribute(x, 0)
        np.testing.assert_allclose(negative, -attributions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(delta, 0, atol=1e-4)
    view = explained_output(model)
    assert view.removed in ("softmax", "sigmoid") and "removed" in view.description


def lambda_softmax():
    inputs, flat = _features()
    return keras.Model(inputs, keras.layers.Lambda(lambda t: keras.ops.softmax(t))(keras.layers.Dense(3)(flat)))


def dense_with_lambda_activation():
    inputs, flat = _features()
    return keras.Model(inputs, keras.layers.Dense(3, activation=lambda t: tf.nn.softmax(t))(flat))


@pytest.mark.parametrize("build", [lambda_softmax, dense_with_lambda_activation], ids=lambda f: f.__name__)
def test_hidden_softmax_is_refused_with_what_to_do(build):
    model = build()
    with pytest.raises(
        OutputSelectionError, match="look like .*probabilities.*output: probabilities.*output: <layer name>"
    ):
        IntegratedGradients(model, steps=4)
    explained = IntegratedGradients(model, steps=4, output="probabilities")  # what the message offers works
    assert explained.engine.explained.startswith("probabilities")


def test_opaque_output_that_is_not_probabilities_is_explained_as_it_is():
    inputs, flat = _features()
    dense = keras.layers.Dense(3)
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: 5.0 * t)(dense(flat)))
    ig = IntegratedGradients(model, steps=4)
    assert "probe" in ig.engine.explained
    np.testing.assert_allclose(
        ig.attribute(x, 1).reshape(4, -1).sum(1), 5 * logit_gap(dense, x, 1), rtol=1e-4, atol=1e-5
    )


def _saved_model(tmp_path, activation):
    inputs, flat = _features()
    model = keras.Model(inputs, keras.layers.Dense(3, activation=activation)(flat))
    model.export(str(tmp_path / "saved"), verbose=False)
    with pytest.raises(ModelLoadError, match="a SavedModel is code.*model.trust_saved_model: true"):
        load_model(tmp_path / "saved")  # code, so only when trusted
    return model, load_model(tmp_path / "saved", trust_saved_model=True)


def test_saved_model_with_softmax_is_refused(tmp_path):
    _, loaded = _saved_model(tmp_path, "softmax")
    with pytest.raises(OutputSelectionError, match="TFSMLayer.*look like .*probabilities"):
        Gradient(loaded)


def test_saved_model_with_logits_is_explained(tmp_path):
    original, loaded = _saved_model(tmp_path, None)
    gradient = Gradient(loaded, absolute=False)
    w = original.layers[-1].get_weights()[0]
    np.testing.assert_allclose(gradient.attribute(x, 2).reshape(4, -1), np.tile(w[:, 2], (4, 1)), rtol=1e-5)


def test_a_new_method_explains_the_new_weights_after_set_weights():
    model, dense = dense_with_tf_softmax()
    IntegratedGradients(model, steps=4).attribute(x, 0)
    fresh = [np.random.default_rng(7).normal(size=v.shape).astype(np.float32) for v in dense.get_weights()]
    dense.set_weights(fresh)
    attributions = IntegratedGradients(model, steps=4).attribute(x, 0)
    np.testing.assert_allclose(attributions.reshape(4, -1).sum(1), logit_gap(dense, x, 0), rtol=1e-4, atol=1e-5)


def test_the_same_method_follows_later_weight_changes_too():
    model, dense = dense_with_tf_softmax()
    gradient = Gradient(model, absolute=False)
    gradient.attribute(x, 0)
    dense.set_weights([2 * v for v in dense.get_weights()])
    np.testing.assert_allclose(
        gradient.attribute(x, 0).reshape(4, -1), np.tile(dense.get_weights()[0][:, 0], (4, 1)), rtol=1e-5
    )


def test_mixed_precision_follows_weight_changes():
    model, dense = dense_with_tf_softmax()
    gradient = Gradient(model, absolute=False, precision="mixed")
    gradient.attribute(x, 0)
    dense.set_weights([2 * v for v in dense.get_weights()])
    np.testing.assert_allclose(
        gradient.attribute(x, 0).reshape(4, -1), np.tile(dense.get_weights()[0][:, 0], (4, 1)), rtol=2e-2, atol=1e-2
    )


def test_the_user_model_is_untouched():
    model, dense = dense_with_tf_softmax()
    before = model(x).numpy()
    IntegratedGradients(model, steps=4).attribute(x, 0)
    np.testing.assert_allclose(model(x).numpy(), before)
    assert dense.activation is tf.nn.softmax
    np.testing.assert_allclose(before.sum(1), 1, rtol=1e-5)


def test_dropped_models_are_freed():
    refs = []
    for _ in range(20):
        model, _ = dense_with_tf_softmax()
        ig = IntegratedGradients(model, steps=2)
        ig.attribute(x, 0)
        SmoothGrad(model, samples=2, engine=ig.engine).attribute(x, 0)
        refs.append(weakref.ref(model))
        del model, ig
    gc.collect()
    alive = [r for r in refs if r() is not None]
    assert not alive, f"{len(alive)} of 20 models are still alive"
