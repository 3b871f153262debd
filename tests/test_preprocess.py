"""Preprocessing: window, invert, resize, channels, scale, geometry back to the source."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _files import dicom_dataset, ramp, save
from PIL import Image

from medxai.io import LoadedImage, read_image
from medxai.preprocess import (
    MAX_ASPECT_CHANGE,
    Geometry,
    PreprocessError,
    Preprocessor,
    PreprocessSpec,
    apply_window,
    invert_intensity,
    match_channels,
    resize_spatial,
    scale_intensity,
)


def image(array, **kw) -> LoadedImage:
    return LoadedImage(array=np.asarray(array, np.float32), source_path="mem", kind="npy", **kw)


def grey(values) -> LoadedImage:
    return image(np.asarray(values, np.float32)[..., np.newaxis])


# ------------------------------------------------------------------ steps


def test_apply_window_exact():
    x = np.array([-1000.0, -160.0, -60.0, 40.0, 140.0, 240.0, 3000.0])
    out = apply_window(x, center=40, width=400)  # [-160, 240] -> [0, 1]
    np.testing.assert_array_equal(out, np.float32([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]))
    assert out.dtype == np.float32
    with pytest.raises(ValueError):
        apply_window(x, 0, 0)


def test_resize_spatial_shapes_and_channels_kept_apart():
    x = np.zeros((8, 8, 3), np.float32)
    x[..., 1] = 1.0
    up = resize_spatial(x, (16, 12))
    assert up.shape == (16, 12, 3) and up.dtype == np.float32
    np.testing.assert_array_equal(up[..., 0], 0)
    np.testing.assert_array_equal(up[..., 1], 1)
    assert resize_spatial(np.ones((4, 8, 8, 1)), (2, 4, 4)).shape == (2, 4, 4, 1)


def test_resize_spatial_is_linear_and_keeps_range():
    x = np.array([[0.0, 100.0]], np.float32)[..., np.newaxis]  # 1 x 2
    out = resize_spatial(x, (1, 4))[0, :, 0]
    np.testing.assert_allclose(out, [0, 25, 75, 100])  # pixel-centre aligned linear interpolation


def test_match_channels():
    g = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    rgb = match_channels(g, 3)
    assert rgb.shape == (2, 3, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], g[..., 0])
    colour = np.zeros((1, 3, 3), np.float32)
    colour[0, 0] = (1, 0, 0)
    colour[0, 1] = (0, 1, 0)
    colour[0, 2] = (0, 0, 1)
    np.testing.assert_allclose(match_channels(colour, 1)[0, :, 0], [0.299, 0.587, 0.114], rtol=1e-6)
    assert match_channels(g, None) is not None and match_channels(g, 1).shape == (2, 3, 1)
    with pytest.raises(PreprocessError, match="2 channel"):
        match_channels(np.zeros((2, 2, 2)), 3)
    with pytest.raises(PreprocessError):
        match_channels(g, 4)


def test_scale_modes():
    x = np.array([2.0, 4.0, 6.0, 10.0], np.float32)
    np.testing.assert_allclose(scale_intensity(x, "minmax"), [0, 0.25, 0.5, 1])
    np.testing.assert_allclose(scale_intensity(x, (-1, 1)), [-1, -0.5, 0, 1])
    np.testing.assert_allclose(scale_intensity(x, {"mean": 4.0, "std": 2.0}), [-1, 0, 1, 3])
    np.testing.assert_array_equal(scale_intensity(x, None), x)
    np.testing.assert_array_equal(scale_intensity(np.full(4, 7.0), "minmax"), np.zeros(4))
    np.testing.assert_array_equal(scale_intensity(np.full(4, 7.0), (-1, 1)), np.full(4, -1.0))
    rgb = np.ones((2, 2, 3), np.float32) * np.float32([1, 2, 3])
    out = scale_intensity(rgb, {"mean": [1, 1, 1], "std": [1, 2, 4]})
    np.testing.assert_allclose(out[0, 0], [0, 0.5, 0.5])
    with pytest.raises(PreprocessError):
        scale_intensity(rgb, {"mean": [0, 0], "std": 1})
    with pytest.raises(ValueError):
        scale_intensity(x, "zscore")


def test_spec_validation_and_lists():
    spec = PreprocessSpec(size=[8, 8], window=[40, 400], scale=[0, 1])
    assert spec.size == (8, 8) and spec.window == (40.0, 400.0) and spec.scale == (0.0, 1.0)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(window=(40, 0)), "window: expected (center, width), finite numbers with width > 0, got [40, 0]"),
        (dict(window={"center": 40, "width": 0}), "window.width: expected a positive number, got 0"),
        (dict(window="lung"), "window: expected 'auto', none, (center, width) or {center: .., width: ..}, got 'lung'"),
        (
            dict(scale="zscore"),
            "scale: expected 'minmax', 'stored_range', {mean: .., std: ..}, [low, high] or none, got 'zscore'",
        ),
        (dict(scale=(1, 0)), "scale: expected [low, high] with low < high, got [1, 0]"),
        (dict(scale=(1, 2, 3)), "scale: expected [low, high] (two numbers), got [1, 2, 3]"),
        (dict(scale={"mean": 0}), "scale.std: required key missing"),
        (dict(scale={"mean": 0, "std": 0}), "scale.std: expected a positive number, got 0"),
        (dict(scale={"mean": 0, "std": [1, 0]}), "scale.std[1]: expected a positive number, got 0"),
        (
            dict(channels=3, scale={"mean": [0, 0], "std": 1}),
            "scale.mean: expected 1 or 3 values (one per channel), got 2",
        ),
        (dict(size=(0, 8)), "size: expected null or a list of 2 or 3 positive integers, got [0, 8]"),
        (dict(channels=0), "channels: expected a positive integer, got 0"),
    ],
)
def test_a_bad_spec_names_the_field_the_rule_and_the_value(bad, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        PreprocessSpec(**bad)


def test_spec_and_model_must_agree():
    with pytest.raises(ValueError):
        Preprocessor(PreprocessSpec(size=(8, 8)), (16, 16, 1))
    with pytest.raises(ValueError):
        Preprocessor(PreprocessSpec(size=(8, 8, 8)), (None, None, 1))
    with pytest.raises(ValueError):
        Preprocessor(PreprocessSpec(channels=3), (16, 16, 1))
    with pytest.raises(ValueError):
        Preprocessor(PreprocessSpec(), (16, 1))
    with pytest.raises(ValueError):
        Preprocessor(PreprocessSpec(scale={"mean": [0, 0], "std": 1}), (16, 16, 3))


# ------------------------------------------------------------- the pipeline


def test_pipeline_window_then_scale_exact():
    hu = [[-1000.0, -160.0], [40.0, 240.0]]
    pre = Preprocessor(PreprocessSpec(scale=None), (2, 2, 1))
    x, geometry = pre(image(np.asarray(hu, np.float32)[..., None], window=(40.0, 400.0)))
    np.testing.assert_array_equal(x[..., 0], [[0, 0], [0.5, 1]])
    assert geometry == Geometry((2, 2), (2, 2))
    # An explicit window wins over the file's; None means no window.
    x, _ = Preprocessor(PreprocessSpec(window=(0, 2000), scale=None), (2, 2, 1))(
        image(np.asarray(hu, np.float32)[..., None], window=(40.0, 400.0))
    )
    np.testing.assert_allclose(x[..., 0], [[0, 0.42], [0.52, 0.62]])
    x, _ = Preprocessor(PreprocessSpec(window=None, scale=None), (2, 2, 1))(
        image(np.asarray(hu, np.float32)[..., None], window=(40.0, 400.0))
    )
    np.testing.assert_array_equal(x[..., 0], hu)


def test_pipeline_inversion_with_and_without_window():
    values = np.asarray([[0.0, 100.0], [200.0, 400.0]], np.float32)[..., None]
    pre = Preprocessor(PreprocessSpec(scale=None), (2, 2, 1))
    x, _ = pre(image(values, window=(200.0, 400.0), invert=True))
    np.testing.assert_allclose(x[..., 0], [[1.0, 0.75], [0.5, 0.0]])
    x, _ = pre(image(values, invert=True))  # no window: (min + max) - v
    np.testing.assert_array_equal(x[..., 0], [[400, 300], [200, 0]])


def test_different_source_sizes_come_out_at_the_model_size():
    pre = Preprocessor(PreprocessSpec(), (12, 10, 1))
    for shape in [(16, 16), (7, 9), (12, 10), (40, 3)]:
        x, geometry = pre(grey(ramp(shape, np.float32)))
        assert x.shape == (12, 10, 1) and x.dtype == np.float32
        assert geometry.source_spatial_shape == shape and geometry.model_spatial_shape == (12, 10)
        assert x.min() == 0.0 and x.max() == 1.0  # minmax after resizing


def test_channels_replicated_for_an_rgb_model_and_luma_for_a_grey_one():
    pre = Preprocessor(PreprocessSpec(scale=None), (4, 4, 3))
    x, _ = pre(grey(np.full((4, 4), 5.0)))
    np.testing.assert_array_equal(x, np.full((4, 4, 3), 5.0))
    rgb = image(np.ones((4, 4, 3), np.float32) * np.float32([100, 0, 0]))
    x, _ = Preprocessor(PreprocessSpec(scale=None), (4, 4, 1))(rgb)
    np.testing.assert_allclose(x, 29.9, rtol=1e-6)


def test_none_dims_keep_the_source_size():
    pre = Preprocessor(PreprocessSpec(), (None, None, None))
    x, geometry = pre(image(np.ones((5, 7, 3), np.float32)))
    assert x.shape == (5, 7, 3) and geometry.model_spatial_shape == (5, 7)
    x, _ = Preprocessor(PreprocessSpec(size=(8, 8)), (None, None, 1))(grey(np.ones((5, 7))))
    assert x.shape == (8, 8, 1)


def test_nan_and_inf_are_preprocess_errors():
    data = np.ones((4, 4), np.float32)
    data[0, 0], data[1, 1], data[2, 2] = np.nan, np.inf, -np.inf
    pre = Preprocessor(PreprocessSpec(), (4, 4, 1))
    with pytest.raises(PreprocessError, match="1 NaN and 2 infinite"):
        pre(grey(data))
    with pytest.raises(PreprocessError):
        pre.display(grey(data))


def test_spatial_dims_must_match_the_model():
    with pytest.raises(PreprocessError, match="2D .* 3D"):
        Preprocessor(PreprocessSpec(), (4, 8, 8, 1))(grey(np.ones((8, 8))))
    with pytest.raises(PreprocessError, match="3D .* 2D"):
        Preprocessor(PreprocessSpec(), (8, 8, 1))(image(np.ones((3, 8, 8, 1))))
    # A single-frame volume is a 2D image.
    x, geometry = Preprocessor(PreprocessSpec(), (4, 4, 1))(image(ramp((1, 8, 8, 1), np.float32)))
    assert x.shape == (4, 4, 1) and geometry.source_spatial_shape == (8, 8)


def test_volume_path():
    vol = image(ramp((6, 10, 12, 1), np.float32), window=(100.0, 200.0))
    pre = Preprocessor(PreprocessSpec(), (4, 8, 8, 1))
    x, geometry = pre(vol)
    assert x.shape == (4, 8, 8, 1)
    assert geometry == Geometry((6, 10, 12), (4, 8, 8))
    heat = np.linspace(0, 1, 4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    back = pre.to_source(heat, geometry)
    assert back.shape == (6, 10, 12) and back.dtype == np.float32
    assert back.min() >= 0 and back.max() <= 1
    assert pre.display(vol).shape == (6, 10, 12, 1)


def test_to_source_shape_and_range():
    pre = Preprocessor(PreprocessSpec(), (8, 8, 1))
    _, geometry = pre(grey(np.ones((20, 13))))
    heat = np.zeros((8, 8), np.float32)
    heat[3, 4] = 1.0
    back = pre.to_source(heat, geometry)
    assert back.shape == (20, 13) and back.dtype == np.float32
    assert back.min() >= 0.0 and back.max() <= 1.0 and back.max() > 0.5
    assert pre.to_source(heat[..., None], geometry).shape == (20, 13)
    same = Geometry((8, 8), (8, 8))
    np.testing.assert_array_equal(pre.to_source(np.full((8, 8), 1.2), same), np.ones((8, 8)))
    with pytest.raises(ValueError):
        pre.to_source(np.zeros((4, 4)), geometry)
    with pytest.raises(ValueError):
        pre.to_source(np.full((8, 8), np.nan), geometry)


def test_display_window_invert_and_source_geometry():
    values = np.asarray([[0.0, 100.0], [200.0, 400.0]], np.float32)[..., None]
    pre = Preprocessor(PreprocessSpec(scale={"mean": 0.0, "std": 9.0}), (8, 8, 3))
    shown = pre.display(image(values, window=(200.0, 400.0), invert=True))
    assert shown.shape == (2, 2, 1) and shown.dtype == np.float32
    np.testing.assert_allclose(shown[..., 0], [[1.0, 0.75], [0.5, 0.0]])
    shown = pre.display(image(values))  # no window: min-max
    np.testing.assert_allclose(shown[..., 0], [[0, 0.25], [0.5, 1.0]])
    assert pre.display(image(np.ones((3, 5, 3)))).shape == (3, 5, 3)


def test_dicom_monochrome1_end_to_end(tmp_path):
    stored = np.array([[0, 100], [200, 400]], np.uint16)
    ds = dicom_dataset(stored, photometric="MONOCHROME1", Modality="CR", WindowCenter=200, WindowWidth=400)
    loaded = read_image(save(ds, tmp_path / "cr.dcm"))
    pre = Preprocessor(PreprocessSpec(scale=None), (2, 2, 1))
    x, _ = pre(loaded)
    np.testing.assert_allclose(x[..., 0], [[1.0, 0.75], [0.5, 0.0]])  # bright where stored values are low
    np.testing.assert_allclose(pre.display(loaded)[..., 0], [[1.0, 0.75], [0.5, 0.0]])


def test_input_image_is_never_modified():
    arr = ramp((4, 4, 1), np.float32)
    img = image(arr.copy())
    x, _ = Preprocessor(PreprocessSpec(window=None, scale=None), (4, 4, 1))(img)
    x += 1000
    np.testing.assert_array_equal(img.array, arr)


# ------------------------------------------------------------ stored range


def picture(shape=(20, 24)) -> np.ndarray:
    """An 8-bit picture that does not fill 0..255 (so min-max would stretch it)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (30 + (y * 7 + x * 5) % 180).astype(np.uint8)


def test_8_and_16_bit_files_of_one_picture_give_one_model_input(tmp_path):
    eight = picture()
    Image.fromarray(eight).save(tmp_path / "p8.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "p16.png")  # a real 16-bit (I;16) PNG
    with Image.open(tmp_path / "p16.png") as opened:
        assert opened.mode == "I;16"
    pre = Preprocessor(PreprocessSpec(scale="stored_range"), (16, 16, 1))
    x8, _ = pre(read_image(tmp_path / "p8.png"))
    x16, _ = pre(read_image(tmp_path / "p16.png"))
    np.testing.assert_allclose(x16, x8, atol=1e-6)
    # the values keep their place in 0..255: no per-image stretching
    same_size, _ = Preprocessor(PreprocessSpec(scale="stored_range"), (20, 24, 1))(read_image(tmp_path / "p16.png"))
    np.testing.assert_allclose(same_size[..., 0], eight / 255.0, atol=1e-6)
    # min-max, by contrast, stretches each image to [0, 1]
    stretched, _ = Preprocessor(PreprocessSpec(), (20, 24, 1))(read_image(tmp_path / "p8.png"))
    assert stretched.min() == 0.0 and stretched.max() == 1.0


def test_12_bit_dicom_maps_its_stored_ends_to_0_and_1(tmp_path):
    stored = np.array([[0, 4095, 1024], [2048, 100, 3000]], np.uint16)
    ds = dicom_dataset(stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024)
    loaded = read_image(save(ds, tmp_path / "ct12.dcm"))
    assert loaded.meta["stored_range"] == (-1024, 3071)
    x, _ = Preprocessor(PreprocessSpec(window=None, scale="stored_range"), (2, 3, 1))(loaded)
    np.testing.assert_allclose(x[..., 0], stored / 4095.0, atol=1e-6)
    assert x.min() == 0.0 and x.max() == 1.0
    # an image that uses part of the range stays where it is (min-max would give 0 and 1)
    narrow = read_image(save(dicom_dataset(np.array([[1000, 2000]], np.uint16), bits_stored=12), tmp_path / "n.dcm"))
    x, _ = Preprocessor(PreprocessSpec(window=None, scale="bit_depth"), (1, 2, 1))(narrow)
    np.testing.assert_allclose(x[..., 0], [[1000 / 4095, 2000 / 4095]], atol=1e-6)


def test_stored_range_after_a_window_changes_nothing():
    hu = np.asarray([[-1000.0, -160.0], [40.0, 240.0]], np.float32)[..., None]
    windowed = image(hu, window=(40.0, 400.0), meta={"stored_range": (-1024, 3071)})
    plain, _ = Preprocessor(PreprocessSpec(scale=None), (2, 2, 1))(windowed)
    stored, _ = Preprocessor(PreprocessSpec(scale="stored_range"), (2, 2, 1))(windowed)
    np.testing.assert_array_equal(stored, plain)
    np.testing.assert_array_equal(stored[..., 0], [[0, 0], [0.5, 1]])
    # float data with a window needs no stored range either
    float_ct = image(hu, meta={"dtype": "float32", "stored_range": None})
    x, _ = Preprocessor(PreprocessSpec(window=(40, 400), scale="stored_range"), (2, 2, 1))(float_ct)
    np.testing.assert_array_equal(x, plain)


def test_stored_range_refuses_float_data_and_says_what_to_use(tmp_path):
    np.save(tmp_path / "f.npy", np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4))
    pre = Preprocessor(PreprocessSpec(scale="stored_range"), (4, 4, 1))
    with pytest.raises(PreprocessError, match=r"stored_range.*float data \(float32\).*use scale 'minmax'"):
        pre(read_image(tmp_path / "f.npy"))
    with pytest.raises(PreprocessError, match=r"meta\['stored_range'\]"):
        pre(grey(np.ones((4, 4))))  # built in memory: no stored range
    np.save(tmp_path / "i.npy", np.arange(16, dtype=np.uint8).reshape(4, 4))
    x, _ = pre(read_image(tmp_path / "i.npy"))
    np.testing.assert_allclose(x[..., 0], np.arange(16).reshape(4, 4) / 255.0, atol=1e-7)


def test_stored_range_inverts_monochrome1_about_the_stored_range(tmp_path):
    stored = np.array([[0, 100], [200, 400]], np.uint16)
    ds = dicom_dataset(stored, photometric="MONOCHROME1", Modality="CR", bits_stored=10)
    loaded = read_image(save(ds, tmp_path / "cr.dcm"))
    x, _ = Preprocessor(PreprocessSpec(scale="stored_range"), (2, 2, 1))(loaded)
    np.testing.assert_allclose(x[..., 0], 1.0 - stored / 1023.0, atol=1e-6)
    np.testing.assert_array_equal(
        invert_intensity(np.float32([0, 100]), windowed=False, stored_range=(0, 1023)), [1023, 923]
    )


def test_scale_intensity_stored_range():
    x = np.array([0.0, 2048.0, 4095.0], np.float32)
    np.testing.assert_allclose(scale_intensity(x, "stored_range", stored_range=(0, 4095)), [0, 2048 / 4095, 1])
    np.testing.assert_allclose(
        scale_intensity(x - 1024, "stored_range", stored_range=(-1024, 3071)), [0, 2048 / 4095, 1]
    )
    with pytest.raises(PreprocessError, match="float data has none"):
        scale_intensity(x, "stored_range")
    with pytest.raises(PreprocessError, match="unusable"):
        scale_intensity(x, "stored_range", stored_range=(5, 5))


def test_spec_stored_range_and_its_bit_depth_alias():
    assert PreprocessSpec(scale="stored_range").scale == "stored_range"
    assert PreprocessSpec(scale=" Bit_Depth ").scale == "stored_range"
    assert PreprocessSpec(scale="bit_depth").model_dump()["scale"] == "stored_range"
    with pytest.raises(ValueError, match="did you mean 'stored_range'"):
        PreprocessSpec(scale="stored range")


@pytest.mark.parametrize(
    ("shape", "ok"), [((32, 64800), False), ((64800, 32), False), ((1, 2048), False), ((20, 640), True)]
)
def test_a_resize_that_would_squeeze_one_axis_far_more_than_the_other_is_refused(shape, ok):
    pre = Preprocessor(PreprocessSpec(window=None, scale="minmax"), (64, 64, 1))
    if ok:  # 32 times more, the most taken
        assert pre(image(np.zeros((*shape, 1))))[0].shape == (64, 64, 1)
        return
    message = (
        rf"^image is {shape[0]} x {shape[1]}: resized to the model's 64 x 64 one axis would shrink \d+ times more "
        rf"than the other \(at most {MAX_ASPECT_CHANGE} is taken\)$"
    )
    with pytest.raises(PreprocessError, match=message):
        pre(image(np.zeros((*shape, 1))))
