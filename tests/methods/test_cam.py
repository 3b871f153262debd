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
    np.testing.assert_allclose(
        medxai.GradCAMPlusPlus(model, layer="c1").attribute(x, 1)[..., 0], plus, rtol=1e-4, atol=1e-7
    )


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
    with pytest.raises(
        ValueError, match=r"layer 'nope' cannot be used: .*no such layer .*spatial outputs: late, pool, early"
    ):
        medxai.LayerCAM(pooled_model(), layer="nope")
    with pytest.raises(ValueError, match=r"layer 'dense.*' cannot be used: its output is not a 2D"):
        model = pooled_model()
        medxai.HiResCAM(model, layer=model.layers[-1].name)


def test_a_nested_backbone_is_one_layer():
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((6, 6, 1))
    backbone = keras.Model(
        inner_in,
        keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="inner_conv")(inner_in),
        name="backbone",
    )
    inputs = keras.Input((6, 6, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(backbone(inputs))))
    method = medxai.GradCAM(model)
    assert method.layer == "backbone"
    assert method.attribute(images((6, 6, 1), n=1), 0).shape == (1, 6, 6, 1)
    with pytest.raises(ValueError, match=r"inside the nested model 'backbone'.*layer: 'backbone'"):
        medxai.GradCAM(model, layer="inner_conv")


def test_names_polarity_and_delta():
    model = small_cnn((8, 8, 1))
    for name, cls in [
        ("grad-cam", medxai.GradCAM),
        ("gradcam++", medxai.GradCAMPlusPlus),
        ("HiResCAM", medxai.HiResCAM),
        ("layer_cam", medxai.LayerCAM),
    ]:
        assert type(medxai.get_method(name, model)) is cls
    assert medxai.GradCAM.non_negative({})
    with pytest.raises(ValueError, match="polarity 'positive' with gradcam"):
        medxai.GradCAM(model, heatmap={"polarity": "positive"})
    with pytest.raises(ValueError, match="no completeness delta"):
        medxai.GradCAM(model).attribute(images((8, 8, 1), n=1), 0, return_delta=True)


# --- where the feature map lies on the input (issue 18, item 7) ---

ALL_CAMS = CAMS + ["scorecam", "guided_gradcam"]


def cropped_layers(seed=4):
    """conv -> max pool -> conv ("late"): the layers after the crop, shared by the cropped and the pre-cropped model."""
    keras.utils.set_random_seed(seed)
    head = keras.layers.Dense(2)
    head.build((None, 4))
    kernel, bias = head.get_weights()
    head.set_weights([np.abs(kernel) + 0.1, bias])  # a positive head: every class has a map
    return [
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="early"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="late"),
        keras.layers.GlobalAveragePooling2D(),
        head,
    ]


def stack(shape, front, layers):
    h = inputs = keras.Input(shape)
    for layer in front + layers:
        h = layer(h)
    return keras.Model(inputs, h)


@pytest.mark.parametrize("name", ALL_CAMS)
def test_nothing_is_attributed_to_pixels_a_center_crop_removes(name):
    layers = cropped_layers()
    model = stack((32, 32, 1), [keras.layers.CenterCrop(16, 16)], layers)
    pre = stack((16, 16, 1), [], layers)  # the same layers (the same weights) on the pre-cropped image
    x = images((32, 32, 1), n=2, seed=5)
    got = medxai.get_method(name, model).attribute(x, [0, 1])
    outside = np.ones((32, 32), bool)
    outside[8:24, 8:24] = False
    assert np.all(got[:, outside] == 0)
    for i in range(2):
        assert got[i, 8:24, 8:24].max() > 0
        row, column = np.unravel_index(np.argmax(got[i, ..., 0]), (32, 32))
        assert 8 <= row < 24 and 8 <= column < 24
    # inside the crop: exactly the map of the pre-cropped model on the pre-cropped image
    np.testing.assert_array_equal(got[:, 8:24, 8:24], medxai.get_method(name, pre).attribute(x[:, 8:24, 8:24], [0, 1]))


def test_a_3d_crop_is_placed_too():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8, 8, 1))
    h = keras.layers.Cropping3D(((1, 1), (2, 0), (0, 3)))(inputs)
    h = keras.layers.Conv3D(3, 3, padding="same", activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling3D()(h)))
    x = images((6, 8, 8, 1), n=2)
    for name in ("gradcam", "scorecam"):
        got = medxai.get_method(name, model).attribute(x, [0, 1])[..., 0]
        inside = np.zeros((6, 8, 8), bool)
        inside[1:5, 2:8, 0:5] = True
        assert np.all(got[:, ~inside] == 0) and np.all(got[:, inside].max(axis=1) > 0)


def receptive_fields(front, shape):
    """By brute force: the input interval each cell of axis 0 reads (nonzero gradient), on a linear all-ones stack."""
    h = inputs = keras.Input(shape)
    for layer in front:
        h = layer(h)
    model = keras.Model(inputs, h)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([np.ones_like(w) for w in layer.get_weights()])
    x = tf.ones((1, *shape))
    out = model(x)
    fields = []
    for j in range(out.shape[1]):
        with tf.GradientTape() as tape:
            tape.watch(x)
            cell = tf.reduce_sum(model(x)[0, j, out.shape[2] // 2])
        rows = np.flatnonzero(np.abs(tape.gradient(cell, x).numpy()[0]).sum(axis=(1, 2)))
        fields.append((rows[0], rows[-1] + 1))
    return model, np.array(fields)


def conv(k, s=1, padding="valid", d=1):
    return keras.layers.Conv2D(1, k, strides=s, padding=padding, dilation_rate=d, use_bias=False)


@pytest.mark.parametrize(
    "front",
    [
        lambda: [conv(3), conv(3, 2), keras.layers.AveragePooling2D(2)],
        lambda: [
            keras.layers.CenterCrop(18, 18),
            conv(3, padding="same"),
            keras.layers.AveragePooling2D(2),
            conv(3, padding="same", d=2),
        ],
        lambda: [
            keras.layers.ZeroPadding2D(3),
            conv(7, 2),
            keras.layers.ZeroPadding2D(1),
            keras.layers.AveragePooling2D(3, 2),
        ],
        lambda: [keras.layers.Cropping2D(((2, 1), (0, 3))), conv(3, 2, "same"), keras.layers.UpSampling2D(1)],
    ],
    ids=["valid", "center-crop-dilated", "resnet-stem", "cropping-same-stride"],
)
def test_cells_sit_at_their_receptive_field_centres(front):
    from medxai.methods._engine.geometry import receptive_geometry

    shape = (21, 21, 1)
    model, fields = receptive_fields(front(), shape)
    axis = receptive_geometry(model, model.outputs[0], shape[:-1]).axes[0]
    assert axis.size == len(fields)
    first, last = fields[:, 0], fields[:, 1]
    # cells whose field is not clipped by a border or a crop: the centre and the width are the affine map's
    whole = (last - first) == axis.field
    assert whole.sum() >= 2
    centres = axis.offset + axis.stride * (np.arange(axis.size) + 0.5)
    np.testing.assert_allclose(((first + last) / 2)[whole], centres[whole])
    assert axis.seen == (first.min(), last.max())  # the pixels that reach the map


def test_a_layer_of_unknown_geometry_is_refused_after_a_crop_and_allowed_without():
    layers = cropped_layers()
    refused = stack(
        (32, 32, 1), [keras.layers.CenterCrop(16, 16), keras.layers.Lambda(lambda t: t * 2.0, name="double")], layers
    )
    for name in ("gradcam", "scorecam", "guided_gradcam"):
        with pytest.raises(ValueError, match=r"layer 'double' on the way .*layer: <name>"):
            medxai.get_method(name, refused)
    # the plain stretch (whole input over the whole map) is kept: as if the Lambda were not there
    plain = stack((16, 16, 1), [keras.layers.Lambda(lambda t: t * 1.0)], layers)
    x = images((16, 16, 1), n=2)
    np.testing.assert_array_equal(
        medxai.GradCAM(plain).attribute(x, 1), medxai.GradCAM(stack((16, 16, 1), [], layers)).attribute(x, 1)
    )


def test_variable_size_inputs_are_placed_per_size():
    layers = cropped_layers()
    model = stack((None, None, 1), [keras.layers.Lambda(lambda t: t * 1.0)], layers)
    fixed = stack((16, 16, 1), [], layers)
    for side in (16, 20):
        x = images((side, side, 1), n=1)
        got = medxai.GradCAM(model).attribute(x, 1)
        assert got.shape == x.shape and got.max() > 0
    np.testing.assert_array_equal(
        medxai.GradCAM(model).attribute(images((16, 16, 1), n=1), 1),
        medxai.GradCAM(fixed).attribute(images((16, 16, 1), n=1), 1),
    )


def test_placement_is_the_linear_resize_when_plain_and_follows_the_cells_otherwise():
    from medxai.methods._engine.geometry import Axis, Geometry, placement
    from medxai.preprocess import resize_spatial

    a = np.random.default_rng(0).uniform(size=(3, 4)).astype(np.float64)
    plain = Geometry((Axis(3, 0.0, 9 / 3, 1.0, (0.0, 9.0)), Axis(4, 0.0, 10 / 4, 1.0, (0.0, 10.0))))
    (rows, columns), seen = placement(plain, (9, 10))
    assert seen.all()
    np.testing.assert_allclose(rows @ a @ columns.T, resize_spatial(a[..., None], (9, 10))[..., 0], atol=1e-6)
    # a 'valid' 3-wide convolution on 10 pixels, then a crop of 2 on the left: cells at pixels 3 .. 8, seen 2 .. 9
    (matrix,), seen = placement(Geometry((Axis(6, 3.0, 1.0, 3.0, (2.0, 10.0)),)), (10,))
    np.testing.assert_array_equal(seen, np.arange(10) >= 2)
    expected = np.zeros((10, 6))
    expected[3:9] = np.eye(6)
    expected[:3, 0] = expected[9, 5] = 1.0  # edge values held (pixels 0, 1 are masked out by `seen`)
    np.testing.assert_array_equal(matrix, expected)


def test_a_shift_of_less_than_half_a_cell_keeps_the_plain_stretch():
    from medxai.methods._engine.geometry import feature_geometry, receptive_geometry

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(2, 3, strides=2, padding="same")(inputs)  # TensorFlow pads after: centres at 2j + 1.5
    model = keras.Model(inputs, h)
    assert receptive_geometry(model, h, (8, 8)).axes[0].offset == 0.5
    assert feature_geometry(model, h, (8, 8)).axes[0].offset == 0.0
