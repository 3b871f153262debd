"""Region masks (issue 21): what ``predicted``, ``connected``, ``border``, ``all`` and array masks select on a
model's own prediction, and the targets that are refused.

The prediction is set by the input: an identity 1x1 convolution with a softmax (or sigmoid) head has the
input itself as its logits, so each test draws the predicted region it wants.
"""

import keras
import numpy as np
import pytest
from analytic_models import linear_model

import medxai
from medxai import Region
from medxai.regions import EmptyRegionError


def identity_head(spatial, channels, activation):
    """A model whose logits are its input: ``channels`` input channels, a 1x1 identity conv, then ``activation``."""
    conv = (keras.layers.Conv2D if len(spatial) == 2 else keras.layers.Conv3D)(channels, 1, activation=activation)
    inputs = keras.Input((*spatial, channels))
    model = keras.Model(inputs, conv(inputs))
    kernel = np.eye(channels, dtype=np.float32).reshape((1,) * len(spatial) + (channels, channels))
    conv.set_weights([kernel, np.zeros(channels, np.float32)])
    return model


def resolved(model, logits, region, output="logits"):
    """The masks of ``region`` on each image whose logits are ``logits``."""
    engine = medxai.Gradient(model, output=output).engine
    _, targets = engine.check_inputs(np.asarray(logits, np.float32), region)
    return np.stack([r.mask for r in targets.regions])


def blobs(spatial, *boxes):
    """Logits of one channel: +1 inside the boxes (tuples of slices), -1 elsewhere."""
    logit = -np.ones(spatial, np.float32)
    for box in boxes:
        logit[box] = 1.0
    return logit


# --------------------------------------------------------------------------- predicted
@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_predicted_is_the_argmax_of_a_softmax_head(output):
    model = identity_head((5, 5), 3, "softmax")
    logits = np.random.default_rng(0).normal(size=(2, 5, 5, 3)).astype(np.float32)
    for channel in range(3):
        got = resolved(model, logits, Region(channel), output)
        np.testing.assert_array_equal(got, logits.argmax(-1) == channel)


@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_predicted_is_a_probability_of_one_half_or_more_for_a_sigmoid_head(output):
    model = identity_head((5, 5), 1, "sigmoid")
    logits = np.random.default_rng(1).normal(size=(2, 5, 5, 1)).astype(np.float32)
    logits[0, 0, 0] = 0.0  # probability exactly 0.5: predicted
    got = resolved(model, logits, Region(1), output)
    np.testing.assert_array_equal(got, logits[..., 0] >= 0)
    assert got[0, 0, 0]
    # channel 0 is the unit's negative: its logit -z, its probability 1 - p
    np.testing.assert_array_equal(resolved(model, logits, Region(0), output), -logits[..., 0] >= 0)


@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_predicted_thresholds_each_channel_of_a_multi_label_sigmoid_head(output):
    model = identity_head((5, 5), 3, "sigmoid")
    logits = np.random.default_rng(6).normal(size=(1, 5, 5, 3)).astype(np.float32)
    for channel in range(3):
        np.testing.assert_array_equal(resolved(model, logits, Region(channel), output), logits[..., channel] >= 0)


def test_a_model_without_head_predicts_by_the_activation_it_is_given():
    """Linear logits (trained from_logits): argmax by default for several channels, thresholds with sigmoid."""
    model = identity_head((5, 5), 3, None)
    logits = np.random.default_rng(8).normal(size=(1, 5, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(resolved(model, logits, Region(1)), logits.argmax(-1) == 1)
    engine = medxai.Gradient(model, activation="sigmoid").engine
    _, targets = engine.check_inputs(logits, Region(1))
    np.testing.assert_array_equal(targets.regions[0].mask, logits[0, ..., 1] >= 0)


# --------------------------------------------------------------------------- connected
def test_connected_components_in_2d_are_numbered_largest_first_with_diagonal_neighbours():
    model = identity_head((7, 7), 1, "sigmoid")
    small = (slice(0, 2), slice(0, 2))  # 4 pixels
    large = (slice(4, 7), slice(4, 7))  # 9 pixels, plus one touching it only diagonally
    logit = blobs((7, 7), small, large)
    logit[3, 3] = 1.0
    images = logit[None, ..., None]
    first = resolved(model, images, Region(1, mask="connected"))[0]
    assert first.sum() == 10 and first[3, 3] and first[5, 5] and not first[0, 0]
    second = resolved(model, images, Region(1, mask="connected", component=2))[0]
    np.testing.assert_array_equal(second, blobs((7, 7), small) > 0)
    with pytest.raises(EmptyRegionError, match=r"connected region of channel 1 \(component 3\) is empty"):
        resolved(model, images, Region(1, mask="connected", component=3))


def test_connected_components_in_3d_join_at_a_corner():
    model = identity_head((5, 5, 5), 1, "sigmoid")
    logit = blobs((5, 5, 5), (slice(0, 2),) * 3, (slice(3, 5), slice(3, 5), slice(0, 1)))
    logit[2, 2, 2] = 1.0  # touches the first cube at its corner only: the same component (26-connectivity)
    images = logit[None, ..., None]
    first = resolved(model, images, Region(1, mask="connected"))[0]
    assert first.sum() == 9 and first[2, 2, 2] and first[0, 0, 0]
    second = resolved(model, images, Region(1, mask="connected", component=2))[0]
    assert second.sum() == 4 and second[4, 4, 0] and not (first & second).any()
    with pytest.raises(ValueError, match=r"is empty for image\(s\) 0 of the batch: there is nothing to explain"):
        medxai.Gradient(model).attribute(images, Region(1, mask="connected", component=3))


def test_an_empty_predicted_region_is_refused():
    model = identity_head((4, 4), 1, "sigmoid")
    images = -np.ones((2, 4, 4, 1), np.float32)
    images[1, 1, 1] = 1.0
    assert issubclass(EmptyRegionError, ValueError)
    with pytest.raises(EmptyRegionError, match="predicted region of channel 1 is empty"):
        medxai.Gradient(model).attribute(images, Region(1))


# --------------------------------------------------------------------------- border, all, arrays
def test_the_border_is_the_inside_ring_in_2d_and_the_image_edge_is_not_a_border():
    model = identity_head((6, 6), 1, "sigmoid")
    inner = blobs((6, 6), (slice(1, 5), slice(1, 5)))
    edge = blobs((6, 6), (slice(0, 6), slice(0, 3)))  # touches three sides of the image
    got = resolved(model, np.stack([inner, edge])[..., None], Region(1, mask="border"))
    ring = np.zeros((6, 6), bool)
    ring[1:5, 1:5] = True
    ring[2:4, 2:4] = False
    np.testing.assert_array_equal(got[0], ring)
    column = np.zeros((6, 6), bool)
    column[:, 2] = True  # only the side facing the background
    np.testing.assert_array_equal(got[1], column)


def test_the_border_of_a_cube_is_its_outer_shell_in_3d():
    model = identity_head((6, 6, 6), 1, "sigmoid")
    got = resolved(model, blobs((6, 6, 6), (slice(1, 5),) * 3)[None, ..., None], Region(1, mask="border"))[0]
    assert got.sum() == 4**3 - 2**3
    assert not got[2:4, 2:4, 2:4].any() and got[1:5, 1:5, 1:5].sum() == got.sum()


def test_all_and_array_masks():
    model = identity_head((4, 4), 3, "softmax")
    logits = np.random.default_rng(2).normal(size=(1, 4, 4, 3)).astype(np.float32)
    assert resolved(model, logits, Region(2, mask="all")).all()
    mask = np.random.default_rng(3).random((4, 4)) < 0.5
    np.testing.assert_array_equal(resolved(model, logits, Region(0, mask=mask.astype(np.float32)))[0], mask)
    # the gradient of the identity logits' region sum is the mask itself, on the region's channel only
    gradient = medxai.Gradient(model, absolute=False).attribute(logits, Region(0, mask=mask))[0]
    np.testing.assert_array_equal(gradient, np.stack([mask, 0 * mask, 0 * mask], axis=-1).astype(np.float32))


def test_an_array_mask_of_another_shape_is_refused_naming_both_shapes():
    model = identity_head((4, 4), 3, "softmax")
    with pytest.raises(ValueError, match=r"mask has shape \(4, 5\); the model's output grid is \(4, 4\)"):
        medxai.Gradient(model).attribute(np.zeros((1, 4, 4, 3), np.float32), Region(1, mask=np.ones((4, 5))))


def test_an_array_mask_is_checked_against_the_output_grid_of_a_variable_size_input():
    conv = keras.layers.Conv2D(2, 1, activation="softmax")
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, conv(inputs))
    method = medxai.Gradient(model, absolute=False)
    x = np.random.default_rng(7).normal(size=(1, 4, 6, 1)).astype(np.float32)
    mask = np.zeros((4, 6), bool)
    mask[1, 2] = True
    gradient = method.attribute(x, Region(1, mask=mask))[0, ..., 0]
    np.testing.assert_array_equal(gradient != 0, mask)
    with pytest.raises(ValueError, match=r"mask has shape \(6, 4\); the model's output grid is \(4, 6\)"):
        method.attribute(x, Region(1, mask=mask.T))


def test_a_channel_out_of_range_is_refused():
    model = identity_head((4, 4), 3, "softmax")
    with pytest.raises(ValueError, match=r"channel 3 is out of range: .* 3 channel\(s\) \(0..2\)"):
        medxai.Gradient(model).attribute(np.zeros((1, 4, 4, 3), np.float32), Region(3, mask="all"))


# --------------------------------------------------------------------------- targets
def test_regions_and_class_indices_do_not_mix():
    model = identity_head((4, 4), 3, "softmax")
    images = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="mix Region objects and class indices"):
        medxai.Gradient(model).attribute(images, [Region(1, mask="all"), 1])
    with pytest.raises(ValueError, match="one Region or 2 Regions"):
        medxai.Gradient(model).attribute(images, [Region(1, mask="all")] * 3)


def test_a_region_on_a_classifier_is_refused():
    model, _, _ = linear_model((4, 4, 1), 3, activation="softmax")
    with pytest.raises(ValueError, match="Region targets explain a dense .* give class indices"):
        medxai.Gradient(model).attribute(np.zeros((1, 4, 4, 1), np.float32), Region(1))


def test_a_class_index_on_a_segmentation_model_is_refused_naming_region():
    model = identity_head((4, 4), 3, "softmax")
    with pytest.raises(ValueError, match=r"dense, \(4, 4, 3\) per image .* medxai\.Region\(channel\)"):
        medxai.Gradient(model).attribute(np.zeros((1, 4, 4, 3), np.float32), 1)


def test_region_is_exported_from_the_package_root():
    from medxai import Region as Exported
    from medxai.regions import Region as Defined

    assert Exported is Defined and medxai.Region is Defined
