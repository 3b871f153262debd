"""gradient_x_input, guided_backprop, guided_gradcam: exact maths, a tape reference, the model untouched, 3D."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from analytic_models import linear_model, small_cnn

import medxai


def images(shape, n=3, seed=0, low=-1.0):
    return np.random.default_rng(seed).uniform(low, 1.0, size=(n, *shape)).astype(np.float32)


def tape_gradient(model, x, target):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x, training=False)[:, target]
    return tape.gradient(y, x).numpy()


def relu_net(shape=(5, 5, 2), seed=1):
    """Conv (ReLU) -> ReLU() layer -> keras.ops.relu -> Flatten -> Dense (ReLU) -> Dense logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.ReLU()(keras.layers.Conv2D(3, 3, padding="same", name="c2")(h))
    h = keras.ops.relu(keras.layers.Conv2D(2, 3, padding="same", name="c3")(h))
    h = keras.layers.Dense(4, activation="relu", name="d1")(keras.layers.Flatten()(h))
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(h))


@tf.custom_gradient
def guided_relu(z):
    def grad(dy):
        return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(z > 0, dy.dtype)

    return tf.nn.relu(z), grad


def guided_reference(model, x, target):
    """The network of relu_net written out by hand, every ReLU a guided one."""

    def conv(h, name):
        return tf.nn.conv2d(h, model.get_layer(name).kernel, 1, "SAME") + model.get_layer(name).bias

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = guided_relu(guided_relu(conv(guided_relu(conv(x, "c1")), "c2")))
        h = guided_relu(conv(h, "c3"))
        h = tf.reshape(h, [h.shape[0], -1])
        h = guided_relu(h @ model.get_layer("d1").kernel + model.get_layer("d1").bias)
        y = (h @ model.get_layer("head").kernel + model.get_layer("head").bias)[:, target]
    return tape.gradient(y, x).numpy()


@pytest.mark.parametrize("shape", [(4, 4, 1), (4, 4, 3), (3, 4, 4, 1)], ids=["grey", "rgb", "3d"])
def test_gradient_x_input_on_a_linear_model_is_w_times_x(shape):
    model, w, _ = linear_model(shape, activation="softmax")
    x = images(shape)
    got = medxai.GradientXInput(model).attribute(x, [0, 2, 1])
    expected = np.stack([w[:, c].reshape(shape) * x[i] for i, c in enumerate([0, 2, 1])])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_gradient_x_input_is_exactly_the_gradient_times_x_and_takes_a_baseline():
    model = small_cnn((6, 6, 2))
    x = images((6, 6, 2))
    gradient = medxai.Gradient(model, absolute=False).attribute(x, 1)
    np.testing.assert_array_equal(medxai.GradientXInput(model).attribute(x, 1), gradient * x)
    shifted = medxai.GradientXInput(model, baseline=0.5).attribute(x, 1)
    np.testing.assert_allclose(shifted, gradient * (x - 0.5), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="unknown baseline"):
        medxai.GradientXInput(model, baseline="grey")


def test_guided_backprop_without_relus_is_the_gradient():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 5, 1))
    h = keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(inputs)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, out)
    x = images((5, 5, 1))
    got = medxai.GuidedBackprop(model).attribute(x, [0, 1, 0])
    expected = medxai.Gradient(model, absolute=False).attribute(x, [0, 1, 0])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert got.min() < 0  # signed


def test_guided_backprop_matches_a_hand_written_guided_relu():
    model = relu_net()
    x = images((5, 5, 2), n=4)
    method = medxai.GuidedBackprop(model)
    for target in range(3):
        got = method.attribute(x, target)
        np.testing.assert_allclose(got, guided_reference(model, x, target), rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, tape_gradient(model, x, target))  # the gating changed something


def test_guided_backprop_leaves_the_model_untouched():
    model = relu_net()
    x = images((5, 5, 2))
    layers = [(layer.name, type(layer), getattr(layer, "activation", None)) for layer in model.layers]
    outputs = model(x, training=False).numpy()
    inner = keras.Model(model.inputs[0], model.get_layer("d1").output)(x).numpy()
    gradient = medxai.Gradient(model, absolute=False).attribute(x, 1)
    medxai.GuidedBackprop(model).attribute(x, 1)
    assert [(layer.name, type(layer), getattr(layer, "activation", None)) for layer in model.layers] == layers
    np.testing.assert_array_equal(model(x, training=False).numpy(), outputs)
    np.testing.assert_array_equal(keras.Model(model.inputs[0], model.get_layer("d1").output)(x).numpy(), inner)
    np.testing.assert_array_equal(medxai.Gradient(model, absolute=False).attribute(x, 1), gradient)
    np.testing.assert_allclose(tape_gradient(model, x, 1), gradient, rtol=1e-6, atol=1e-7)


def test_guided_backprop_explains_logits_and_accepts_a_shared_engine():
    model = small_cnn((6, 6, 1), n_classes=3)
    x = images((6, 6, 1))
    plain = medxai.Gradient(model, absolute=False)
    guided = medxai.GuidedBackprop(model, engine=plain.engine)
    assert guided.engine.explained == plain.engine.explained and "softmax removed" in guided.engine.explained
    np.testing.assert_array_equal(guided.attribute(x, 2), medxai.GuidedBackprop(model).attribute(x, 2))


@pytest.mark.parametrize("shape", [(6, 6, 2), (4, 6, 6, 1)], ids=["2d", "3d"])
def test_guided_gradcam_is_the_product_of_its_parts(shape):
    model = small_cnn(shape, n_classes=3)
    x = images(shape)
    targets = [0, 2, 1]
    method = medxai.GuidedGradCAM(model)
    got = method.attribute(x, targets)
    cam = medxai.GradCAM(model).attribute(x, targets)
    guided = medxai.GuidedBackprop(model).attribute(x, targets)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, guided * cam, rtol=1e-6, atol=1e-8)
    assert method.params()["layer"] == medxai.GradCAM(model).layer


def test_guided_gradcam_takes_a_layer():
    model = relu_net()
    x = images((5, 5, 2))
    got = medxai.GuidedGradCAM(model, layer="c1").attribute(x, 1)
    cam = medxai.GradCAM(model, layer="c1").attribute(x, 1)
    np.testing.assert_allclose(got, medxai.GuidedBackprop(model).attribute(x, 1) * cam, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="layer 'nope'"):
        medxai.GuidedGradCAM(model, layer="nope")


@pytest.mark.parametrize("name", ["gradient_x_input", "guided_backprop", "guided_gradcam"])
def test_batch_size_does_not_change_results_and_3d_works(name):
    model = small_cnn((4, 6, 6, 1), n_classes=3)
    x = images((4, 6, 6, 1), n=5)
    targets = [0, 1, 2, 1, 0]
    one = medxai.get_method(name, model, batch_size=1).attribute(x, targets)
    many = medxai.get_method(name, model, batch_size=3).attribute(x, targets)
    assert one.shape == x.shape and np.all(np.isfinite(one)) and np.abs(one).max() > 0
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-7)


def test_registered_with_aliases():
    methods = medxai.available_methods()
    assert methods["input_x_gradient"] is medxai.GradientXInput
    assert methods["guided_backpropagation"] is medxai.GuidedBackprop
    assert methods["guided_grad_cam"] is medxai.GuidedGradCAM
    assert medxai.get_method("Guided-Grad-CAM", small_cnn((6, 6, 1))).name == "guided_gradcam"


@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras.layers.Dense(4, activation="leaky_relu"),
        lambda: keras.layers.Dense(4, activation="gelu"),
        lambda: keras.layers.LeakyReLU(),
        lambda: keras.layers.ReLU(max_value=6.0),
    ],
)
def test_rectifiers_it_cannot_gate_are_refused(layer):
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(inputs)
    x = layer()(keras.layers.Dense(4)(x))
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ValueError, match="gates ReLU only.*silently mix"):
        medxai.GuidedBackprop(model)
