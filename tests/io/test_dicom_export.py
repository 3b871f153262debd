"""DICOM export: Parametric Map and Secondary Capture read back with pydicom and highdicom."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from medxai._version import __version__
from medxai.data.study_files import write_ct_dicom, write_xray_dicom
from medxai.io import dicom_export
from medxai.io.dicom_export import DicomExportError, write_dicom_outputs

PM_STORAGE = "1.2.840.10008.5.1.4.1.1.30"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
ROWS, COLS, N = 12, 16, 4
STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.1.2"
KW = {"method": "integrated_gradients", "class_index": 1, "class_name": "pneumonia", "run_id": "feed"}


def ct_slice(path, k, *, series=SERIES, spacing=(0.8, 0.7)):
    hu = np.random.default_rng(k).normal(40, 200, (ROWS, COLS))
    return write_ct_dicom(
        path,
        hu,
        uid_seed=("slice", series, k),
        study_uid=STUDY,
        series_uid=series,
        instance_number=k,
        pixel_spacing=spacing,
    )


def maps(n=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (ROWS, COLS) if n is None else (n, ROWS, COLS)
    return rng.random(shape).astype(np.float32), rng.integers(0, 256, shape + (3,), dtype=np.uint8)


def normal(ds):
    iop = np.asarray(ds.ImageOrientationPatient, float)
    return np.cross(iop[:3], iop[3:])


@pytest.fixture
def ct2d(tmp_path):
    return ct_slice(tmp_path / "src" / "ct_001.dcm", 1)


@pytest.fixture
def oblique(tmp_path):
    """Four oblique slices (30 degrees about x), written to disk in shuffled order; sorted along row x column."""
    angle = np.deg2rad(30)
    row, col = np.array([1.0, 0, 0]), np.array([0, np.cos(angle), np.sin(angle)])
    origin = np.array([-10.0, 4.0, 7.5])
    paths = []
    for name, k in zip(["c", "a", "d", "b"], [3, 1, 4, 2]):
        path = ct_slice(tmp_path / "src" / f"{name}.dcm", k)
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [*row, *col]
        ds.ImagePositionPatient = [round(v, 4) for v in origin + 2.5 * k * np.cross(row, col)]
        ds.save_as(path)
        paths.append(path)
    return sorted(
        paths, key=lambda p: float(np.dot(normal(pydicom.dcmread(p)), pydicom.dcmread(p).ImagePositionPatient))
    )


def test_2d_parametric_map(tmp_path, ct2d):
    heat, rgb = maps()
    out = write_dicom_outputs(heat, rgb, [ct2d], tmp_path / "maps" / "ct_000_c1", **KW)
    assert out == {
        "dicom_map_path": str(tmp_path / "maps" / "ct_000_c1.pm.dcm"),
        "dicom_overlay_path": str(tmp_path / "maps" / "ct_000_c1.sc.dcm"),
    }
    src, pm = pydicom.dcmread(ct2d), pydicom.dcmread(out["dicom_map_path"])
    assert pm.SOPClassUID == PM_STORAGE and pm.file_meta.MediaStorageSOPClassUID == PM_STORAGE
    for kw in ("StudyInstanceUID", "PatientID", "PatientName", "FrameOfReferenceUID"):
        assert pm[kw].value == src[kw].value
    assert pm.SeriesInstanceUID != src.SeriesInstanceUID
    assert pm.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert pm.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    shared, frame = pm.SharedFunctionalGroupsSequence[0], pm.PerFrameFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.8, 0.7]
    assert list(shared.PlaneOrientationSequence[0].ImageOrientationPatient) == list(src.ImageOrientationPatient)
    # highdicom rewrites DS values in at most 16 characters, so compare numbers.
    assert np.allclose(frame.PlanePositionSequence[0].ImagePositionPatient, src.ImagePositionPatient, atol=1e-9)
    assert pm.BitsAllocated == 32 and "FloatPixelData" in pm
    assert np.array_equal(np.frombuffer(pm.FloatPixelData, "<f4").reshape(ROWS, COLS), heat)
    assert np.array_equal(pm.pixel_array, heat)
    rwvm = shared.RealWorldValueMappingSequence[0]
    assert (rwvm.DoubleFloatRealWorldValueFirstValueMapped, rwvm.DoubleFloatRealWorldValueLastValueMapped) == (0, 1)
    assert (rwvm.RealWorldValueSlope, rwvm.RealWorldValueIntercept) == (1, 0)
    unit = rwvm.MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("1", "UCUM")
    assert rwvm.LUTLabel == "integrated_gr c1" and "pneumonia" in rwvm.LUTExplanation
    voi = shared.FrameVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (0.5, 1.0)
    assert pm.SeriesDescription == "medxai integrated_gradients c1 pneumonia map"
    assert 9000 <= pm.SeriesNumber < 10000 and pm.InstanceNumber == src.InstanceNumber
    assert (pm.Manufacturer, pm.ManufacturerModelName, pm.SoftwareVersions) == ("medxai", "medxai", __version__)
    assert pm.ImageType[0] == "DERIVED" and pm.RecognizableVisualFeatures == "NO"
    assert str(pm.ContentCreatorName).startswith("medxai") and pm.ContentLabel
    assert "not for diagnosis" in pm.DerivationDescription and "class c1" in pm.DerivationDescription
    read = hd.pm.ParametricMap.from_file(out["dicom_map_path"])
    assert read.get_source_image_uids() == [(src.StudyInstanceUID, src.SeriesInstanceUID, src.SOPInstanceUID)]


def test_2d_secondary_capture(tmp_path, ct2d):
    heat, rgb = maps()
    out = write_dicom_outputs(heat, rgb, [ct2d], tmp_path / "m", **KW)
    src, sc = pydicom.dcmread(ct2d), pydicom.dcmread(out["dicom_overlay_path"])
    pm = pydicom.dcmread(out["dicom_map_path"])
    assert sc.SOPClassUID == SC_STORAGE and sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
    assert np.array_equal(sc.pixel_array, rgb)
    assert (sc.StudyInstanceUID, sc.PatientID, sc.PatientName) == (src.StudyInstanceUID, src.PatientID, src.PatientName)
    assert sc.SeriesInstanceUID not in (src.SeriesInstanceUID, pm.SeriesInstanceUID)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert sc.SourceImageSequence[0].ReferencedSOPClassUID == src.SOPClassUID
    assert sc.BurnedInAnnotation == "NO" and list(sc.PatientOrientation) == ["L", "P"]
    assert [float(v) for v in sc.PixelSpacing] == [0.8, 0.7]
    assert sc.SeriesDescription.endswith("overlay") and "not for diagnosis" in sc.DerivationDescription
    assert sc.SeriesNumber == pm.SeriesNumber + 1


def test_long_names_fit_their_value_representations(tmp_path, ct2d):
    heat, rgb = maps()
    out = write_dicom_outputs(
        heat, rgb, [ct2d], tmp_path / "m", method="m" * 80 + "\\x", class_index=12, class_name="n" * 80
    )
    pm = pydicom.dcmread(out["dicom_map_path"])
    label = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0].LUTLabel
    assert len(label) <= 16 and label.endswith(" c12")
    assert len(pm.SeriesDescription) <= 64 and pm.SeriesDescription.endswith(" map")
    assert len(pm.ContentDescription) <= 64 and "\\" not in pm.ContentDescription


@pytest.mark.parametrize("direction", [1, -1])
def test_oblique_volume_frames_keep_their_sources(tmp_path, oblique, direction):
    sources = oblique[::direction]
    heat, rgb = maps(N)
    out = write_dicom_outputs(heat, rgb, sources, tmp_path / "vol", **KW)
    src = [pydicom.dcmread(p) for p in sources]
    pm = pydicom.dcmread(out["dicom_map_path"])
    assert pm.NumberOfFrames == N and pm.pixel_array.shape == (N, ROWS, COLS)
    uids = [ds.SOPInstanceUID for ds in src]
    order = []
    for j, item in enumerate(pm.PerFrameFunctionalGroupsSequence):
        k = uids.index(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        order.append(k)
        assert np.allclose(item.PlanePositionSequence[0].ImagePositionPatient, src[k].ImagePositionPatient, atol=1e-9)
        assert np.array_equal(pm.pixel_array[j], heat[k])
    # highdicom stores frames sorted along column x row, i.e. against the row x column normal.
    assert order == ([3, 2, 1, 0] if direction == 1 else [0, 1, 2, 3])
    read = hd.pm.ParametricMap.from_file(out["dicom_map_path"])
    assert np.array_equal(read.get_pixels_by_source_instance(uids, dtype=np.float32), heat)
    iop = pm.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    assert np.allclose([float(v) for v in iop], [float(v) for v in src[0].ImageOrientationPatient])

    folder = tmp_path / "vol.sc"
    assert out["dicom_overlay_path"] == str(folder)
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["0001.dcm", "0002.dcm", "0003.dcm", "0004.dcm"]
    scs = [pydicom.dcmread(f) for f in files]
    assert len({sc.SeriesInstanceUID for sc in scs}) == 1 and len({sc.SOPInstanceUID for sc in scs}) == N
    for k, sc in enumerate(scs):
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == uids[k]
        assert sc.InstanceNumber == src[k].InstanceNumber
        assert np.array_equal(sc.pixel_array, rgb[k])


def test_multiframe_source(tmp_path):
    slices = [pydicom.dcmread(ct_slice(tmp_path / "src" / f"{k}.dcm", k)) for k in range(1, N + 1)]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(slices, SERIES + ".9", 3, SERIES + ".9.1", 1)
    enhanced.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)
    heat, rgb = maps(N)
    out = write_dicom_outputs(heat, rgb, [tmp_path / "enhanced.dcm"], tmp_path / "mf", **KW)
    pm = pydicom.dcmread(out["dicom_map_path"])
    assert pm.NumberOfFrames == N
    for j, item in enumerate(pm.PerFrameFunctionalGroupsSequence):
        number = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber
        assert np.array_equal(pm.pixel_array[j], heat[number - 1])
    scs = [pydicom.dcmread(f) for f in sorted((tmp_path / "mf.sc").iterdir())]
    assert [sc.SourceImageSequence[0].ReferencedFrameNumber for sc in scs] == [1, 2, 3, 4]
    assert all(sc.SourceImageSequence[0].ReferencedSOPInstanceUID == SERIES + ".9.1" for sc in scs)


def test_radiograph_without_geometry_gets_overlay_only(tmp_path):
    path = write_xray_dicom(tmp_path / "cr.dcm", np.random.default_rng(0).random((ROWS, COLS)), uid_seed="cr")
    heat, rgb = maps()
    out = write_dicom_outputs(heat, rgb, [path], tmp_path / "cr_c0", method="saliency", class_index=0)
    assert out == {"dicom_overlay_path": str(tmp_path / "cr_c0.sc.dcm")}
    assert not (tmp_path / "cr_c0.pm.dcm").exists()
    sc = pydicom.dcmread(out["dicom_overlay_path"])
    assert list(sc.PatientOrientation) == ["L", "F"] and np.array_equal(sc.pixel_array, rgb)


def test_uids_are_deterministic(tmp_path, oblique):
    heat, rgb = maps()

    def uids(path, **changes):
        out = write_dicom_outputs(heat, rgb, [path], tmp_path / "o", **{**KW, **changes})
        return [(ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in map(pydicom.dcmread, out.values())]

    first = uids(oblique[0])
    assert uids(oblique[0]) == first
    other_run = uids(oblique[0], run_id="beef")
    assert all(a[0] != b[0] and a[1] != b[1] for a, b in zip(first, other_run))
    other_slice = uids(oblique[1])
    assert all(a[0] == b[0] and a[1] != b[1] for a, b in zip(first, other_slice))
    other_class = uids(oblique[0], class_index=0)
    assert all(a[0] != b[0] for a, b in zip(first, other_class))
    out = write_dicom_outputs(heat[np.newaxis], rgb[np.newaxis], [oblique[0]], tmp_path / "v", **KW)
    volume = [pydicom.dcmread(out["dicom_map_path"]), pydicom.dcmread(tmp_path / "v.sc" / "0001.dcm")]
    assert all(a[0] == ds.SeriesInstanceUID and a[1] != ds.SOPInstanceUID for a, ds in zip(first, volume))


def test_errors_name_the_problem(tmp_path, oblique):
    heat, rgb = maps(N)
    with pytest.raises(DicomExportError, match=r"heatmap shape \(3, 12, 16\).*\(4, 12, 16\)"):
        write_dicom_outputs(heat[:3], rgb[:3], oblique, tmp_path / "x", **KW)
    with pytest.raises(DicomExportError, match=r"heatmap shape \(12, 15\)"):
        write_dicom_outputs(heat[0, :, :15], rgb[0, :, :15], oblique[:1], tmp_path / "x", **KW)
    nan = heat.copy()
    nan[1, 2, 3] = np.nan
    with pytest.raises(DicomExportError, match="1 NaN/inf"):
        write_dicom_outputs(nan, rgb, oblique, tmp_path / "x", **KW)
    with pytest.raises(DicomExportError, match=r"in \[0, 1\]"):
        write_dicom_outputs(heat * 2, rgb, oblique, tmp_path / "x", **KW)
    with pytest.raises(DicomExportError, match="overlay_rgb must be uint8"):
        write_dicom_outputs(heat, rgb.astype(np.float32), oblique, tmp_path / "x", **KW)
    png, txt = tmp_path / "img.png", tmp_path / "notes.dcm"
    Image.fromarray(rgb[0]).save(png)
    txt.write_text("this is not a DICOM file")
    for bad in (png, txt):
        with pytest.raises(DicomExportError, match=f"{bad.name} is not a readable DICOM file") as info:
            write_dicom_outputs(heat[0], rgb[0], [bad], tmp_path / "x", **KW)
        assert info.value.path == str(bad)
    stranger = ct_slice(tmp_path / "other" / "ct.dcm", 9, series=SERIES + ".7")
    with pytest.raises(DicomExportError, match=r"sources disagree on SeriesInstanceUID.*other[/\\]ct.dcm"):
        write_dicom_outputs(heat[:2], rgb[:2], [oblique[0], stranger], tmp_path / "x", **KW)
    with pytest.raises(DicomExportError, match="highdicom cannot build a Parametric Map.*duplicates"):
        write_dicom_outputs(heat[:2], rgb[:2], [oblique[0], oblique[0]], tmp_path / "x", **KW)
    ds = pydicom.dcmread(oblique[0])
    del ds.PixelSpacing
    ds.save_as(tmp_path / "nospacing.dcm")
    with pytest.raises(DicomExportError, match="nospacing.dcm lacks PixelSpacing"):
        write_dicom_outputs(heat[0], rgb[0], [tmp_path / "nospacing.dcm"], tmp_path / "x", **KW)
    assert not list(tmp_path.glob("x*"))


def test_dcmdump_parses_the_outputs(tmp_path, oblique):
    if shutil.which("dcmdump") is None:
        pytest.skip("dcmdump (DCMTK) is not installed")
    heat, rgb = maps(N)
    out = write_dicom_outputs(heat, rgb, oblique, tmp_path / "vol", **KW)
    for path in [out["dicom_map_path"], *sorted(map(str, (tmp_path / "vol.sc").iterdir()))]:
        done = subprocess.run(["dcmdump", "-q", path], capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "E:" not in done.stderr, done.stderr
        assert "SOPInstanceUID" in done.stdout


def test_dciodvfy_finds_no_iod_errors(tmp_path, oblique):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    heat, rgb = maps()
    out = write_dicom_outputs(heat, rgb, oblique[:1], tmp_path / "m", **KW)
    for path in out.values():
        done = subprocess.run(["dciodvfy", "-new", path], capture_output=True, text=True, check=False)
        assert "Error" not in done.stdout + done.stderr, done.stdout + done.stderr


def _enhanced_ct(path, slices, laterality=None):
    """A legacy-converted enhanced CT of ``slices`` (pydicom data sets); ``laterality`` goes in its Frame Anatomy."""
    first = slices[0]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        slices, first.SeriesInstanceUID + ".9", 3, first.SeriesInstanceUID + ".9.1", 1
    )
    if laterality is not None:
        region = Dataset()
        region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-D3000", "SRT", "Chest"
        anatomy = Dataset()
        anatomy.AnatomicRegionSequence = [region]
        anatomy.FrameLaterality = laterality
        enhanced.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = [anatomy]
    enhanced.save_as(path, enforce_file_format=True)
    return path


def _imager_only_cr(path, shape=(ROWS, COLS)):
    """A CR with ImagerPixelSpacing (0.7, 0.4) and no PixelSpacing, as most radiographs."""
    write_xray_dicom(path, np.random.default_rng(0).random(shape), uid_seed="cr", pixel_spacing=(0.7, 0.4))
    ds = pydicom.dcmread(path)
    del ds.PixelSpacing
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, None),  # CHEST is not paired: Laterality stays absent
        ({"Laterality": ""}, ""),  # the source's own value, even empty
        ({"Laterality": "R"}, "R"),
        ({"BodyPartExamined": None}, ""),  # body part unknown, so maybe paired: laterality unknown
        ({"ImageLaterality": "L"}, "L"),
        ({"ImageLaterality": "B"}, ""),  # both sides: Laterality holds R or L only
        ({"ImageLaterality": "U", "BodyPartExamined": None}, None),  # unpaired
    ],
)
def test_laterality_of_both_exports_follows_the_source(tmp_path, ct2d, change, expected):
    ds = pydicom.dcmread(ct2d)
    for keyword, value in change.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(ct2d)
    heat, rgb = maps()
    out = write_dicom_outputs(heat, rgb, [ct2d], tmp_path / "m", **KW)
    for path in out.values():
        assert pydicom.dcmread(path).get("Laterality") == expected, path


def test_an_enhanced_sources_frame_laterality_becomes_the_exports_laterality(tmp_path):
    slices = [pydicom.dcmread(ct_slice(tmp_path / "src" / f"{k}.dcm", k)) for k in range(1, N + 1)]
    source = _enhanced_ct(tmp_path / "enhanced.dcm", slices, laterality="R")
    heat, rgb = maps(N)
    out = write_dicom_outputs(heat, rgb, [source], tmp_path / "mf", **KW)
    assert pydicom.dcmread(out["dicom_map_path"]).Laterality == "R"
    assert [pydicom.dcmread(f).Laterality for f in sorted((tmp_path / "mf.sc").iterdir())] == ["R"] * N


def test_a_radiographs_imager_pixel_spacing_is_the_overlays_pixel_spacing(tmp_path):
    path = _imager_only_cr(tmp_path / "cr.dcm")
    heat, rgb = maps()
    out = write_dicom_outputs(heat, rgb, [path], tmp_path / "full", **KW)
    assert [float(v) for v in pydicom.dcmread(out["dicom_overlay_path"]).PixelSpacing] == pytest.approx([0.7, 0.4])
    out = write_dicom_outputs(heat, rgb[::2, ::2], [path], tmp_path / "half", **KW)  # a picture bounded in size
    assert [float(v) for v in pydicom.dcmread(out["dicom_overlay_path"]).PixelSpacing] == pytest.approx([1.4, 0.8])


def _dciodvfy_errors(path) -> set[str]:
    """dciodvfy's errors about ``path``, each cut to the attribute's name and the complaint.

    The same problem sits at another path in a source and in its exports
    (e.g. in a functional group), so the nesting and the module are left out.
    """
    done = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True, check=False)
    errors = set()
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("Error"):
            line = re.sub(r"</(?:[^>]*/)?([^/>]+?)(?:\[\d+\])?>", r"\1", line)
            errors.add(re.sub(r" - Module=<\w+>$", "", line))
    return errors


def _pydicom_sources(tmp_path) -> dict[str, object]:
    """A handful of sources, by name: pydicom's own and two made here.

    CT_small and MR_small (Laterality empty), an MR of the abdomen (not paired),
    an ultrasound without geometry or body part, two frames in a
    single-frame SOP class (Secondary Capture), an enhanced CT made of
    CT_small with a Frame Laterality, and a CR with ImagerPixelSpacing only.
    """
    names = ["CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm", "examples_rgb_color.dcm", "SC_rgb_rle_2frame.dcm"]
    sources = {name: get_testdata_file(name, download=False) for name in names}
    if not all(sources.values()):
        pytest.skip("pydicom's test files are not installed")
    slices = []
    for k in range(3):
        ds = pydicom.dcmread(sources["CT_small.dcm"])
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{k}"
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 5 * k]
        slices.append(ds)
    sources["enhanced"] = _enhanced_ct(tmp_path / "enhanced.dcm", slices, laterality="L")
    sources["cr"] = _imager_only_cr(tmp_path / "cr.dcm")
    return sources


def test_exports_of_pydicoms_files_have_no_dciodvfy_error_their_source_has_not(tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    for name, source in _pydicom_sources(tmp_path).items():
        ds = pydicom.dcmread(source, stop_before_pixels=True)
        frames = int(ds.get("NumberOfFrames") or 1)
        shape = (frames, ds.Rows, ds.Columns) if frames > 1 else (ds.Rows, ds.Columns)
        heat = np.random.default_rng(0).random(shape).astype(np.float32)
        out = write_dicom_outputs(heat, np.zeros((*shape, 3), np.uint8), [source], tmp_path / "out" / name, **KW)
        exports = [p for path in map(Path, out.values()) for p in (sorted(path.iterdir()) if path.is_dir() else [path])]
        assert len(exports) == (1 if "dicom_map_path" in out else 0) + frames, name
        allowed = _dciodvfy_errors(source)
        for path in exports:
            assert _dciodvfy_errors(path) <= allowed, (name, path.name)


def test_a_failure_leaves_earlier_files_whole(tmp_path, ct2d, oblique, monkeypatch):
    heat, rgb = maps()
    stem = tmp_path / "m"
    write_dicom_outputs(heat, rgb, [ct2d], stem, **KW)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dicom_export.hd.sc.SCImage, "from_ref_dataset", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_dicom_outputs(1 - heat, rgb, [ct2d], stem, **KW)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_dicom_outputs(heat, rgb, [ct2d], tmp_path / "fresh", **KW)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not list(tmp_path.glob("fresh*")) and not list(tmp_path.glob(".*"))
    monkeypatch.undo()

    stale = tmp_path / "vol.sc" / "0009.dcm"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    heat3, rgb3 = maps(N)
    write_dicom_outputs(heat3, rgb3, oblique, tmp_path / "vol", **KW)
    assert sorted(p.name for p in stale.parent.iterdir()) == ["0001.dcm", "0002.dcm", "0003.dcm", "0004.dcm"]
    assert not list(tmp_path.glob(".*"))
