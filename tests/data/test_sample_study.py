"""The synthetic study generator: determinism, DICOM tags, HU round trip, masks."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID, ExplicitVRLittleEndian
from scipy import ndimage as ndi

from medxai.data import study_files, synthetic
from medxai.data.study_files import study_items, write_ct_dicom, write_study, write_xray_dicom
from medxai.data.synthetic import ct_slice, make_dataset, radiograph

N_CT, N_XRAY = 24, 12
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("study"), seed=0, n_ct=N_CT, n_xray=N_XRAY)


@pytest.fixture(scope="module")
def items() -> list[study_files.StudyItem]:
    return study_items(seed=0, n_ct=N_CT, n_xray=N_XRAY)


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _read_mask(path: Path) -> np.ndarray:
    arr = np.asarray(Image.open(path))
    assert arr.dtype == np.uint8 and arr.ndim == 2
    assert set(np.unique(arr)) <= {0, 255}
    return arr == 255


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files(study, tmp_path):
    again = write_study(tmp_path, seed=0, n_ct=N_CT, n_xray=N_XRAY)
    first, second = _files(study.parent), _files(again.parent)
    assert first.keys() == second.keys()
    assert all(first[name] == second[name] for name in first)


def test_generators_are_deterministic_and_seed_dependent():
    for draw in (ct_slice, radiograph):
        a_img, a_mask = draw(np.random.default_rng(7), lesion=True)
        b_img, b_mask = draw(np.random.default_rng(7), lesion=True)
        c_img, c_mask = draw(np.random.default_rng(8), lesion=True)
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_mask, b_mask)
        assert not np.array_equal(a_img, c_img)
        assert not np.array_equal(a_mask, c_mask)


def test_different_seed_gives_a_different_study(study, tmp_path):
    other = write_study(tmp_path, seed=1, n_ct=2, n_xray=2)
    a = pydicom.dcmread(study.parent / "ct" / "ct_000.dcm")
    b = pydicom.dcmread(other.parent / "ct" / "ct_000.dcm")
    assert not np.array_equal(a.pixel_array, b.pixel_array)
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID


# --------------------------------------------------------------------------
# manifest and labels
# --------------------------------------------------------------------------
def test_manifest_columns_labels_and_paths(study):
    with study.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == ["image_id", "path", "label", "mask"]
    rows = _rows(study)
    assert len(rows) == N_CT + N_XRAY
    assert len({r["image_id"] for r in rows}) == len(rows)
    labels = {kind: [int(r["label"]) for r in rows if r["image_id"].startswith(kind)] for kind in ("ct", "xr")}
    assert sum(labels["ct"]) == N_CT // 2 and sum(labels["xr"]) == N_XRAY // 2
    assert set(labels["ct"] + labels["xr"]) == {0, 1}
    for r in rows:
        for col in ("path", "mask"):
            assert not Path(r[col]).is_absolute()
            assert (study.parent / r[col]).is_file()


def test_study_is_small(study):
    total = sum(p.stat().st_size for p in study.parent.rglob("*") if p.is_file())
    assert total < 3 * 2**20


def test_masks_non_empty_exactly_for_positives(study, items):
    for r, item in zip(_rows(study), items):
        mask = _read_mask(study.parent / r["mask"])
        assert mask.any() == (r["label"] == "1")
        np.testing.assert_array_equal(mask, item.mask)
        assert mask.shape == item.image.shape == (128, 128)


# --------------------------------------------------------------------------
# CT files
# --------------------------------------------------------------------------
def test_ct_dicom_tags(study):
    rows = [r for r in _rows(study) if r["path"].startswith("ct/")]
    assert len(rows) == N_CT
    datasets = [pydicom.dcmread(study.parent / r["path"]) for r in rows]
    for ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.Modality == "CT"
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == -1024.0
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == synthetic.CT_WINDOW
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 1)
        assert (ds.Rows, ds.Columns) == (128, 128) and len(ds.PixelSpacing) == 2
        assert ds.pixel_array.dtype == np.int16
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
            assert UID(uid).is_valid
    assert len({ds.SOPInstanceUID for ds in datasets}) == N_CT
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1


def test_ct_hu_after_modality_lut_match_the_generated_array(study, items):
    for item in items[:N_CT]:
        ds = pydicom.dcmread(study.parent / item.path)
        np.testing.assert_array_equal(apply_modality_lut(ds.pixel_array, ds), item.image)


def test_write_ct_dicom_round_trip(tmp_path):
    hu, _ = ct_slice(np.random.default_rng(3), lesion=True)
    path = write_ct_dicom(tmp_path / "a" / "slice.dcm", hu, uid_seed="x")
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(apply_modality_lut(ds.pixel_array, ds), hu)
    # The UIDs depend on uid_seed only.
    again = pydicom.dcmread(write_ct_dicom(tmp_path / "b.dcm", hu, uid_seed="x"))
    other = pydicom.dcmread(write_ct_dicom(tmp_path / "c.dcm", hu, uid_seed="y"))
    assert ds.SOPInstanceUID == again.SOPInstanceUID != other.SOPInstanceUID


def test_ct_anatomy_and_lesions(items):
    for item in items[:N_CT]:
        hu, mask = item.image, item.mask
        assert hu.dtype == np.float32 and np.all(hu == np.rint(hu))
        assert -1024 <= hu.min() and hu.max() <= 3071
        assert np.median(hu[:4, :4]) < -950  # air in the corner
        assert hu.max() > 500  # bone
        body = ndi.binary_fill_holes(hu > -500)
        assert np.all(body[mask])
        if item.label:
            # Lesion brighter than the ring around it, whatever its tissue.
            ring = ndi.binary_dilation(mask, iterations=4) & ~ndi.binary_dilation(mask, iterations=1)
            assert hu[mask].mean() - hu[ring].mean() > 30
            assert 10 <= mask.sum() <= 700  # radius 4..12 px, slightly lobulated


# --------------------------------------------------------------------------
# radiographs
# --------------------------------------------------------------------------
def test_radiograph_files(study, items):
    xr = items[N_CT:]
    dicoms = [item for item in xr if item.path.endswith(".dcm")]
    assert dicoms and {item.label for item in dicoms} == {0, 1}
    for item in xr:
        if item.path.endswith(".dcm"):
            ds = pydicom.dcmread(study.parent / item.path)
            assert ds.PhotometricInterpretation == "MONOCHROME1"
            assert ds.Modality in ("CR", "DX")
            assert (ds.BitsStored, ds.PixelRepresentation) == (12, 0)
            stored = ds.pixel_array.astype(np.float64)
            # MONOCHROME1: bright (dense) = low stored value.
            np.testing.assert_allclose(1.0 - stored / 4095.0, item.image, atol=0.5 / 4095 + 1e-7)
        else:
            png = np.asarray(Image.open(study.parent / item.path))
            assert png.dtype == np.uint8 and png.ndim == 2
            np.testing.assert_allclose(png / 255.0, item.image, atol=0.5 / 255 + 1e-7)


def test_write_xray_dicom_monochrome2(tmp_path):
    img, _ = radiograph(np.random.default_rng(2), lesion=False)
    ds = pydicom.dcmread(write_xray_dicom(tmp_path / "x.dcm", img, monochrome1=False))
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    np.testing.assert_allclose(ds.pixel_array / 4095.0, img, atol=0.5 / 4095 + 1e-7)


def test_radiograph_anatomy_and_lesions(items):
    for item in items[N_CT:]:
        img, mask = item.image, item.mask
        assert img.dtype == np.float32 and 0.0 <= img.min() and img.max() <= 1.0
        body = ndi.binary_fill_holes(ndi.gaussian_filter(img, 2.0) > 0.11)
        assert np.all(body[mask])
        if item.label:
            ring = ndi.binary_dilation(mask, iterations=4) & ~ndi.binary_dilation(mask, iterations=1)
            assert img[mask].mean() - img[ring].mean() > 0.03


def test_lesions_vary_in_size_and_place(items):
    positives = [item.mask for item in items[:N_CT] if item.label]
    sizes = [m.sum() for m in positives]
    centres = np.array([ndi.center_of_mass(m) for m in positives])
    assert max(sizes) > 3 * min(sizes)
    assert centres.std(axis=0).min() > 5


# --------------------------------------------------------------------------
# training data and the script
# --------------------------------------------------------------------------
def test_make_dataset(items):
    x, m, y = make_dataset(6, seed=0, kind="ct")
    assert x.shape == m.shape == (6, 128, 128) and x.dtype == np.float32 and m.dtype == bool
    assert y.tolist().count(1) == 3
    assert [bool(mm.any()) for mm in m] == [bool(v) for v in y]
    x2, m2, y2 = make_dataset(6, seed=0, kind="ct")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    # A training set built with the study's seed never contains the study's images.
    assert not any(np.array_equal(xi, item.image) for xi in x for item in items[:N_CT])
    xr, _, yr = make_dataset(3, seed=5, kind="xray", size=96, positive_fraction=1.0)
    assert xr.shape == (3, 96, 96) and yr.tolist() == [1, 1, 1]
    with pytest.raises(ValueError):
        make_dataset(2, seed=0, kind="mri")


def test_script_runs_importably(tmp_path):
    spec = importlib.util.spec_from_file_location("make_study", REPO / "data_samples" / "make_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manifest = module.main(["--out", str(tmp_path), "--seed", "3", "--n-ct", "2", "--n-xray", "1"])
    assert [r["image_id"] for r in _rows(manifest)] == ["ct_000", "ct_001", "xr_000"]
    assert (tmp_path / "xray" / "xr_000.dcm").is_file()
