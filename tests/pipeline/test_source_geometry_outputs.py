"""Maps back in the source geometry: NIfTI and DICOM outputs of whole runs, DICOM series in, geometry in the index."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import keras
import nibabel as nib
import numpy as np
import pydicom
import pytest
from _files import dicom_series, rotation, simpleitk_misplacement, simpleitk_ras_affine
from analytic_models import tiny_model
from PIL import Image
from pydicom.data import get_testdata_file
from study_helpers import read_index

import medxai
from medxai.data.study_files import write_ct_dicom, write_xray_dicom


def cube_model(array_shape: tuple[int, ...], cube: tuple[slice, ...]) -> keras.Model:
    """A linear model over a ``(*array_shape, 1)`` input whose class-1 logit is the sum over ``cube``.

    Its gradient for class 1 is exactly the cube's indicator, so a normalised map is 1 on the cube, 0 elsewhere.
    """
    mask = np.zeros(array_shape, np.float32)
    mask[cube] = 1.0
    inputs = keras.Input((*array_shape, 1))
    dense = keras.layers.Dense(2, use_bias=False)
    logits = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([np.stack([-mask.ravel(), mask.ravel()], axis=1)])
    return keras.Model(inputs, logits)


def _run(tmp_path, manifest_rows, model, formats, columns=("image_id", "path"), **data):
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(manifest_rows)
    config = {
        "model": {"path": str(tmp_path / "model.keras"), "output": "logits"},
        "data": {"manifest": str(manifest), "id_column": "image_id", **data},
        "preprocess": {"window": None, "scale": None},
        "methods": ["gradient"],
        "targets": [1],
        "output": {"dir": str(tmp_path / "run"), "formats": formats},
        "runtime": {"batch_size": 2, "progress": False},
    }
    model.save(tmp_path / "model.keras")
    summary = medxai.run(config, model=model)
    return summary, read_index(tmp_path / "run" / "index.csv")


def test_a_rotated_anisotropic_nifti_map_lands_on_the_cube_in_the_source_files_coordinates(tmp_path):
    affine = np.eye(4)
    affine[:3, :3] = rotation(15, -25, 40) @ np.diag([0.7, 1.4, 2.6])
    affine[:3, 3] = [12.0, -30.0, 8.0]
    shape_xyz = (9, 7, 5)
    cube_xyz = (slice(2, 5), slice(1, 4), slice(3, 5))  # in the NIfTI file's own (X, Y, Z) indices
    data = np.random.default_rng(0).random(shape_xyz).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ct.nii.gz")
    # medxai's arrays are the transpose of nibabel's: the model sees (Z, Y, X)
    model = cube_model(shape_xyz[::-1], cube_xyz[::-1])

    summary, rows = _run(tmp_path, [("vol", "ct.nii.gz")], model, ["npy", "nifti"])
    assert summary.exit_code == 0, rows
    out = nib.load(tmp_path / "run" / rows[0]["nifti_path"])
    assert out.shape == shape_xyz
    np.testing.assert_allclose(out.affine, affine, atol=1e-6)
    expected = np.zeros(shape_xyz)
    expected[cube_xyz] = 1.0
    np.testing.assert_array_equal(out.get_fdata(), expected)  # all the mass on the cube, where the file has it
    npy = np.load(tmp_path / "run" / rows[0]["npy_path"])
    np.testing.assert_array_equal(npy, expected.T)  # the .npy is in medxai's (Z, Y, X) order
    assert rows[0]["source_shape"] == "5x7x9"
    assert [float(v) for v in rows[0]["spacing"].split("x")] == pytest.approx([2.6, 1.4, 0.7])
    # the .npy axes are the file's axes reversed, so their codes are nibabel's reversed
    assert rows[0]["orientation"] == "".join(reversed(nib.aff2axcodes(affine)))


def test_nifti_maps_of_a_registered_nifti_a_png_and_a_cr_land_on_their_sources_in_simpleitk(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(0)
    pixels = rng.random((12, 16))
    qform = np.eye(4)
    qform[:3, :3] = rotation(0, 0, 25) @ np.diag([0.8, 0.9, 1.0])
    sform = qform.copy()
    sform[:3, 3] = [10.0, 0.0, 0.0]  # a registration moved the sform, not the qform
    registered = nib.Nifti1Image(pixels.T.astype(np.float32), None)
    registered.set_qform(qform, code=1)
    registered.set_sform(sform, code=2)
    nib.save(registered, tmp_path / "reg.nii.gz")
    Image.fromarray((pixels * 255).astype(np.uint8)).save(tmp_path / "a.png")
    ds = pydicom.dcmread(write_xray_dicom(tmp_path / "cr.dcm", pixels, uid_seed="cr", pixel_spacing=(0.7, 0.4)))
    del ds.PixelSpacing  # the detector's spacing only, as most radiographs
    ds.save_as(tmp_path / "cr.dcm")
    sources = {"reg": "reg.nii.gz", "png": "a.png", "cr": "cr.dcm"}

    summary, rows = _run(tmp_path, list(sources.items()), tiny_model((None, None, 1)), ["npy", "nifti"])
    assert summary.exit_code == 0, rows
    for row in rows:
        source, mapped = tmp_path / sources[row["image_id"]], tmp_path / "run" / row["nifti_path"]
        assert simpleitk_misplacement(source, mapped) < 1e-4, row["image_id"]  # was 10, 37.2 and 19.5 mm
        npy = np.load(tmp_path / "run" / row["npy_path"])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(mapped)), npy)
    out = nib.load(tmp_path / "run" / next(r for r in rows if r["image_id"] == "reg")["nifti_path"])
    assert (int(out.header["sform_code"]), int(out.header["qform_code"])) == (2, 1)
    np.testing.assert_allclose(out.get_sform(), sform, atol=1e-6)
    np.testing.assert_allclose(out.get_qform(), qform, atol=1e-6)


def test_a_dicom_series_is_explained_as_one_volume_with_nifti_and_dicom_maps_on_it(tmp_path):
    volume = 2.0 * np.random.default_rng(1).integers(-100, 100, (4, 6, 5))
    files = dicom_series(tmp_path / "series", volume, orientation=rotation(20, 0, 30)[:, :2].T, order=[2, 0, 3, 1])
    cube = (slice(1, 3), slice(2, 5), slice(0, 2))  # in slice order along the normal
    summary, rows = _run(tmp_path, [("ser", "series")], cube_model(volume.shape, cube), ["npy", "nifti", "dicom"])
    assert summary.exit_code == 0, rows
    row = rows[0]
    npy = np.load(tmp_path / "run" / row["npy_path"])
    expected = np.zeros(volume.shape)
    expected[cube] = 1.0
    np.testing.assert_array_equal(npy, expected)

    nifti = nib.load(tmp_path / "run" / row["nifti_path"])
    np.testing.assert_allclose(nifti.affine, simpleitk_ras_affine(tmp_path / "series"), atol=1e-5)
    np.testing.assert_array_equal(nifti.get_fdata(), expected.T)

    pm = pydicom.dcmread(tmp_path / "run" / row["dicom_map_path"])
    source = [pydicom.dcmread(f) for f in files]
    assert pm.StudyInstanceUID == source[0].StudyInstanceUID and pm.PatientID == source[0].PatientID
    assert pm.SeriesInstanceUID != source[0].SeriesInstanceUID
    assert pm.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    assert int(pm.NumberOfFrames) == len(files)
    # highdicom stores the frames in its own order; each frame says which source slice it maps
    slice_of = {ds.SOPInstanceUID: k for k, ds in enumerate(source)}
    for frame, item in zip(pm.pixel_array, pm.PerFrameFunctionalGroupsSequence):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k = slice_of[uid]
        np.testing.assert_array_equal(frame, npy[k].astype(np.float32))
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, [float(v) for v in source[k].ImagePositionPatient], atol=1e-4)
    sc_folder = tmp_path / "run" / row["dicom_overlay_path"]
    assert sc_folder.is_dir() and len(list(sc_folder.glob("*.dcm"))) == len(files)

    assert row["source_shape"] == "4x6x5"
    assert row["orientation"] == "".join(reversed(nib.aff2axcodes(simpleitk_ras_affine(tmp_path / "series"))))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["geometry"]["images"]["ser"]["source_shape"] == "4x6x5"
    dcmdump = shutil.which("dcmdump")
    if dcmdump:
        for path in [tmp_path / "run" / row["dicom_map_path"], *sc_folder.glob("*.dcm")]:
            assert subprocess.run([dcmdump, str(path)], capture_output=True).returncode == 0


def test_dicom_output_for_a_png_source_is_an_error_row_and_the_run_goes_on(tmp_path):
    import skimage.io

    rng = np.random.default_rng(0)
    skimage.io.imsave(tmp_path / "a.png", (rng.random((16, 16)) * 255).astype(np.uint8), check_contrast=False)
    write_ct_dicom(tmp_path / "b.dcm", rng.normal(40, 200, (16, 16)).round(), uid_seed="b")
    summary, rows = _run(tmp_path, [("png", "a.png"), ("ct", "b.dcm")], tiny_model(), ["npy", "dicom"])
    assert summary.exit_code == 1 and summary.failed_ids == ["png"]
    by_id = {r["image_id"]: r for r in rows}
    assert by_id["png"]["status"] == "error"
    assert "output.formats: dicom needs a DICOM source" in by_id["png"]["error"] and "PNG" in by_id["png"]["error"]
    ok = by_id["ct"]
    assert (
        ok["status"] == "ok"
        and ok["dicom_map_path"].endswith(".pm.dcm")
        and ok["dicom_overlay_path"].endswith(".sc.dcm")
    )
    pm = pydicom.dcmread(tmp_path / "run" / ok["dicom_map_path"])
    np.testing.assert_array_equal(pm.pixel_array, np.load(tmp_path / "run" / ok["npy_path"]))
    assert ok["orientation"] == "PL" and ok["source_shape"] == "16x16"


def test_a_manifest_series_column_picks_one_series_from_a_shared_folder(tmp_path):
    a = dicom_series(tmp_path / "both", 2.0 * np.ones((3, 16, 16)), series_uid="1.2.826.0.1.1")
    dicom_series(tmp_path / "other", 2.0 * np.ones((2, 16, 16)), series_uid="1.2.826.0.1.2")
    for path in (tmp_path / "other").iterdir():
        shutil.move(path, tmp_path / "both" / f"x{path.name}")
    model = tiny_model((None, 16, 16, 1))
    summary, rows = _run(
        tmp_path,
        [("a", "both", "1.2.826.0.1.1"), ("b", "both", "1.2.826.0.1.2"), ("c", "both", "")],
        model,
        ["npy"],
        columns=("image_id", "path", "series"),
        series_column="series",
    )
    by_id = {r["image_id"]: r for r in rows}
    assert by_id["a"]["source_shape"] == "3x16x16" and by_id["a"]["series_uid"] == "1.2.826.0.1.1"
    assert by_id["b"]["source_shape"] == "2x16x16"
    assert by_id["c"]["status"] == "error" and "several DICOM series" in by_id["c"]["error"]
    assert len(a) == 3


def test_pydicoms_12_bit_jpeg_lossy_file_is_explained(tmp_path):
    path = get_testdata_file("JPEG-lossy.dcm", download=False)
    if path is None:
        pytest.skip("pydicom's test files are not installed")
    shutil.copy(path, tmp_path / "lossy.dcm")
    summary, rows = _run(tmp_path, [("lossy", "lossy.dcm")], tiny_model(), ["npy", "nifti"])
    assert summary.exit_code == 0, rows[0]["error"]
    heatmap = np.load(tmp_path / "run" / rows[0]["npy_path"])
    assert heatmap.shape == (1024, 256) and heatmap.max() > 0.9
    assert nib.load(tmp_path / "run" / rows[0]["nifti_path"]).shape == (256, 1024)


def test_the_secondary_capture_is_bounded_by_output_max_size_and_the_map_is_not(tmp_path):
    source = write_ct_dicom(
        tmp_path / "ct.dcm", np.random.default_rng(0).normal(40, 200, (16, 16)).round(), uid_seed="s"
    )
    model = tiny_model()
    model.save(tmp_path / "model.keras")
    (tmp_path / "manifest.csv").write_text("image_id,path\nct,ct.dcm\n")
    config = {
        "model": {"path": str(tmp_path / "model.keras")},
        "data": {"manifest": str(tmp_path / "manifest.csv"), "id_column": "image_id"},
        "methods": ["gradient"],
        "output": {"dir": str(tmp_path / "run"), "formats": ["npy", "dicom"], "max_size": 8},
        "runtime": {"progress": False},
    }
    assert medxai.run(config, model=model).exit_code == 0
    row = read_index(tmp_path / "run" / "index.csv")[0]
    sc = pydicom.dcmread(tmp_path / "run" / row["dicom_overlay_path"])
    pm = pydicom.dcmread(tmp_path / "run" / row["dicom_map_path"])
    spacing = [float(v) for v in pydicom.dcmread(source).PixelSpacing]
    assert (sc.Rows, sc.Columns) == (8, 8) and [float(v) for v in sc.PixelSpacing] == pytest.approx(
        [2 * s for s in spacing]
    )
    assert (pm.Rows, pm.Columns) == (16, 16)  # the map itself stays exact
