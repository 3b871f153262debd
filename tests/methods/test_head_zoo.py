"""The head zoo: however a model spells (or hides) its softmax/sigmoid, ``output: logits`` explains the
logits exactly, or every method refuses. Never a map of probabilities labelled "logits".

Each construction shares its trunk (a conv, global pooling, a Dense giving the logits z) with a
reference model that outputs z itself, so the right answer is that model's attributions.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import medxai
from medxai import IntegratedGradients
from medxai.errors import OutputSelectionError
from medxai.methods._engine.head import read_head, read_values
from medxai.methods._engine.output import explained_output
from medxai.methods._engine.spec import OutputSpec
from medxai.methods.registry import canonical_methods

SHAPE = (6, 6, 1)
FAST = {
    "integrated_gradients": {"steps": 4},
    "smoothgrad": {"samples": 2},
    "occlusion": {"window": 3},
    "rise": {"samples": 8, "cells": 2},
    "blur_ig": {"steps": 3},
    "guided_ig": {"steps": 3},
    "lime": {"samples": 8},
}
x = np.random.default_rng(0).uniform(size=(3, *SHAPE)).astype(np.float32)


def trunk(units=3, seed=0):
    """Input -> conv -> pooling -> Dense(units): the logits z, and the reference model giving z."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    z = keras.layers.Dense(units, bias_initializer="random_normal")(keras.layers.GlobalAveragePooling2D()(features))
    return inputs, z, keras.Model(inputs, z)


def _nested(head_layers):
    def build(inputs, z):
        head_in = keras.Input(z.shape[1:])
        out = head_in
        for layer in head_layers():
            out = layer(out)
        return keras.Model(head_in, out, name="head")(z)

    return build


#: Heads whose logits the graph proves (issue 18, items 1-2), each on the trunk's z.
PROVED = {
    "softmax_then_linear": lambda i, z: keras.layers.Activation("linear")(keras.layers.Softmax()(z)),
    "softmax_then_relu": lambda i, z: keras.layers.Activation("relu")(keras.layers.Softmax()(z)),
    "softmax_then_softplus": lambda i, z: keras.layers.Activation("softplus")(keras.layers.Softmax()(z)),
    "nested_softmax_then_linear": _nested(lambda: [keras.layers.Softmax(), keras.layers.Activation("linear")]),
    "softmax_then_rescaling_100": lambda i, z: keras.layers.Rescaling(100.0)(keras.layers.Softmax()(z)),
    "softmax_times_100_in_graph": lambda i, z: keras.layers.Softmax()(z) * 100.0,
    "ops_log_of_softmax": lambda i, z: keras.ops.log(keras.ops.softmax(z)),
    "ops_log_softmax": lambda i, z: keras.ops.log_softmax(z),
    "lambda_tf_log_softmax": lambda i, z: keras.layers.Lambda(tf.nn.log_softmax)(z),
    "activation_log_sigmoid": lambda i, z: keras.layers.Activation("log_sigmoid")(z),
    "dense_softmax_then_dropout": None,  # built below: the activation inside the Dense
}
#: Heads that hide their logits under something opaque: ``logits`` must be refused.
HIDDEN = {
    "lambda_percent_of_softmax": lambda i, z: keras.layers.Lambda(lambda p: p * 100.0)(keras.layers.Softmax()(z)),
    "lambda_softmax": lambda i, z: keras.layers.Lambda(lambda t: keras.ops.softmax(t))(z),
    "lambda_sigmoid_multi_label": lambda i, z: keras.layers.Lambda(lambda t: tf.sigmoid(t))(z),
    "lambda_log_softmax": lambda i, z: keras.layers.Lambda(lambda t: tf.nn.log_softmax(t))(z),
}


def build(name):
    """(model, reference) for a construction of the zoo."""
    if name == "dense_softmax_then_dropout":
        keras.utils.set_random_seed(0)
        inputs = keras.Input(SHAPE)
        pooled = keras.layers.GlobalAveragePooling2D()(
            keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        )
        dense = keras.layers.Dense(3, activation="softmax", bias_initializer="random_normal")
        model = keras.Model(inputs, keras.layers.Dropout(0.5)(dense(pooled)))
        same = keras.layers.Dense(3)
        reference = keras.Model(inputs, same(pooled))
        same.set_weights(dense.get_weights())
        return model, reference
    inputs, z, reference = trunk()
    head = {**PROVED, **HIDDEN}[name]
    return keras.Model(inputs, head(inputs, z)), reference


def logit_gap(reference, images, target):
    return reference(images).numpy()[:, target] - reference(np.zeros_like(images)).numpy()[:, target]


@pytest.mark.parametrize("name", sorted(PROVED))
def test_ig_of_every_proved_head_sums_to_the_true_logit_gap(name):
    model, reference = build(name)
    explanation = IntegratedGradients(model, steps=16).explain(x, [0, 1, 2])
    gaps = [logit_gap(reference, x[k : k + 1], k)[0] for k in range(3)]
    np.testing.assert_allclose(explanation.attributions.reshape(3, -1).sum(1), gaps, rtol=2e-3, atol=1e-5)
    description = explained_output(model).description
    assert description.startswith("logits: ") and "removed" in description


@pytest.mark.parametrize("name", ["softmax_then_linear", "softmax_then_rescaling_100", "lambda_tf_log_softmax"])
@pytest.mark.parametrize("method", sorted(canonical_methods()))
def test_every_method_explains_the_true_logits_of_a_proved_head(method, name):
    """Every registered method on the zoo model gives exactly its map on the logits model."""
    model, reference = build(name)
    params = FAST.get(method, {})
    got = medxai.get_method(method, model, **params).attribute(x, [0, 1, 2])
    want = medxai.get_method(method, reference, **params).attribute(x, [0, 1, 2])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(HIDDEN))
@pytest.mark.parametrize("method", sorted(canonical_methods()))
def test_every_method_refuses_logits_it_cannot_prove(method, name):
    model, _ = build(name)
    with pytest.raises(OutputSelectionError, match=r"Lambda .*output: probabilities.*output: <layer name>"):
        medxai.get_method(method, model, **FAST.get(method, {}))


def test_the_refusal_names_the_hidden_softmax_and_the_layers():
    model, _ = build("lambda_percent_of_softmax")
    with pytest.raises(OutputSelectionError) as refused:
        explained_output(model)
    message = str(refused.value)
    assert "Lambda 'lambda" in message and "softmax" in message and "dense" in message
    # percentages are not probabilities either: no scores can be made from them
    with pytest.raises(OutputSelectionError, match="output 'probabilities'"):
        explained_output(model, "probabilities")


def test_one_unit_sigmoid_then_linear_is_the_sigmoid_convention():
    inputs, z, reference = trunk(units=1)
    model = keras.Model(inputs, keras.layers.Activation("linear")(keras.layers.Activation("sigmoid")(z)))
    positive = IntegratedGradients(model, steps=16).attribute(x, 1)
    negative = IntegratedGradients(model, steps=16).attribute(x, 0)
    gap = logit_gap(reference, x, 0)
    np.testing.assert_allclose(positive.reshape(3, -1).sum(1), gap, rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(negative, -positive, rtol=1e-6, atol=1e-7)


def test_multi_label_sigmoid_inside_a_lambda_is_read_from_its_values():
    model, _ = build("lambda_sigmoid_multi_label")
    head = read_head(model, OutputSpec("probabilities"))
    assert (head.kind, head.activation, head.witness, head.multi_label) == ("probabilities", "sigmoid", "values", True)
    softmax, _ = build("lambda_softmax")
    assert read_head(softmax).multi_label is False and read_head(softmax).activation == "softmax"


def test_log_probabilities_are_explained_as_probabilities_by_their_exponential():
    model, reference = build("lambda_log_softmax")
    view = explained_output(model, "probabilities")
    z = reference(x).numpy()
    softmax = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(view.model(x).numpy(), softmax, rtol=1e-5, atol=1e-7)
    assert "log-probabilities" in view.description


def test_output_kind_logits_lets_the_user_vouch_for_an_opaque_output():
    inputs, z, reference = trunk()
    squeezed = keras.Model(inputs, keras.layers.Lambda(lambda t: 0.01 * t + 0.5)(z))  # logits that lie in [0, 1]
    with pytest.raises(OutputSelectionError, match="model.output_kind: logits"):
        IntegratedGradients(squeezed, steps=4)
    ig = IntegratedGradients(squeezed, steps=8, output_kind="logits")
    assert ig.engine.head.witness == "user"
    np.testing.assert_allclose(
        ig.attribute(x, 1).reshape(3, -1).sum(1), 0.01 * logit_gap(reference, x, 1), rtol=1e-3, atol=1e-7
    )


def test_output_kind_and_activation_that_contradict_the_graph_are_refused():
    model, _ = build("softmax_then_linear")
    with pytest.raises(OutputSelectionError, match="output_kind: logits, but the model's output is squashed"):
        explained_output(model, OutputSpec("logits", kind="logits"))
    with pytest.raises(OutputSelectionError, match="activation: sigmoid, but the model's head is a softmax"):
        explained_output(model, OutputSpec("logits", activation="sigmoid"))
    _, _, plain = trunk()
    with pytest.raises(OutputSelectionError, match="output_kind: probabilities, but the graph proves"):
        explained_output(plain, OutputSpec("logits", kind="probabilities"))
    with pytest.raises(OutputSelectionError, match="output_kind must be one of auto, logits, probabilities"):
        OutputSpec("logits", kind="scores")


def test_values_witness_on_the_study_disagreeing_with_the_probes_is_refused():
    inputs, z, _ = trunk()
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: 5.0 * t)(z))
    head = read_head(model)
    assert head.witness == "values" and head.values == "logits"
    head.check_values(model(x).numpy())  # the study agrees: nothing to say
    with pytest.raises(
        OutputSelectionError, match="looked like logits.*probe.*softmax probabilities.*model.output_kind"
    ):
        head.check_values(np.array([[0.2, 0.3, 0.5]]))


def test_read_values():
    assert read_values(np.array([[0.1, 0.9], [0.5, 0.5]])) == "softmax"
    assert read_values(np.log(np.array([[0.1, 0.9]]))) == "log_softmax"
    assert read_values(np.array([[0.1, 0.2]])) == "sigmoid"
    assert read_values(np.array([[0.7]])) == "sigmoid"
    assert read_values(np.array([[-0.1, 0.2]])) == "logits"
    assert read_values(np.array([[np.nan, 0.2]])) == "logits"


def test_a_subclassed_model_that_has_been_called_is_explained():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten, self.dense = keras.layers.Flatten(), keras.layers.Dense(3)

        def call(self, t):
            return self.dense(self.flatten(t))

    net = Net()
    net(x)
    w, b = net.dense.get_weights()
    gradient = medxai.Gradient(net, absolute=False).attribute(x, 2)
    np.testing.assert_allclose(gradient.reshape(3, -1), np.tile(w[:, 2], (3, 1)), rtol=1e-5)
    with pytest.raises(OutputSelectionError, match="has not been built"):
        medxai.Gradient(Net())


def test_an_integer_input_is_refused_with_the_fix():
    inputs = keras.Input(SHAPE, dtype="uint8")
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(scaled)))
    with pytest.raises(OutputSelectionError, match="uint8: gradients do not flow.*float32 Input"):
        IntegratedGradients(model, steps=4)


@pytest.mark.parametrize("target", [2**32 + 1, -1, 3, 1.5, "1", True])
def test_targets_out_of_range_or_not_integers_are_refused(target):
    _, _, model = trunk()
    with pytest.raises(ValueError, match="target"):
        medxai.Gradient(model).attribute(x[:1], target)
