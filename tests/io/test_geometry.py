"""Image geometry: DICOM series read as volumes, affines of DICOM and NIfTI files, NIfTI maps written back."""

from __future__ import annotations

import os
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from _files import dicom_series, rotation, simpleitk_misplacement, simpleitk_ras_affine
from PIL import Image

from medxai.data.study_files import write_ct_dicom, write_xray_dicom
from medxai.errors import ImageReadError
from medxai.io import read_image
from medxai.io.geometry import (
    array_to_nifti_affine,
    default_affine,
    dicom_affine,
    nifti_to_array_affine,
    orientation_code,
    voxel_spacing,
)
from medxai.io.nifti import write_nifti

OBLIQUE = rotation(25, -10, 30)[:, :2].T  # two orthonormal rows: an oblique ImageOrientationPatient


def _volume(shape=(5, 6, 7), seed=0) -> np.ndarray:
    # even HU values: exact through every slope used below (0.5, 1, 2)
    return 2.0 * np.random.default_rng(seed).integers(-250, 250, shape)


# ------------------------------------------------------------------ DICOM series


def test_an_oblique_shuffled_series_is_read_as_one_volume_with_simpleitks_geometry(tmp_path):
    volume = _volume()
    files = dicom_series(
        tmp_path / "series", volume, orientation=OBLIQUE, order=[3, 0, 4, 1, 2], slopes=[1, 2, 1, 0.5, 1]
    )
    image = read_image(tmp_path / "series")
    assert image.kind == "dicom" and image.array.shape == (5, 6, 7, 1)
    np.testing.assert_array_equal(image.array[..., 0], volume)  # sorted along the normal, each slice rescaled
    assert image.spacing == pytest.approx((2.5, 0.8, 0.6))  # from the positions, not SliceThickness (7)
    assert image.meta["source_files"] == [os.fspath(f) for f in files]
    assert image.patient_geometry and image.window == (40.0, 400.0)
    np.testing.assert_allclose(
        array_to_nifti_affine(image.affine, 3), simpleitk_ras_affine(tmp_path / "series"), atol=1e-9
    )


def test_a_series_affine_puts_each_voxel_where_its_file_says(tmp_path):
    files = dicom_series(tmp_path / "s", _volume((4, 3, 5)), orientation=OBLIQUE, order=[2, 0, 3, 1])
    image = read_image(tmp_path / "s")
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        lps_first_pixel = np.asarray(ds.ImagePositionPatient, dtype=float)
        ras = image.affine @ [k, 0, 0, 1]
        np.testing.assert_allclose(ras[:3], lps_first_pixel * [-1, -1, 1], atol=1e-9)
        # one column along: the row direction cosine times the column spacing
        ras_next = image.affine @ [k, 0, 1, 1]
        step = np.asarray(ds.ImageOrientationPatient[:3], dtype=float) * float(ds.PixelSpacing[1])
        np.testing.assert_allclose(ras_next[:3] - ras[:3], step * [-1, -1, 1], atol=1e-9)


def test_series_order_follows_the_normal_not_instance_numbers_or_names(tmp_path):
    volume = _volume((4, 3, 3))
    files = dicom_series(tmp_path / "s", volume, order=[1, 3, 0, 2])
    for path in files:  # scramble InstanceNumber too
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = 100 - int(ds.InstanceNumber)
        ds.save_as(path)
    image = read_image(tmp_path / "s")
    np.testing.assert_array_equal(image.array[..., 0], volume)
    assert orientation_code(image.affine, 3) == "SPL"


def test_other_files_beside_a_series_are_skipped(tmp_path):
    dicom_series(tmp_path / "s", _volume((3, 4, 4)))
    (tmp_path / "s" / "notes.txt").write_text("not an image")
    (tmp_path / "s" / ".hidden").write_bytes(b"\0" * 200)
    assert read_image(tmp_path / "s").array.shape == (3, 4, 4, 1)


def test_a_folder_of_two_series_needs_a_series_uid(tmp_path):
    first = dicom_series(tmp_path / "two", _volume((3, 4, 4), 1), series_uid="1.2.3.1")
    dicom_series(tmp_path / "other", _volume((2, 4, 4), 2), series_uid="1.2.3.2")
    for path in (tmp_path / "other").iterdir():
        shutil.move(path, tmp_path / "two" / f"b_{path.name}")
    with pytest.raises(
        ImageReadError, match=r"several DICOM series.*series_uid.*1\.2\.3\.1 \(3 files\).*1\.2\.3\.2 \(2 files\)"
    ):
        read_image(tmp_path / "two")
    assert read_image(tmp_path / "two", series_uid="1.2.3.2").array.shape == (2, 4, 4, 1)
    with pytest.raises(ImageReadError, match=r"series 9\.9 is not in the folder.*1\.2\.3\.1"):
        read_image(tmp_path / "two", series_uid="9.9")
    with pytest.raises(ImageReadError, match=r"not in series 1\.2\.3\.2.*its series: 1\.2\.3\.1"):
        read_image(first[0], series_uid="1.2.3.2")
    assert read_image(first[0], series_uid="1.2.3.1").array.shape == (4, 4, 1)


def test_a_missing_slice_is_a_gap_error_naming_the_files(tmp_path):
    files = dicom_series(tmp_path / "s", _volume((5, 3, 3)))
    os.unlink(files[2])
    with pytest.raises(ImageReadError, match=r"unevenly spaced.*5 mm from .* to .*step is 2\.5 mm"):
        read_image(tmp_path / "s")


def test_duplicate_positions_are_refused(tmp_path):
    files = dicom_series(tmp_path / "s", _volume((3, 3, 3)))
    shutil.copy(files[1], tmp_path / "s" / "copy.dcm")
    with pytest.raises(ImageReadError, match="share one position"):
        read_image(tmp_path / "s")


def test_mixed_orientations_are_refused(tmp_path):
    files = dicom_series(tmp_path / "s", _volume((3, 3, 3)))
    ds = pydicom.dcmread(files[1])
    ds.ImageOrientationPatient = [float(v) for v in OBLIQUE.ravel()]
    ds.save_as(files[1])
    with pytest.raises(ImageReadError, match="mixes slice orientations"):
        read_image(tmp_path / "s")


def test_positions_off_the_normal_are_refused(tmp_path):
    files = dicom_series(tmp_path / "s", _volume((3, 3, 3)))
    for k, path in enumerate(files):  # a gantry tilt: each slice shifted along y
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [
            ds.ImagePositionPatient[0],
            ds.ImagePositionPatient[1] + 1.5 * k,
            ds.ImagePositionPatient[2],
        ]
        ds.save_as(path)
    with pytest.raises(ImageReadError, match="do not lie along the slice normal"):
        read_image(tmp_path / "s")


def test_an_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ImageReadError, match="no DICOM image files"):
        read_image(tmp_path / "empty")


# ------------------------------------------------------------------ single files


def test_a_dicom_slice_has_its_patient_affine(tmp_path):
    path = write_ct_dicom(tmp_path / "a.dcm", np.zeros((8, 10)), uid_seed=1, pixel_spacing=(0.5, 0.7))
    image = read_image(path)
    ds = pydicom.dcmread(path)
    assert image.patient_geometry
    np.testing.assert_allclose(image.affine @ [0, 0, 0, 1], [*(np.asarray(ds.ImagePositionPatient) * [-1, -1, 1]), 1])
    assert voxel_spacing(image.affine, 2) == pytest.approx((0.5, 0.7))
    assert orientation_code(image.affine, 2) == "PL"  # rows run posterior, columns to the patient's left
    assert image.meta["source_files"] == [os.fspath(path)]


def test_png_and_npy_get_a_pixel_grid_affine(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 6, 1), np.float32))
    image = read_image(tmp_path / "a.npy")
    assert not image.patient_geometry
    # ITK's grid for an image without position: identity in LPS+, so x and y are negated in RAS+
    np.testing.assert_array_equal(array_to_nifti_affine(image.affine, 2), np.diag([-1.0, -1.0, 1.0, 1.0]))


def _projection_sources(folder) -> dict[str, object]:
    """A PNG, a CR with PixelSpacing and ImagerPixelSpacing, and a CR with ImagerPixelSpacing only; 12 x 16 pixels."""
    folder.mkdir()
    pixels = np.random.default_rng(3).random((12, 16))
    Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / "a.png")
    cr = write_xray_dicom(folder / "cr.dcm", pixels, uid_seed="cr", pixel_spacing=(0.7, 0.4))
    ds = pydicom.dcmread(cr)
    del ds.PixelSpacing  # as most CR/DX files: the detector's spacing only
    ds.save_as(folder / "imager.dcm")
    return {"png": folder / "a.png", "cr": cr, "imager": folder / "imager.dcm"}


@pytest.mark.parametrize("kind", ["png", "cr", "imager"])
def test_a_nifti_map_of_a_projection_image_lands_on_its_pixels_in_simpleitk(tmp_path, kind):
    source = _projection_sources(tmp_path / "src")[kind]
    image = read_image(source)
    assert not image.patient_geometry
    heat = np.random.default_rng(4).random(image.spatial_shape).astype(np.float32)
    write_nifti(tmp_path / "map.nii.gz", heat, image.affine)
    assert simpleitk_misplacement(source, tmp_path / "map.nii.gz") < 1e-4  # was 19.5 mm (CR), 37.2 mm (PNG)
    sitk = pytest.importorskip("SimpleITK")
    # SimpleITK's array is (rows, cols) like medxai's: the same pixel holds the same value
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(tmp_path / "map.nii.gz")), heat)


@pytest.mark.parametrize("codes", [(2, 1), (1, 0), (0, 1), (4, 2), (0, 0)])
def test_a_nifti_map_keeps_both_transforms_of_a_source_whose_sform_and_qform_differ(tmp_path, codes):
    qform = np.eye(4)
    qform[:3, :3] = rotation(10, -5, 20) @ np.diag([0.8, 0.9, 2.0])
    qform[:3, 3] = [-5.0, 3.0, 10.0]
    sform = qform.copy()
    sform[:3, 3] += [10.0, 0.0, 0.0]  # a registration moved the sform 10 mm
    source = nib.Nifti1Image(np.random.default_rng(5).random((9, 7, 5)).astype(np.float32), None)
    source.set_qform(qform, code=codes[1])
    source.set_sform(sform, code=codes[0])
    source.header.set_xyzt_units(xyz="mm")
    nib.save(source, tmp_path / "reg.nii.gz")

    image = read_image(tmp_path / "reg.nii.gz")
    write_nifti(tmp_path / "map.nii.gz", image.array[..., 0], image.affine, xforms=image.meta["nifti_xforms"])
    back = nib.load(tmp_path / "map.nii.gz")
    for key in (
        "sform_code",
        "qform_code",
        "srow_x",
        "srow_y",
        "srow_z",
        "quatern_b",
        "quatern_c",
        "quatern_d",
        "qoffset_x",
        "qoffset_y",
        "qoffset_z",
        "pixdim",
        "xyzt_units",
    ):
        np.testing.assert_array_equal(back.header[key], source.header[key], err_msg=key)
    np.testing.assert_allclose(back.affine, nib.load(tmp_path / "reg.nii.gz").affine, atol=1e-6)  # nibabel agrees
    assert simpleitk_misplacement(tmp_path / "reg.nii.gz", tmp_path / "map.nii.gz") < 1e-4  # ITK agrees (was 10 mm)


def test_a_rotated_anisotropic_nifti_round_trips_exactly(tmp_path):
    affine = np.eye(4)
    affine[:3, :3] = rotation(20, 10, 35) @ np.diag([0.7, 1.3, 2.5])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    data = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "a.nii.gz")
    image = read_image(tmp_path / "a.nii.gz")
    assert image.array.shape == (7, 6, 5, 1) and image.patient_geometry
    write_nifti(tmp_path / "b.nii.gz", image.array[..., 0], image.affine, shape_xyz=image.meta["shape_xyz"])
    back = nib.load(tmp_path / "b.nii.gz")
    assert back.shape == data.shape and back.get_data_dtype() == np.float32
    np.testing.assert_allclose(back.affine, affine, atol=1e-6)
    np.testing.assert_array_equal(back.get_fdata(), data)


def test_write_nifti_keeps_trailing_singleton_axes_and_refuses_nan(tmp_path):
    write_nifti(tmp_path / "a.nii", np.ones((3, 4), np.float32), default_affine((1.0, 2.0)), shape_xyz=(4, 3, 1))
    assert nib.load(tmp_path / "a.nii").shape == (4, 3, 1)
    with pytest.raises(ValueError, match="NaN"):
        write_nifti(tmp_path / "b.nii", np.full((3, 4), np.nan), np.eye(4))
    with pytest.raises(ValueError, match="2 or 3 axes"):
        write_nifti(tmp_path / "c.nii", np.ones(3), np.eye(4))
    assert not (tmp_path / "b.nii").exists()


def test_affine_helpers_agree_with_each_other():
    a = dicom_affine(OBLIQUE.ravel(), [1.0, 2.0, 3.0], [0.8, 0.6], 2.5 * np.cross(OBLIQUE[0], OBLIQUE[1]))
    assert voxel_spacing(a, 3) == pytest.approx((2.5, 0.8, 0.6))
    np.testing.assert_array_equal(nifti_to_array_affine(array_to_nifti_affine(a, 3), 3), a)
    assert np.linalg.det(a[:3, :3]) != 0
    with pytest.raises(ValueError, match="orthogonal unit vectors"):
        dicom_affine([1, 0, 0, 1, 0, 0], [0, 0, 0], [1, 1])
    assert orientation_code(default_affine((3.0, 2.0, 1.0)), 3) == "SPL"  # ITK's identity grid: DICOM's axial order
