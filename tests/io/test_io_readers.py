"""read_image on real files: DICOM (pydicom), PNG/JPEG/TIFF (skimage.io), NPY, NIfTI (nibabel)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import skimage.io
import tifffile
from _files import SECONDARY_CAPTURE, dicom_dataset, jpeg_baseline_dicom, ramp, save
from pydicom.pixels import convert_color_space
from pydicom.uid import JPEG2000Lossless, RLELossless

from medxai.io import ImageReadError, LoadedImage, read_image, supported_suffixes


def imsave(path: Path, data: np.ndarray) -> Path:
    skimage.io.imsave(path, data, check_contrast=False)
    return path


# --------------------------------------------------------------------- DICOM


def test_dicom_ct_modality_lut_window_and_spacing(tmp_path):
    stored = ramp((16, 16), np.uint16, step=3)
    ds = dicom_dataset(
        stored,
        RescaleSlope=2,
        RescaleIntercept=-1024,
        WindowCenter=[40, 400],
        WindowWidth=[400, 1500],
        PixelSpacing=[0.5, 0.75],
    )
    image = read_image(save(ds, tmp_path / "ct.dcm"))

    assert isinstance(image, LoadedImage)
    assert image.kind == "dicom"
    assert image.array.dtype == np.float32
    assert image.array.shape == (16, 16, 1)
    np.testing.assert_array_equal(image.array[..., 0], stored.astype(np.float64) * 2 - 1024)
    assert image.array[0, 0, 0] == -1024.0 and image.array[15, 15, 0] == 255 * 3 * 2 - 1024
    assert image.window == (40.0, 400.0)  # the first of a multi-valued pair
    assert image.invert is False
    assert image.spacing == (0.5, 0.75)
    assert image.meta["modality"] == "CT"
    assert image.meta["photometric"] == "MONOCHROME2"
    assert image.meta["frames"] == 1
    assert image.spatial_shape == (16, 16)
    assert image.source_path == str(tmp_path / "ct.dcm")


def test_dicom_signed_pixels_without_rescale_and_without_window(tmp_path):
    stored = (ramp((16, 16), np.int16) - 100).astype(np.int16)
    image = read_image(save(dicom_dataset(stored), tmp_path / "signed.dcm"))
    np.testing.assert_array_equal(image.array[..., 0], stored)
    assert image.window is None
    assert image.spacing is None


def test_dicom_monochrome1_sets_invert(tmp_path):
    stored = ramp((16, 16), np.uint16)
    ds = dicom_dataset(stored, photometric="MONOCHROME1", Modality="CR", WindowCenter=100, WindowWidth=200)
    image = read_image(save(ds, tmp_path / "cr.dcm"))
    assert image.invert is True
    assert image.window == (100.0, 200.0)
    np.testing.assert_array_equal(image.array[..., 0], stored)  # not inverted by the reader


def test_dicom_rgb(tmp_path):
    rgb = ramp((16, 16, 3), np.uint8)
    image = read_image(save(dicom_dataset(rgb, photometric="RGB", sop_class=SECONDARY_CAPTURE), tmp_path / "rgb.dcm"))
    assert image.array.shape == (16, 16, 3)
    np.testing.assert_array_equal(image.array, rgb)
    assert image.window is None and image.invert is False


def test_dicom_ybr_full_becomes_rgb(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 40, 90
    rgb[8:] = (10, 220, 30)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    ds = dicom_dataset(ybr, photometric="YBR_FULL", sop_class=SECONDARY_CAPTURE)
    image = read_image(save(ds, tmp_path / "ybr.dcm"))
    assert image.array.shape == (16, 16, 3)
    assert image.meta["photometric"] == "YBR_FULL"
    assert np.abs(image.array - rgb).max() <= 1  # YBR <-> RGB rounding


def test_dicom_palette_colour_becomes_rgb(tmp_path):
    indices = (ramp((16, 16), np.uint8) % 4).astype(np.uint8)
    lut = {"red": [0, 65535, 0, 0], "green": [0, 0, 65535, 0], "blue": [0, 0, 0, 65535]}
    ds = dicom_dataset(indices, photometric="PALETTE COLOR", sop_class=SECONDARY_CAPTURE, Modality="OT")
    for colour, values in lut.items():
        name = colour.capitalize()
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [4, 0, 16])
        setattr(ds, f"{name}PaletteColorLookupTableData", np.asarray(values, np.uint16).tobytes())
    image = read_image(save(ds, tmp_path / "palette.dcm"))
    assert image.array.shape == (16, 16, 3)
    expected = np.stack([np.take(lut[c], indices) for c in ("red", "green", "blue")], axis=-1)
    np.testing.assert_array_equal(image.array, expected)


def test_dicom_multiframe_is_a_volume(tmp_path):
    stored = ramp((4, 16, 16), np.uint16)
    ds = dicom_dataset(
        stored, frames=4, RescaleSlope=1, RescaleIntercept=-10, PixelSpacing=[0.7, 0.7], SliceThickness=2.5
    )
    image = read_image(save(ds, tmp_path / "multi.dcm"))
    assert image.array.shape == (4, 16, 16, 1)
    assert image.spatial_shape == (4, 16, 16)
    np.testing.assert_array_equal(image.array[..., 0], stored.astype(np.float64) - 10)
    assert image.meta["frames"] == 4
    assert image.spacing == (2.5, 0.7, 0.7)


def test_dicom_enhanced_multiframe_rescale_from_functional_groups(tmp_path):
    stored = ramp((2, 16, 16), np.uint16)
    ds = dicom_dataset(stored, frames=2)
    shared, transform, measures = pydicom.Dataset(), pydicom.Dataset(), pydicom.Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -1000, "HU"
    measures.PixelSpacing, measures.SliceThickness = [0.4, 0.5], 3
    shared.PixelValueTransformationSequence = [transform]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    image = read_image(save(ds, tmp_path / "enhanced.dcm"))
    np.testing.assert_array_equal(image.array[..., 0], stored.astype(np.float64) * 2 - 1000)
    assert image.spacing == (3.0, 0.4, 0.5)


def test_dicom_rle_lossless_decodes_to_the_original(tmp_path):
    stored = ramp((16, 16), np.uint16, step=7)
    ds = dicom_dataset(stored, RescaleSlope=1, RescaleIntercept=-1024)
    ds.compress(RLELossless)
    path = save(ds, tmp_path / "rle.dcm")
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    image = read_image(path)
    np.testing.assert_array_equal(image.array[..., 0], stored.astype(np.float64) - 1024)
    assert image.meta["transfer_syntax"] == "RLE Lossless"


def test_dicom_rle_multiframe_rgb(tmp_path):
    rgb = ramp((3, 16, 16, 3), np.uint8) % 251
    ds = dicom_dataset(rgb.astype(np.uint8), frames=3, photometric="RGB", sop_class=SECONDARY_CAPTURE)
    ds.compress(RLELossless)
    image = read_image(save(ds, tmp_path / "rle_rgb.dcm"))
    assert image.array.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(image.array, rgb)


def test_dicom_jpeg2000_lossless_decodes_to_the_original(tmp_path):
    # OpenJPEG refuses to encode images much smaller than 32x32 with its defaults.
    stored = (ramp((32, 32), np.uint16, step=3) % 4096).astype(np.uint16)
    ds = dicom_dataset(stored, bits_stored=12)
    ds.compress(JPEG2000Lossless)
    image = read_image(save(ds, tmp_path / "j2k.dcm"))
    np.testing.assert_array_equal(image.array[..., 0], stored)


def test_dicom_jpeg_baseline_ybr_422_becomes_rgb(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = (200, 30, 40)
    rgb[:, 8:] = (20, 60, 220)
    image = read_image(jpeg_baseline_dicom(tmp_path / "jpeg.dcm", rgb))
    assert image.array.shape == (16, 16, 3)
    assert image.meta["transfer_syntax"] == "JPEG Baseline (Process 1)"
    # Lossy: compare block means away from the colour edge.
    assert np.abs(image.array[:, :6].mean(axis=(0, 1)) - (200, 30, 40)).max() < 6
    assert np.abs(image.array[:, 10:].mean(axis=(0, 1)) - (20, 60, 220)).max() < 6


def test_dicom_without_suffix_is_found_by_its_magic(tmp_path):
    path = save(dicom_dataset(ramp((16, 16), np.uint16)), tmp_path / "IM0001")
    assert read_image(path).kind == "dicom"


def test_dicom_without_preamble_is_read(tmp_path):
    ds = dicom_dataset(ramp((16, 16), np.uint16))
    del ds.file_meta
    ds.save_as(tmp_path / "bare.dcm", implicit_vr=True, little_endian=True)
    assert (tmp_path / "bare.dcm").read_bytes()[128:132] != b"DICM"
    image = read_image(tmp_path / "bare.dcm")
    np.testing.assert_array_equal(image.array[..., 0], ramp((16, 16), np.uint16))


@pytest.mark.parametrize("keep", [0.9, 0.55, 0.3])
def test_truncated_dicom_is_an_image_read_error(tmp_path, keep):
    full = save(dicom_dataset(ramp((16, 16), np.uint16)), tmp_path / "full.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(full[: int(len(full) * keep)])
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


def test_truncated_compressed_dicom_is_an_image_read_error(tmp_path):
    ds = dicom_dataset(ramp((16, 16), np.uint16, step=7))
    ds.compress(RLELossless)
    full = save(ds, tmp_path / "full.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(full[:-40])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(path)


def test_dicom_without_pixel_data(tmp_path):
    ds = dicom_dataset(ramp((16, 16), np.uint16))
    del ds.PixelData
    path = save(ds, tmp_path / "nopixels.dcm")
    with pytest.raises(ImageReadError, match="no pixel data") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_text_file_named_dcm(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("patient notes, definitely not an image\n" * 20)
    with pytest.raises(ImageReadError, match="not a DICOM file") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.dcm"
    with pytest.raises(ImageReadError, match="file not found: ") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_folder_and_unknown_suffix(tmp_path):
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(tmp_path / "x.txt")


@pytest.mark.parametrize("name", ["a.png", "a.jpg", "a.tif", "a.npy", "a.nii", "a.nii.gz"])
def test_garbage_with_an_image_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(ImageReadError, match="not a .* file"):
        read_image(path)


def test_corrupt_png_body(tmp_path):
    good = imsave(tmp_path / "good.png", ramp((16, 16), np.uint8)).read_bytes()
    path = tmp_path / "bad.png"
    path.write_bytes(good[:40])
    with pytest.raises(ImageReadError, match="cannot decode PNG file"):
        read_image(path)


def test_supported_suffixes():
    suffixes = supported_suffixes()
    for s in (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".nii", ".nii.gz"):
        assert s in suffixes


# ----------------------------------------------------------- PNG / JPEG / TIFF


def test_png_grey(tmp_path):
    grey = ramp((16, 16), np.uint8)
    image = read_image(imsave(tmp_path / "g.png", grey))
    assert image.kind == "png"
    assert image.array.shape == (16, 16, 1) and image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array[..., 0], grey)


def test_png_rgb_and_rgba_drops_alpha(tmp_path):
    rgb = ramp((16, 16, 3), np.uint8)
    image = read_image(imsave(tmp_path / "rgb.png", rgb.astype(np.uint8)))
    np.testing.assert_array_equal(image.array, rgb)
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 7, np.uint8)], axis=-1).astype(np.uint8)
    image = read_image(imsave(tmp_path / "rgba.png", rgba))
    assert image.array.shape == (16, 16, 3)
    np.testing.assert_array_equal(image.array, rgb)


def test_png_grey_alpha_becomes_grey(tmp_path):
    grey = ramp((16, 16), np.uint8)
    image = read_image(imsave(tmp_path / "la.png", np.stack([grey, np.full_like(grey, 255)], axis=-1)))
    assert image.array.shape == (16, 16, 1)
    np.testing.assert_array_equal(image.array[..., 0], grey)


def test_png_16_bit_keeps_values(tmp_path):
    grey = ramp((16, 16), np.uint16, step=250)
    image = read_image(imsave(tmp_path / "g16.png", grey))
    assert image.array.max() == 255 * 250
    np.testing.assert_array_equal(image.array[..., 0], grey)


def test_jpeg_grey_and_rgb(tmp_path):
    grey = np.full((16, 16), 120, np.uint8)
    image = read_image(imsave(tmp_path / "g.jpg", grey))
    assert image.kind == "jpeg" and image.array.shape == (16, 16, 1)
    assert np.abs(image.array - 120).max() <= 2
    rgb = np.zeros((16, 16, 3), np.uint8) + np.array([30, 140, 220], np.uint8)
    image = read_image(imsave(tmp_path / "c.jpeg", rgb))
    assert image.array.shape == (16, 16, 3)
    assert np.abs(image.array.mean(axis=(0, 1)) - (30, 140, 220)).max() < 4


def test_tiff_grey_16_bit_and_rgb(tmp_path):
    grey = ramp((16, 16), np.uint16, step=200)
    image = read_image(imsave(tmp_path / "g.tif", grey))
    assert image.kind == "tiff" and image.array.shape == (16, 16, 1)
    np.testing.assert_array_equal(image.array[..., 0], grey)
    rgb = (ramp((16, 16, 3), np.uint8)).astype(np.uint8)
    image = read_image(imsave(tmp_path / "c.tiff", rgb))
    np.testing.assert_array_equal(image.array, rgb)


def test_tiff_float_and_min_is_white(tmp_path):
    data = ramp((16, 16), np.float32) / 10
    tifffile.imwrite(tmp_path / "f.tif", data, photometric="miniswhite")
    image = read_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(image.array[..., 0], data)
    assert image.invert is True


def test_multipage_tiff_is_a_volume(tmp_path):
    stack = ramp((5, 16, 16), np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    image = read_image(tmp_path / "stack.tif")
    assert image.array.shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(image.array[..., 0], stack)


def test_content_wins_over_a_lying_suffix(tmp_path):
    grey = ramp((16, 16), np.uint8)
    png = imsave(tmp_path / "g.png", grey)
    liar = tmp_path / "really_png.tif"
    shutil.copy(png, liar)
    image = read_image(liar)
    assert image.kind == "png"
    assert "suffix_mismatch" in image.meta
    assert image.meta["warnings"] == ["the file is named as TIFF but its content is PNG"]
    np.testing.assert_array_equal(image.array[..., 0], grey)
    dcm = save(dicom_dataset(ramp((16, 16), np.uint16)), tmp_path / "x.dcm")
    shutil.copy(dcm, tmp_path / "really_dicom.png")
    assert read_image(tmp_path / "really_dicom.png").kind == "dicom"


# ----------------------------------------------------------------------- NPY


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((16, 16), (16, 16, 1)),
        ((16, 16, 1), (16, 16, 1)),
        ((16, 16, 3), (16, 16, 3)),
        ((4, 16, 16), (4, 16, 16, 1)),
        ((4, 16, 16, 1), (4, 16, 16, 1)),
        ((4, 16, 16, 3), (4, 16, 16, 3)),
    ],
)
def test_npy_shapes(tmp_path, shape, expected):
    data = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) - 5.5
    np.save(tmp_path / "a.npy", data)
    image = read_image(tmp_path / "a.npy")
    assert image.kind == "npy"
    assert image.array.shape == expected and image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array.reshape(shape), data.astype(np.float32))


def test_npy_keeps_nan(tmp_path):
    data = np.ones((16, 16), np.float32)
    data[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", data)
    assert np.isnan(read_image(tmp_path / "nan.npy").array[3, 4, 0])  # NaN is preprocess's business


def test_finite_values_beyond_float32_are_named_as_such_not_as_infinite(tmp_path):
    data = np.ones((32, 32), np.float64)
    data[:, :] = 1e308  # finite in float64; float32 holds at most 3.4e38
    data[0, 0] = np.inf  # a real infinity is not counted as overflowed
    np.save(tmp_path / "big.npy", data)
    with pytest.raises(ImageReadError) as err:
        read_image(tmp_path / "big.npy")
    assert str(err.value) == (
        f"1023 value(s) beyond float32's range (finite in the file, float64: the float32 cast overflows): "
        f"{tmp_path / 'big.npy'} (largest magnitude 1e+308)"
    )
    data[:, :] = 3e38
    data[0, 0] = np.inf  # within float32: read as it is, the infinity left for preprocess to name
    np.save(tmp_path / "edge.npy", data)
    image = read_image(tmp_path / "edge.npy").array
    assert image[0, 0, 0] == np.inf and image[0, 1, 0] == np.float32(3e38)


@pytest.mark.parametrize("shape", [(16,), (2, 4, 16, 16, 1), (4, 16, 16, 2)])
def test_npy_bad_shapes(tmp_path, shape):
    np.save(tmp_path / "bad.npy", np.zeros(shape, np.float32))
    with pytest.raises(ImageReadError, match="unsupported NPY array shape"):
        read_image(tmp_path / "bad.npy")


def test_npy_objects_are_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ImageReadError, match="Python objects"):
        read_image(tmp_path / "obj.npy")


# --------------------------------------------------------------------- NIfTI


@pytest.mark.parametrize("name", ["vol.nii", "vol.nii.gz"])
def test_nifti_3d_axis_order_values_and_spacing(tmp_path, name):
    xyz = np.arange(5 * 6 * 4, dtype=np.int16).reshape(5, 6, 4)  # (X, Y, Z)
    img = nib.Nifti1Image(xyz, np.diag([0.5, 0.8, 2.0, 1.0]))
    img.header.set_slope_inter(2.0, -10.0)
    nib.save(img, tmp_path / name)
    image = read_image(tmp_path / name)
    assert image.kind == "nifti"
    assert image.array.shape == (4, 6, 5, 1)  # (Z, Y, X, C)
    for x, y, z in [(0, 0, 0), (4, 5, 3), (1, 2, 3), (3, 0, 1)]:
        assert image.array[z, y, x, 0] == xyz[x, y, z] * 2.0 - 10.0
    assert image.spacing == pytest.approx((2.0, 0.8, 0.5))


def test_nifti_single_slice_is_2d(tmp_path):
    xy1 = np.arange(5 * 6, dtype=np.float32).reshape(5, 6, 1)
    nib.save(nib.Nifti1Image(xy1, np.eye(4)), tmp_path / "slice.nii")
    image = read_image(tmp_path / "slice.nii")
    assert image.array.shape == (6, 5, 1)
    np.testing.assert_array_equal(image.array[..., 0], xy1[..., 0].T)


def test_gzipped_nifti_named_plain_nii(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    (tmp_path / "v.nii").write_bytes((tmp_path / "v.nii.gz").read_bytes())
    assert gzip.decompress((tmp_path / "v.nii").read_bytes())[344:348] == b"n+1\x00"
    assert read_image(tmp_path / "v.nii").array.shape == (3, 4, 4, 1)


def test_nifti_time_series_is_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), tmp_path / "t.nii")
    with pytest.raises(ImageReadError, match="unsupported NIfTI shape"):
        read_image(tmp_path / "t.nii")


# ---------------------------------------------------------------- lightness


def test_io_and_preprocess_do_not_import_tensorflow():
    # Load the modules under a bare stand-in for the package so that
    # medxai/__init__.py (which may import TensorFlow) is not run.
    package = Path(__file__).resolve().parents[2] / "medxai"
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('medxai'); pkg.__path__ = [{str(package)!r}]\n"
        "sys.modules['medxai'] = pkg\n"
        "import medxai.io, medxai.preprocess\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr


def test_12_bit_jpeg_extended_is_decoded_by_gdcm_where_pylibjpeg_fails():
    from pydicom.data import get_testdata_file

    broken = get_testdata_file("JPEG-lossy.dcm", download=False)  # a 12-bit codestream with a bad scan header
    fixed = get_testdata_file("JPGExtended.dcm", download=False)  # the same image, repaired (pylibjpeg reads it)
    if broken is None or fixed is None:
        pytest.skip("pydicom's test files are not installed")
    image = read_image(broken)
    reference = read_image(fixed)
    assert image.meta["decoder"] == "gdcm" and "decoder" not in reference.meta
    assert image.array.shape == reference.array.shape == (1024, 256, 1)
    # two lossy decoders (GDCM's IJG and libjpeg) agree to one grey level
    assert np.abs(image.array - reference.array).max() <= 1.0
    assert image.array.max() > 100


# ---------------------------------------------------- stored range / bit depth


def _stored(image: LoadedImage) -> tuple:
    return image.meta["stored_range"], image.meta["bit_depth"]


def test_raster_stored_range_follows_the_file_bit_depth(tmp_path):
    grey8 = ramp((6, 7), np.uint8, step=40)
    skimage.io.imsave(tmp_path / "g8.png", grey8, check_contrast=False)
    skimage.io.imsave(tmp_path / "g16.png", grey8.astype(np.uint16) * 257, check_contrast=False)
    skimage.io.imsave(tmp_path / "rgb.jpg", np.stack([grey8] * 3, -1), check_contrast=False)
    tifffile.imwrite(tmp_path / "g16.tif", grey8.astype(np.uint16) * 257)
    tifffile.imwrite(tmp_path / "s16.tif", grey8.astype(np.int16) - 100)
    tifffile.imwrite(tmp_path / "rgb8.tif", np.stack([grey8] * 3, -1), photometric="rgb")
    tifffile.imwrite(tmp_path / "f32.tif", grey8.astype(np.float32))
    assert _stored(read_image(tmp_path / "g8.png")) == ((0, 255), 8)
    assert _stored(read_image(tmp_path / "g16.png")) == ((0, 65535), 16)
    assert _stored(read_image(tmp_path / "rgb.jpg")) == ((0, 255), 8)
    assert _stored(read_image(tmp_path / "g16.tif")) == ((0, 65535), 16)
    assert _stored(read_image(tmp_path / "s16.tif")) == ((-32768, 32767), 16)
    assert _stored(read_image(tmp_path / "rgb8.tif")) == ((0, 255), 8)
    assert _stored(read_image(tmp_path / "f32.tif")) == (None, None)


def test_range_meta_of_fewer_bits_than_the_dtype():
    from medxai.io.arrays import range_meta

    assert range_meta(np.uint16, 12) == {"stored_range": (0, 4095), "bit_depth": 12}
    assert range_meta(np.int16, 12) == {"stored_range": (-2048, 2047), "bit_depth": 12}
    assert range_meta(np.uint8, 99) == {"stored_range": (0, 255), "bit_depth": 8}  # impossible bits: the dtype's
    assert range_meta(np.uint8, slope=0.5, intercept=1) == {"stored_range": (1, 128.5), "bit_depth": 8}


def test_tiff_stored_range_uses_bits_per_sample(tmp_path):
    pytest.importorskip("imagecodecs")  # tifffile packs and unpacks 12-bit samples with it
    data = np.array([[0, 4095], [100, 2000]], np.uint16)
    tifffile.imwrite(tmp_path / "g12.tif", data, bitspersample=12)
    image = read_image(tmp_path / "g12.tif")
    np.testing.assert_array_equal(image.array[..., 0], data)
    assert _stored(image) == ((0, 4095), 12)  # decoded into uint16, but the file holds 12 bits


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.uint8, ((0, 255), 8)),
        (np.uint16, ((0, 65535), 16)),
        (np.int16, ((-32768, 32767), 16)),
        (np.int8, ((-128, 127), 8)),
        (np.bool_, ((0, 1), 1)),
        (np.float32, (None, None)),
        (np.float64, (None, None)),
    ],
)
def test_npy_stored_range_is_the_dtype_range(tmp_path, dtype, expected):
    np.save(tmp_path / "a.npy", np.ones((4, 5), dtype=dtype))
    assert _stored(read_image(tmp_path / "a.npy")) == expected


def test_nifti_stored_range_through_scl_slope_and_inter(tmp_path):
    img = nib.Nifti1Image(ramp((4, 5, 3), np.int16), np.eye(4))
    img.header.set_slope_inter(-2.0, 10.0)
    nib.save(img, tmp_path / "scaled.nii")
    image = read_image(tmp_path / "scaled.nii")
    assert _stored(image) == ((-65524, 65546), 16)  # int16 ends * -2 + 10, swapped
    assert image.meta["stored_range"][0] <= image.array.min() and image.array.max() <= image.meta["stored_range"][1]
    nib.save(nib.Nifti1Image(ramp((4, 5), np.uint8), np.eye(4)), tmp_path / "plain.nii.gz")
    assert _stored(read_image(tmp_path / "plain.nii.gz")) == ((0, 255), 8)
    nib.save(nib.Nifti1Image(np.ones((4, 5), np.float32), np.eye(4)), tmp_path / "float.nii")
    assert _stored(read_image(tmp_path / "float.nii")) == (None, None)


def test_dicom_stored_range_from_bits_stored_through_the_rescale(tmp_path):
    stored = np.array([[0, 4095], [1000, 2000]], np.uint16)
    ct = dicom_dataset(stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024)
    assert _stored(read_image(save(ct, tmp_path / "ct.dcm"))) == ((-1024, 3071), 12)
    plain = dicom_dataset(stored, bits_stored=12)
    assert _stored(read_image(save(plain, tmp_path / "plain.dcm"))) == ((0, 4095), 12)
    signed = dicom_dataset(np.array([[-2048, 2047]], np.int16), bits_stored=12, RescaleSlope=-0.5, RescaleIntercept=0)
    image = read_image(save(signed, tmp_path / "signed.dcm"))
    assert _stored(image) == ((-1023.5, 1024), 12)  # a negative slope swaps the ends
    np.testing.assert_array_equal(image.array[..., 0], [[1024, -1023.5]])


def test_dicom_stored_range_with_a_modality_lut_sequence(tmp_path):
    ds = dicom_dataset(np.array([[0, 15], [3, 8]], np.uint16), bits_stored=4)
    item = pydicom.Dataset()
    item.add_new(0x00283002, "US", [8, 2, 16])  # LUTDescriptor: 8 entries from stored value 2, 16 bits
    item.add_new(0x00283006, "US", [100, 90, 80, 1000, 5, 6, 7, 8])  # LUTData: not monotonic
    item.ModalityLUTType = "US"
    ds.ModalityLUTSequence = [item]
    image = read_image(save(ds, tmp_path / "lut.dcm"))
    np.testing.assert_array_equal(image.array[..., 0], [[100, 8], [90, 7]])
    assert _stored(image) == ((5, 1000), 4)  # the lowest and highest values the LUT can give


def test_dicom_stored_range_with_per_frame_rescales(tmp_path):
    stored = ramp((2, 4, 4), np.uint16)
    ds = dicom_dataset(stored, frames=2, bits_stored=10)
    frames = []
    for slope, intercept in ((1, -100), (3, 50)):
        group, transform = pydicom.Dataset(), pydicom.Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = slope, intercept, "US"
        group.PixelValueTransformationSequence = [transform]
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = frames
    image = read_image(save(ds, tmp_path / "frames.dcm"))
    np.testing.assert_array_equal(image.array[1, ..., 0], stored[1] * 3.0 + 50)
    assert _stored(image) == ((-100, 1023 * 3 + 50), 10)


def test_dicom_colour_stored_range(tmp_path):
    rgb = ramp((4, 4, 3), np.uint8, step=9)
    ds = dicom_dataset(rgb, photometric="RGB", sop_class=SECONDARY_CAPTURE, Modality="OT")
    assert _stored(read_image(save(ds, tmp_path / "rgb.dcm"))) == ((0, 255), 8)


# ------------------------------------------------- warnings and value range (issue 14)


def test_every_reader_gives_warnings_and_the_value_range(tmp_path):
    grey = ramp((16, 16), np.uint8)
    np.save(tmp_path / "a.npy", grey.astype(np.float32) - 5)
    nib.save(nib.Nifti1Image(grey.astype(np.int16), np.eye(4)), tmp_path / "a.nii.gz")
    tifffile.imwrite(tmp_path / "a.tif", grey)
    paths = [
        imsave(tmp_path / "a.png", grey),
        tmp_path / "a.npy",
        tmp_path / "a.nii.gz",
        tmp_path / "a.tif",
        save(dicom_dataset(grey.astype(np.uint16), RescaleSlope=2, RescaleIntercept=-10), tmp_path / "a.dcm"),
    ]
    for path in paths:
        image = read_image(path, max_pixels=256, timeout=60)
        assert image.meta["warnings"] == [], path
        assert image.meta["value_range"] == (float(image.array.min()), float(image.array.max())), path
    assert read_image(paths[-1]).meta["value_range"] == (-10.0, 255 * 2 - 10.0)


def test_a_series_volume_has_the_union_of_its_value_ranges(tmp_path):
    from _files import dicom_series

    dicom_series(tmp_path / "s", np.stack([np.full((4, 4), -100.0), np.full((4, 4), 50.0)]))
    image = read_image(tmp_path / "s")
    assert image.meta["value_range"] == (-100.0, 50.0) and image.meta["warnings"] == []


def test_lossy_jpeg_reads_as_when_gdcm_decoded_it():
    """GDCM no longer decodes in-process (it can abort the process); Pillow gives the same pixels."""
    from pydicom.data import get_testdata_file
    from pydicom.pixels import get_decoder

    pytest.importorskip("gdcm")
    name = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm", download=False)
    if name is None:
        pytest.skip("pydicom's test files are not installed")
    ds = pydicom.dcmread(name)
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    if "gdcm" not in decoder.available_plugins:
        pytest.skip("pydicom's GDCM plugin is not available")
    reference, _ = decoder.as_array(ds, decoding_plugin="gdcm")
    np.testing.assert_array_equal(read_image(name).array, reference.astype(np.float32))
