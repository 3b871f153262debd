"""The activation-map (CAM) family: exact maths on GAP heads, a tape reference, layers, 3D, batching, logits."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from analytic_models import small_cnn

import medxai

CAMS = ["gradcam", "gradcam_plus_plus", "hirescam", "layercam"]


def gap_model(shape=(6, 6, 2), n_classes=3, *, activation=None, positive=False, seed=0):
    """conv (same padding, ReLU) -> global average pooling -> Dense: the CAM architecture of Zhou et al. 2016."""
    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv2D if len(shape) == 3 else keras.layers.Conv3D
    pool = keras.layers.GlobalAveragePooling2D if len(shape) == 3 else keras.layers.GlobalAveragePooling3D
    inputs = keras.Input(shape)
    features = conv(4, 3, padding="same", activation="relu", name="features")(inputs)
    head = keras.layers.Dense(n_classes, activation=activation, name="head")
    model = keras.Model(inputs, head(pool()(features)))
    if positive:
        kernel, bias = head.get_weights()
        head.set_weights([np.abs(kernel) + 0.1, bias])
    return model


def activations_of(model, layer, x):
    return keras.Model(model.inputs[0], model.get_layer(layer).output)(x).numpy().astype(np.float64)


def images(shape, n=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(6, 6, 2), (4, 5, 5, 1)], ids=["2d", "3d"])
def test_gradcam_on_a_gap_head_is_cam(shape):
    model = gap_model(shape)
    x, targets = images(shape), [0, 2, 1]
    a = activations_of(model, "features", x)
    kernel = model.get_layer("head").get_weights()[0]
    cells = np.prod(a.shape[1:-1])
    # CAM (Zhou et al. 2016): sum_k W[k, c] A_k; Grad-CAM adds the ReLU and dY/dA = W[k, c] / (H * W)
    cam = np.stack([np.maximum(a[i] @ kernel[:, c], 0) / cells for i, c in enumerate(targets)])
    method = medxai.GradCAM(model)
    assert method.layer == "features"
    got = method.attribute(x, targets)
    assert got.shape == x.shape and got.dtype == np.float32 and got.min() >= 0
    np.testing.assert_allclose(got, np.repeat(cam[..., None], shape[-1], axis=-1), rtol=1e-5, atol=1e-7)
    # for a GAP head the gradient is constant over space, so HiResCAM is Grad-CAM
    np.testing.assert_allclose(medxai.HiResCAM(model).attribute(x, targets), got, rtol=1e-5, atol=1e-7)


def test_layercam_with_positive_gradients_is_hirescam():
    model = gap_model(positive=True)
    x = images((6, 6, 2))
    np.testing.assert_allclose(
        medxai.LayerCAM(model).attribute(x, 1), medxai.HiResCAM(model).attribute(x, 1), rtol=1e-5, atol=1e-7
    )


def test_gradcam_plus_plus_closed_form_on_a_gap_head():
    model = gap_model()
    x = images((6, 6, 2))
    a = activations_of(model, "features", x)
    g = np.broadcast_to(model.get_layer("head").get_weights()[0][:, 1] / 36.0, a.shape)
    alpha = g**2 / (2 * g**2 + a.sum(axis=(1, 2), keepdims=True) * g**3)  # eq. 19
    weights = (alpha * np.maximum(g, 0)).sum(axis=(1, 2), keepdims=True)
    expected = np.maximum((weights * a).sum(axis=-1), 0)
    got = medxai.GradCAMPlusPlus(model).attribute(x, 1)
    np.testing.assert_allclose(got[..., 0], expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(got[..., 0], got[..., 1])


def test_gradcam_and_plus_plus_match_a_tape_reference():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(3, 3, padding="same", activation="tanh")(h)
    h = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    x = images((6, 6, 1), n=2, seed=3)

    def reference(x, c):  # hand-written Grad-CAM / Grad-CAM++ on layer c1
        sub = keras.Model(model.inputs[0], [model.get_layer("c1").output, model.outputs[0]])
        with tf.GradientTape() as tape:
            a, y = sub(tf.constant(x))
            score = y[:, c]
        g = tape.gradient(score, a).numpy().astype(np.float64)
        a = a.numpy().astype(np.float64)
        gradcam = np.maximum((g.mean(axis=(1, 2), keepdims=True) * a).sum(-1), 0)
        denom = 2 * g**2 + a.sum(axis=(1, 2), keepdims=True) * g**3
        alpha = np.where(g != 0, g**2 / np.where(denom != 0, denom, 1), 0)
        w = (alpha * np.maximum(g, 0)).sum(axis=(1, 2), keepdims=True)
        return gradcam, np.maximum((w * a).sum(-1), 0)

    gradcam, plus = reference(x, 1)
    assert gradcam.max() > 0 and plus.max() > 0
    np.testing.assert_allclose(medxai.GradCAM(model, layer="c1").attribute(x, 1)[..., 0], gradcam, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(medxai.GradCAMPlusPlus(model, layer="c1").attribute(x, 1)[..., 0], plus, rtol=1e-4, atol=1e-7)


def pooled_model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="early")(inputs)
    h = keras.layers.MaxPooling2D(name="pool")(h)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="late")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))


def test_layer_selects_another_layer_and_maps_are_upsampled():
    model = pooled_model()
    x = images((8, 8, 1), n=2)
    default, early = medxai.GradCAM(model), medxai.GradCAM(model, layer="early")
    assert default.layer == "late" and default.params()["layer"] == "late" and early.layer == "early"
    assert default.activations.feature_shape == (4, 4, 4)
    a, b = default.attribute(x, 0), early.attribute(x, 0)
    assert a.shape == b.shape == x.shape
    assert not np.allclose(a, b)


@pytest.mark.parametrize("name", CAMS)
def test_batch_size_does_not_change_results(name):
    model = small_cnn((8, 8, 1))
    x = images((8, 8, 1), n=5)
    targets = [0, 1, 1, 0, 1]
    one = medxai.get_method(name, model, batch_size=1).attribute(x, targets)
    three = medxai.get_method(name, model, batch_size=3).attribute(x, targets)
    np.testing.assert_allclose(one, three, rtol=1e-5, atol=1e-7)


def test_logits_are_explained_by_default():
    softmax = gap_model(activation="softmax")
    linear = gap_model()  # the same seed: the same weights, without the softmax
    x = images((6, 6, 2))
    default = medxai.GradCAM(softmax)
    assert "softmax removed" in default.engine.explained
    np.testing.assert_allclose(default.attribute(x, 1), medxai.GradCAM(linear).attribute(x, 1), rtol=1e-5, atol=1e-7)
    probabilities = medxai.GradCAM(softmax, output="probabilities").attribute(x, 1)
    assert not np.allclose(default.attribute(x, 1), probabilities)


def test_a_model_without_spatial_layers_is_refused():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match=r"layer: the model has no layer with 2D .* outputs"):
        medxai.GradCAM(model)
    with pytest.raises(ValueError, match=r"layer 'nope' cannot be used: .*no such layer .*spatial outputs: late, pool, early"):
        medxai.LayerCAM(pooled_model(), layer="nope")
    with pytest.raises(ValueError, match=r"layer 'dense.*' cannot be used: its output is not a 2D"):
        model = pooled_model()
        medxai.HiResCAM(model, layer=model.layers[-1].name)


def test_a_nested_backbone_is_one_layer():
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((6, 6, 1))
    backbone = keras.Model(inner_in, keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="inner_conv")(inner_in), name="backbone")
    inputs = keras.Input((6, 6, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(backbone(inputs))))
    method = medxai.GradCAM(model)
    assert method.layer == "backbone"
    assert method.attribute(images((6, 6, 1), n=1), 0).shape == (1, 6, 6, 1)
    with pytest.raises(ValueError, match=r"inside the nested model 'backbone'.*layer: 'backbone'"):
        medxai.GradCAM(model, layer="inner_conv")


def test_names_polarity_and_delta():
    model = small_cnn((8, 8, 1))
    for name, cls in [("grad-cam", medxai.GradCAM), ("gradcam++", medxai.GradCAMPlusPlus),
                      ("HiResCAM", medxai.HiResCAM), ("layer_cam", medxai.LayerCAM)]:
        assert type(medxai.get_method(name, model)) is cls
    assert medxai.GradCAM.non_negative({})
    with pytest.raises(ValueError, match="polarity 'positive' with gradcam"):
        medxai.GradCAM(model, heatmap={"polarity": "positive"})
    with pytest.raises(ValueError, match="no completeness delta"):
        medxai.GradCAM(model).attribute(images((8, 8, 1), n=1), 0, return_delta=True)
