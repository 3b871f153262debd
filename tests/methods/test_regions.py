"""Region targets of segmentation models (issue 21): the region score S(x) = sum_p m_p F_c(x)_p explained
by every method, checked against closed forms on models whose maps are known.

The masks themselves (predicted, connected, border, all, arrays) and the refusals are in
``tests/test_region_masks.py``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from analytic_models import pointwise_model, tiny_unet
from test_head_zoo import FAST  # the zoo's fast settings of every method

import medxai
from medxai import IntegratedGradients, Region
from medxai.errors import OutputSelectionError
from medxai.methods._engine.output import explained_output
from medxai.methods.registry import canonical_methods

rng = np.random.default_rng(0)


def some_mask(spatial, seed=0, density=0.4):
    """A random, non-empty bool mask over the output grid."""
    mask = np.random.default_rng(seed).random(spatial) < density
    mask.flat[0] = True
    return mask


# --------------------------------------------------------------------------- exact maths
@pytest.mark.parametrize("shape", [(6, 6, 3), (4, 4, 4, 2)], ids=["2d", "3d"])
@pytest.mark.parametrize("reduce,steps", [("sum", 4), ("mean", "auto")])
def test_ig_of_a_pointwise_model_is_w_times_x_minus_b_inside_the_region(shape, reduce, steps):
    """F(x)_p = W^T x_p + c: IG of the region score is W_c (x_p - b) at region pixels, 0 elsewhere, exactly."""
    model, weights, bias = pointwise_model(shape, n_channels=2)
    x = rng.normal(size=(2, *shape)).astype(np.float32)
    mask = some_mask(shape[:-1])
    scale = 1.0 / mask.sum() if reduce == "mean" else 1.0
    explanation = IntegratedGradients(model, steps=steps, baseline=0.5).explain(x, Region(1, mask=mask, reduce=reduce))
    want = np.where(mask[None, ..., None], weights[:, 1] * (x - 0.5), 0.0) * scale
    np.testing.assert_allclose(explanation.attributions, want, rtol=1e-5, atol=1e-6)

    def score(images):
        return ((images @ weights[:, 1] + bias[1]) * mask).sum(axis=tuple(range(1, len(shape))), dtype=np.float64)

    np.testing.assert_allclose(explanation.gap, (score(x) - score(np.full_like(x, 0.5))) * scale, rtol=1e-5)
    np.testing.assert_allclose(explanation.delta, 0.0, atol=1e-4 * np.abs(explanation.gap).max())
    _, delta = IntegratedGradients(model, steps=steps, baseline=0.5).attribute(
        x, Region(1, mask=mask, reduce=reduce), return_delta=True
    )
    np.testing.assert_array_equal(delta, explanation.delta)


def logits_of(model):
    """The same network with its head's activation removed (the reference for ``output: logits``)."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["config"]["name"] == "head":
            layer["config"]["activation"] = "linear"
    reference = keras.Model.from_config(config)
    reference.set_weights(model.get_weights())
    return reference


def per_pixel_gradients(reference, x, unit, mask):
    """sum over the region's pixels p of d z_p / dx, one GradientTape per output pixel."""
    total = np.zeros_like(x, dtype=np.float64)
    images = tf.constant(x)
    for p in zip(*np.nonzero(mask)):
        with tf.GradientTape() as tape:
            tape.watch(images)
            value = tf.reduce_sum(reference(images)[(slice(None), *p, unit)])
        total += tape.gradient(value, images).numpy()
    return total


@pytest.mark.parametrize("shape,channels,channel", [((8, 8, 1), 1, 1), ((4, 4, 4, 1), 3, 2)], ids=["2d", "3d"])
def test_gradient_of_a_region_is_the_sum_of_its_pixels_gradients(shape, channels, channel):
    activation = "sigmoid" if channels == 1 else "softmax"
    model = tiny_unet(shape, channels, activation=activation)
    reference = logits_of(model)
    x = rng.uniform(size=(2, *shape)).astype(np.float32)
    mask = some_mask(shape[:-1], seed=1, density=0.2)  # one tape per pixel: few pixels
    unit = 0 if channels == 1 else channel  # one sigmoid unit: channel 1 is the unit itself
    want = per_pixel_gradients(reference, x, unit, mask)
    method = medxai.Gradient(model, absolute=False)
    total = method.attribute(x, Region(channel, mask=mask))
    np.testing.assert_allclose(total, want, rtol=1e-4, atol=1e-6)
    mean = method.attribute(x, Region(channel, mask=mask, reduce="mean"))
    np.testing.assert_allclose(mean, total / mask.sum(), rtol=1e-5, atol=1e-7)
    if channels == 1:  # channel 0 of a one-unit model is the unit's negative
        np.testing.assert_allclose(method.attribute(x, Region(0, mask=mask)), -total, rtol=1e-6, atol=1e-7)


#: The CAM maps of a linear head F_c = sum_k v_k A_k + c_c over a region M, from dS/dA_k(p) = v_k M(p):
#: (A, v, M) -> map at the feature layer's resolution.
CAM_FORMS = {
    "gradcam": lambda a, v, m: np.maximum((a * (v * m.mean())).sum(-1), 0.0),
    "hirescam": lambda a, v, m: np.maximum((a * v).sum(-1) * m, 0.0),
    "layercam": lambda a, v, m: (a * np.maximum(v, 0.0)).sum(-1) * m,
    # alpha = g^2 / (2 g^2 + sum_p A g^3) = 1 / (2 + v_k sum_p A_k) inside M: w_k = |M| relu(v_k) / (2 + v_k sum_p A_k)
    "gradcam_plus_plus": lambda a, v, m: np.maximum(
        (a * (m.sum() * np.maximum(v, 0.0) / (2.0 + v * a.sum(axis=tuple(range(a.ndim - 1)))))).sum(-1), 0.0
    ),
}


#: (input shape, head units, head activation, explained channel, sign of the channel's logit in the unit's).
SEG_CAM_CASES = {
    "2d_softmax": ((8, 8, 1), 3, "softmax", 2, 1.0),
    "3d_softmax": ((4, 4, 4, 1), 3, "softmax", 2, 1.0),
    "2d_sigmoid_unit": ((8, 8, 1), 1, "sigmoid", 1, 1.0),
    "2d_sigmoid_negative": ((8, 8, 1), 1, "sigmoid", 0, -1.0),
}


@pytest.mark.parametrize("name", sorted(CAM_FORMS))
@pytest.mark.parametrize("case", sorted(SEG_CAM_CASES))
def test_seg_grad_cam_of_a_linear_head_is_the_closed_form(name, case):
    """Seg-Grad-CAM reads the last feature map A under the head (here at input resolution: placed as is)."""
    shape, units, activation, channel, sign = SEG_CAM_CASES[case]
    model = tiny_unet(shape, units, activation=activation)
    x = rng.uniform(size=(2, *shape)).astype(np.float32)
    mask = some_mask(shape[:-1], seed=2)
    method = medxai.get_method(name, model)
    assert method.layer == "features"
    features = keras.Model(model.inputs[0], model.get_layer("features").output)(x).numpy().astype(np.float64)
    v = sign * model.get_layer("head").get_weights()[0].reshape(-1, units)[:, channel if units > 1 else 0]
    want = np.stack([CAM_FORMS[name](a, v, mask) for a in features])
    got = method.attribute(x, Region(channel, mask=mask))
    np.testing.assert_allclose(got[..., 0], want, rtol=1e-4, atol=1e-5)


def test_occluding_the_predicted_region_lowers_its_score():
    """Every kernel non-negative: each output is non-decreasing in every input; filling the region with 0 lowers S."""
    model = tiny_unet((8, 8, 1), positive=True)
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 2:5, 2:5] = 1.0
    method = medxai.Gradient(model)
    _, targets = method.engine.check_inputs(x, Region(1))
    assert targets.regions[0].voxels > 0
    occluded = np.where(targets.regions[0].mask[None, ..., None], 0.0, x).astype(np.float32)
    before, after = targets.pick(method.engine.predict(x)), targets.pick(method.engine.predict(occluded))
    assert after[0] < before[0]


def test_occlusion_of_a_local_model_puts_the_mass_inside_the_region():
    """Output at p sees the 3x3 neighbourhood of p (one non-negative 3x3 conv): occluding a pixel one or more
    pixels away from the region changes nothing, and the region's own pixels carry most of the mass."""
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(1, 3, padding="same")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.full((3, 3, 1, 1), 1.0 / 9, np.float32), np.zeros(1, np.float32)])
    mask = np.zeros((8, 8), bool)
    mask[3:6, 3:6] = True
    x = np.ones((1, 8, 8, 1), np.float32)
    # one output unit: channel 1 is the unit (channel 0 its negative)
    occlusion = medxai.Occlusion(model, window=1, fill=0.0).attribute(x, Region(1, mask=mask))[0, ..., 0]
    near = np.zeros((8, 8), bool)
    near[2:7, 2:7] = True
    assert np.all(occlusion[~near] == 0.0)
    assert occlusion[mask].sum() > occlusion[~mask].sum() > 0
    # each pixel's share is (region pixels in its 3x3 neighbourhood) / 9: 49/9 inside, 32/9 on the ring
    np.testing.assert_allclose([occlusion[mask].sum(), occlusion[~mask].sum()], [49 / 9, 32 / 9], rtol=1e-5)


# --------------------------------------------------------------------------- every method
SEGMENTERS = {"2d_sigmoid": ((8, 8, 1), 1, "sigmoid"), "3d_softmax": ((8, 8, 8, 1), 3, "softmax")}


@pytest.fixture(scope="module")
def segmenters():
    return {key: tiny_unet(shape, n, activation=act) for key, (shape, n, act) in SEGMENTERS.items()}


#: Methods whose map is not positively homogeneous in the explained score, so the heatmap of a region's sum
#: differs from that of its mean (every other method's map only scales by the region's size).
NOT_HOMOGENEOUS = {
    "gradcam_plus_plus": "its alphas take Y = exp(S): they change with the score's scale",
    "scorecam": "its default weights are a softmax over the masked copies' scores",
}


@pytest.mark.parametrize("name", sorted(canonical_methods()))
@pytest.mark.parametrize("key", sorted(SEGMENTERS))
def test_every_method_explains_a_region(segmenters, key, name):
    shape = SEGMENTERS[key][0]
    method = medxai.get_method(name, segmenters[key], **FAST.get(name, {}))
    x = np.random.default_rng(3).uniform(size=(1, *shape)).astype(np.float32)  # one image in both calls: one trace
    attributions = method.attribute(x, Region(1))
    assert attributions.shape == x.shape and attributions.dtype == np.float32
    assert np.all(np.isfinite(attributions)) and np.any(attributions != 0)
    heatmap = method.compute_heatmap(x[0], Region(1, reduce="mean"))
    assert heatmap.shape == shape[:-1] and heatmap.dtype == np.float32
    assert heatmap.min() == 0.0 and heatmap.max() == 1.0
    if name not in NOT_HOMOGENEOUS:  # the mean is the sum over a constant: the same heatmap
        np.testing.assert_allclose(heatmap, medxai.to_heatmap(attributions[0], method.heatmap), atol=1e-5)


#: One method per way of chunking rows (path, explicit path, activations, forward, scores, samples).
CHUNKING = ["blur_ig", "gradcam", "integrated_gradients", "lime", "occlusion", "scorecam"]


@pytest.mark.parametrize("name", CHUNKING)
def test_one_region_per_image_equals_each_image_alone_at_any_batch_size(segmenters, name):
    x = np.random.default_rng(4).uniform(size=(3, 8, 8, 1)).astype(np.float32)
    regions = [Region(1), Region(0, mask="all", reduce="mean"), Region(1, mask=np.eye(8), reduce="mean")]
    model = segmenters["2d_sigmoid"]
    big = medxai.get_method(name, model, batch_size=64, **FAST.get(name, {})).explain(x, regions)
    small = medxai.get_method(name, model, batch_size=2, **FAST.get(name, {}))
    np.testing.assert_allclose(small.attribute(x, regions), big.attributions, rtol=2e-4, atol=1e-6)
    for i, region in enumerate(regions):
        alone = small.explain(x[i : i + 1], region)
        np.testing.assert_allclose(alone.attributions[0], big.attributions[i], rtol=2e-4, atol=1e-6)
        if big.delta is not None:
            np.testing.assert_allclose(alone.delta[0], big.delta[i], rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- the head walk
def head_models(head):
    """(model with the head, reference giving the logits z): one trunk, a 1x1 conv giving z (3 or 1 channels)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    units = 1 if head == "conv_sigmoid" else 3
    if head.startswith("conv_"):
        conv = keras.layers.Conv2D(units, 1, activation=head[5:], bias_initializer="random_normal")
        same = keras.layers.Conv2D(units, 1)
        model, reference = keras.Model(inputs, conv(features)), keras.Model(inputs, same(features))
        same.set_weights(conv.get_weights())
        return model, reference
    z = keras.layers.Conv2D(units, 1, bias_initializer="random_normal")(features)
    outputs = {
        "softmax_layer": lambda: keras.layers.Softmax()(z),
        "softmax_then_rescaling": lambda: keras.layers.Rescaling(100.0)(keras.layers.Softmax()(z)),
        "lambda_over_softmax": lambda: keras.layers.Lambda(lambda p: p * 100.0)(keras.layers.Softmax()(z)),
        # opaque to the graph walk: only the output's values (read per pixel) tell what they are
        "lambda_hand_softmax": lambda: keras.layers.Lambda(
            lambda t: keras.ops.exp(t) / keras.ops.sum(keras.ops.exp(t), axis=-1, keepdims=True)
        )(z),
        "lambda_hand_sigmoid": lambda: keras.layers.Lambda(lambda t: 1.0 / (1.0 + keras.ops.exp(-t)))(z),
        "lambda_times_3": lambda: keras.layers.Lambda(lambda t: t * 3.0)(z),
    }[head]()
    return keras.Model(inputs, outputs), keras.Model(inputs, z)


@pytest.mark.parametrize("head", ["conv_softmax", "conv_sigmoid", "softmax_layer", "softmax_then_rescaling"])
def test_a_per_pixel_head_is_removed_and_ig_completes_on_the_logit_region_score(head):
    model, reference = head_models(head)
    description = explained_output(model).description
    assert description.startswith("logits: ") and "removed" in description
    x = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
    mask = some_mask((6, 6), seed=4)
    region = Region(1, mask=mask)
    explanation = IntegratedGradients(model, steps=16).explain(x, region)
    unit = 0 if head == "conv_sigmoid" else 1

    def score(images):
        return (reference(images).numpy()[..., unit] * mask).sum(axis=(1, 2), dtype=np.float64)

    gap = score(x) - score(np.zeros_like(x))
    np.testing.assert_allclose(explanation.gap, gap, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(explanation.attributions.reshape(2, -1).sum(1), gap, rtol=2e-3, atol=1e-4)
    want = IntegratedGradients(reference, steps=16).attribute(x, region)
    if head == "conv_sigmoid":  # the reference's one unit is read as two channels too: channel 1 is z
        want = IntegratedGradients(reference, steps=16).attribute(x, Region(1, mask=mask))
    np.testing.assert_allclose(explanation.attributions, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("head", ["conv_softmax", "conv_sigmoid"])
def test_output_probabilities_explains_the_region_sum_of_the_probabilities(head):
    model, reference = head_models(head)
    x = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
    mask = some_mask((6, 6), seed=5)
    explanation = IntegratedGradients(model, steps=16, output="probabilities").explain(x, Region(1, mask=mask))

    def score(images):  # the probabilities of channel 1, from the reference's logits
        z = reference(images).numpy().astype(np.float64)
        p = 1 / (1 + np.exp(-z[..., 0])) if head == "conv_sigmoid" else np.exp(z[..., 1]) / np.exp(z).sum(-1)
        return (p * mask).sum(axis=(1, 2))

    gap = score(x) - score(np.zeros_like(x))
    np.testing.assert_allclose(explanation.gap, gap, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(explanation.attributions.reshape(2, -1).sum(1), gap, rtol=1e-2, atol=1e-4)


@pytest.mark.parametrize("name", ["gradient", "gradcam", "occlusion"])
def test_a_dense_head_hidden_in_a_lambda_is_refused_for_logits(name):
    model, _ = head_models("lambda_over_softmax")
    with pytest.raises(OutputSelectionError, match=r"Lambda .*output: probabilities"):
        medxai.get_method(name, model, **FAST.get(name, {}))


@pytest.mark.parametrize("head", ["lambda_hand_softmax", "lambda_hand_sigmoid"])
def test_probabilities_behind_a_lambda_are_witnessed_per_pixel(head):
    """No softmax/sigmoid in the graph: per-pixel rows summing to 1 (or values in [0, 1]) are probabilities,
    so ``logits`` is refused and ``probabilities`` predicts by argmax (or at 0.5) of the reference's logits."""
    model, reference = head_models(head)
    with pytest.raises(OutputSelectionError, match="look like .*probabilities"):
        medxai.Gradient(model)
    x = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
    _, targets = medxai.Gradient(model, output="probabilities").engine.check_inputs(x, Region(1))
    z = reference(x).numpy()
    want = z.argmax(-1) == 1 if head == "lambda_hand_softmax" else z[..., 1] >= 0
    np.testing.assert_array_equal(np.stack([r.mask for r in targets.regions]), want)


def test_values_that_are_not_probabilities_are_explained_as_logits_per_pixel():
    model, reference = head_models("lambda_times_3")
    x = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
    mask = some_mask((6, 6), seed=6)
    explanation = IntegratedGradients(model, steps=4).explain(x, Region(2, mask=mask))
    z = (reference(x).numpy() - reference(np.zeros_like(x)).numpy())[..., 2].astype(np.float64)
    np.testing.assert_allclose(explanation.gap, 3.0 * (z * mask).sum(axis=(1, 2)), rtol=1e-5, atol=1e-5)


def test_a_named_layer_of_a_segmentation_model_stays_dense_for_region_targets():
    model = tiny_unet((8, 8, 1), 3, activation="softmax")
    hidden = keras.layers.Lambda(lambda t: t * 1.0, name="opaque")(model.outputs[0])
    wrapped = keras.Model(model.inputs[0], hidden)
    head = wrapped.layers[-2].name  # the per-pixel softmax conv: a dense layer output, not averaged
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype("float32")
    named = medxai.Gradient(wrapped, output=head, absolute=False)
    reference = medxai.Gradient(model, output="probabilities", absolute=False)
    assert named.engine.dense and named.engine.output_shape == (8, 8, 3)
    np.testing.assert_allclose(
        named.attribute(x, Region(1, "all")), reference.attribute(x, Region(1, "all")), rtol=1e-5, atol=1e-7
    )


def test_an_object_array_of_regions_is_one_region_per_image():
    model = tiny_unet((8, 8, 1), 1)
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 1)).astype("float32")
    method = medxai.Gradient(model, absolute=False)
    regions = np.array([Region(1, "all"), Region(0, "all")], dtype=object)
    np.testing.assert_allclose(method.attribute(x, regions), method.attribute(x, list(regions)), rtol=0, atol=0)


def test_a_unet_nested_whole_is_refused_by_the_cam_family_with_advice_that_holds():
    inner = tiny_unet((8, 8, 1), 1)
    inputs = keras.Input((8, 8, 1))
    outer = keras.Model(inputs, inner(inputs))
    with pytest.raises(ValueError, match=r"inside the nested model\(s\) '.+', which the outer graph cannot enter"):
        medxai.GradCAM(outer)
    with pytest.raises(ValueError, match=r"call the inner model itself, or rebuild") as refused:
        medxai.GradCAM(outer, layer="features")
    assert "use layer:" not in str(refused.value)  # the nested model's output is no feature map: never advised
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(  # the gradient methods explain it, as the inner model itself
        medxai.Gradient(outer, absolute=False).attribute(x, Region(1, "all")),
        medxai.Gradient(inner, absolute=False).attribute(x, Region(1, "all")),
        rtol=1e-5,
        atol=1e-7,
    )
