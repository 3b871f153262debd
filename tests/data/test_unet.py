"""The U-Net builder: 2D and 3D shapes, heads, output range, seeded weights, refused arguments."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from medxai.data.unet import build_unet


def _inputs(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("shape", "channels", "head", "filters"),
    [
        ((32, 32, 1), 1, "sigmoid", (4, 8, 16)),
        ((16, 24, 3), 4, "softmax", (4, 8)),
        ((8, 16, 16, 1), 3, "softmax", (2, 4, 8)),
        ((8, 8, 8, 2), 2, "sigmoid", (4,)),
    ],
)
def test_output_has_the_input_grid_and_the_head(shape, channels, head, filters):
    model = build_unet(shape, channels, head=head, filters=filters)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, *shape[:-1], channels)
    last = model.layers[-1]
    assert last.name == "head" and last.get_config()["activation"] == head
    assert tuple(last.get_config()["kernel_size"]) == (1,) * (len(shape) - 1)
    out = model.predict(_inputs(shape), verbose=0)
    assert out.shape == (2, *shape[:-1], channels)
    assert np.all((out >= 0) & (out <= 1))
    if head == "softmax":
        np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)


def test_levels_pool_skip_and_upsample():
    model = build_unet((16, 16, 1), 1, filters=(4, 8, 16))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("MaxPooling2D") == 2 and kinds.count("UpSampling2D") == 2
    assert kinds.count("Concatenate") == 2
    assert kinds.count("Conv2D") == 2 * (3 + 2) + 1  # two convolutions a block (3 down, 2 up), the 1x1 head
    assert model.get_layer("bottom_conv2").output.shape[1:] == (4, 4, 16)
    assert model.get_layer("up1_skip").output.shape[1:] == (16, 16, 8 + 4)
    volume = build_unet((8, 8, 8, 1), 2, head="softmax", filters=(2, 4))
    assert {"Conv3D", "MaxPooling3D", "UpSampling3D"} <= {type(layer).__name__ for layer in volume.layers}


def test_same_seed_same_weights_other_seed_other_weights():
    x = _inputs((16, 16, 1))
    a = build_unet((16, 16, 1), 2, head="softmax", filters=(4, 8), seed=3)
    keras.utils.set_random_seed(123)  # the global state does not matter
    b = build_unet((16, 16, 1), 2, head="softmax", filters=(4, 8), seed=3)
    c = build_unet((16, 16, 1), 2, head="softmax", filters=(4, 8), seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    assert not np.allclose(a.get_weights()[0], c.get_weights()[0])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (((16, 1), 1), {}, "input_shape"),
        (((16, 16, 1), 1), {"head": "relu"}, "head must be"),
        (((16, 16, 1), 1), {"head": "softmax"}, "at least 2 output channels"),
        (((16, 16, 1), 0), {}, "channels_out"),
        (((16, 16, 1), 1), {"filters": ()}, "filters"),
        (((16, 16, 1), 1), {"filters": (4, 0)}, "filters"),
        (((18, 16, 1), 1), {"filters": (4, 8, 16)}, "multiple of 4"),
    ],
)
def test_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_unet(*args, **kwargs)
