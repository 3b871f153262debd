"""The ``mask`` output format: an explained region as NIfTI and DICOM Segmentation, and its outline in overlays."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from medxai._version import __version__
from medxai.data.study_files import write_ct_dicom, write_xray_dicom
from medxai.io import read_image
from medxai.io.formats import MapToWrite, output_formats
from medxai.io.index import index_columns
from medxai.io.nifti import write_nifti
from medxai.viz.render import REGION_COLOR, colour_bar_width, montage, outline

ROWS, COLS, N = 12, 16, 4
STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.1.2"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def write(fmt: str, map_: MapToWrite) -> dict[str, str]:
    return output_formats()[fmt].write(map_)


def ct_slice(path, k):
    hu = np.random.default_rng(k).normal(40, 200, (ROWS, COLS))
    return write_ct_dicom(
        path, hu, uid_seed=("slice", k), study_uid=STUDY, series_uid=SERIES, instance_number=k, pixel_spacing=(0.8, 0.7)
    )


def box(shape, *where):
    mask = np.zeros(shape, bool)
    for index in where:
        mask[index] = True
    return mask


def to_write(image, folder, region, *, method="ig", channel=1, tag="c1_predicted", **extra) -> MapToWrite:
    """A map of ``image`` (read by medxai) as the pipeline hands it to the writers, with ``region``."""
    shape = image.spatial_shape
    heat = np.random.default_rng(0).random(shape).astype(np.float32)
    return MapToWrite(
        heat, folder, Path("maps") / method / f"img_c{channel}", method, channel,
        display=np.clip(image.array / max(float(image.array.max()), 1.0), 0, 1), affine=image.affine,
        nifti_shape=image.meta.get("shape_xyz") if image.kind == "nifti" else None,
        nifti_xforms=image.meta.get("nifti_xforms") if image.kind == "nifti" else None,
        source_files=list(image.meta.get("source_files", [])), run_id="feed", region=region,
        region_stem=None if region is None else Path("regions") / f"img_{tag}", **extra,
    )  # fmt: skip


def same_geometry_as_map(map_: MapToWrite, mask_path: Path, mask: np.ndarray) -> None:
    """The mask NIfTI holds ``mask`` as uint8 0/1 and lies exactly where the map's NIfTI lies."""
    map_path = map_.folder / write("nifti", map_)["nifti_path"]
    heat, region = nib.load(map_path), nib.load(mask_path)
    assert region.get_data_dtype() == np.uint8 and region.shape == heat.shape
    data = np.asarray(region.dataobj)
    assert data.dtype == np.uint8 and set(np.unique(data)) <= {0, 1}
    assert np.array_equal(data.reshape(data.shape[: mask.ndim]).T, mask)
    assert np.array_equal(region.affine, heat.affine)
    for get in ("get_sform", "get_qform"):
        assert np.array_equal(getattr(region.header, get)(coded=True)[1], getattr(heat.header, get)(coded=True)[1])
        assert np.allclose(getattr(region.header, get)(), getattr(heat.header, get)())
    assert region.header.get_zooms() == heat.header.get_zooms()
    assert region.header.get_xyzt_units()[0] == heat.header.get_xyzt_units()[0]
    try:
        import SimpleITK as sitk
    except ImportError:
        return
    a, b = sitk.ReadImage(str(map_path)), sitk.ReadImage(str(mask_path))
    assert a.GetSize() == b.GetSize()
    assert np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetSpacing(), b.GetSpacing())
    assert np.allclose(a.GetDirection(), b.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(b).reshape(mask.shape), mask)


def read_seg(path: Path, sources: list[str], mask: np.ndarray) -> hd.seg.Segmentation:
    """The SEG at ``path``, checked: one BINARY segment whose pixels per source instance are ``mask``."""
    seg = hd.seg.segread(path)
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in sources]
    assert seg.SOPClassUID == SEG_STORAGE and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == src[0].StudyInstanceUID and seg.PatientID == src[0].PatientID
    assert seg.SeriesInstanceUID != src[0].SeriesInstanceUID
    assert (seg.Manufacturer, seg.SoftwareVersions) == ("medxai", __version__)
    assert seg.get_segment_numbers() == [1]
    uids = [ds.SOPInstanceUID for ds in src]
    assert sorted(seg.get_source_image_uids()) == sorted((STUDY, SERIES, uid) for uid in uids)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == SERIES
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=[1])[..., 0]
    assert np.array_equal(pixels.astype(bool), mask.reshape(len(uids), ROWS, COLS))
    return seg


def dciodvfy_errors(path) -> str:
    done = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True, check=False)
    return "\n".join(line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error"))


@pytest.fixture
def ct2d(tmp_path):
    return read_image(ct_slice(tmp_path / "src" / "ct_001.dcm", 1))


@pytest.fixture
def series(tmp_path):
    for k in range(1, N + 1):
        ct_slice(tmp_path / "series" / f"{k:03d}.dcm", k)
    return read_image(tmp_path / "series")


def test_a_2d_dicom_region_as_nifti_and_seg(tmp_path, ct2d):
    mask = box((ROWS, COLS), np.s_[3:7, 4:11])
    map_ = to_write(ct2d, tmp_path / "run", mask)
    out = write("mask", map_)
    assert out == {
        "mask_nifti_path": "regions/img_c1_predicted.nii.gz",
        "mask_seg_path": "regions/img_c1_predicted.seg.dcm",
    }
    same_geometry_as_map(map_, map_.folder / out["mask_nifti_path"], mask)
    seg = read_seg(map_.folder / out["mask_seg_path"], map_.source_files, mask)
    src = pydicom.dcmread(map_.source_files[0])
    assert seg.FrameOfReferenceUID == src.FrameOfReferenceUID and seg.NumberOfFrames == 1
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "medxai region: channel 1 img_c1_predicted"
    assert segment.SegmentAlgorithmType == "AUTOMATIC" and segment.SegmentAlgorithmName == "medxai"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Region in Space"
    frame = seg.PerFrameFunctionalGroupsSequence[0]
    assert np.allclose(frame.PlanePositionSequence[0].ImagePositionPatient, src.ImagePositionPatient)
    assert 9000 <= seg.SeriesNumber < 10000 and seg.SeriesNumber % 10 == 2
    assert seg.BodyPartExamined == "CHEST"
    if shutil.which("dciodvfy") is not None:
        assert not dciodvfy_errors(map_.folder / out["mask_seg_path"])


def test_a_dicom_series_region_pairs_slices_with_the_source_files(tmp_path, series):
    mask = box((N, ROWS, COLS), np.s_[0, 2:5, 3:9], np.s_[2, 5:10, 1:4])  # slices 1 and 3 empty
    map_ = to_write(series, tmp_path / "run", mask, channel=2, tag="c2_connected1")
    assert len(map_.source_files) == N
    out = write("mask", map_)
    same_geometry_as_map(map_, map_.folder / out["mask_nifti_path"], mask)
    seg = read_seg(map_.folder / out["mask_seg_path"], map_.source_files, mask)
    assert seg.NumberOfFrames == N  # empty frames kept: the SEG covers the map's grid
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in map_.source_files}
    for item in seg.PerFrameFunctionalGroupsSequence:
        source = by_uid[item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert np.allclose(item.PlanePositionSequence[0].ImagePositionPatient, source.ImagePositionPatient)
    if shutil.which("dciodvfy") is not None:
        assert not dciodvfy_errors(map_.folder / out["mask_seg_path"])


def test_a_multiframe_sources_frames_are_its_frames(tmp_path):
    slices = [pydicom.dcmread(ct_slice(tmp_path / "src" / f"{k}.dcm", k)) for k in range(1, N + 1)]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(slices, SERIES + ".9", 3, SERIES + ".9.1", 1)
    enhanced.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)
    mask = box((N, ROWS, COLS), np.s_[1, 2:5, 3:9], np.s_[3, 5:10, 1:4])
    map_ = to_write(read_image(tmp_path / "enhanced.dcm"), tmp_path / "run", mask)
    seg = hd.seg.segread(map_.folder / write("mask", map_)["mask_seg_path"])
    pixels = seg.get_pixels_by_source_frame(SERIES + ".9.1", list(range(1, N + 1)), segment_numbers=[1])
    assert np.array_equal(pixels[..., 0].astype(bool), mask)


def test_a_3d_nifti_region_keeps_the_sources_own_xforms(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.random((COLS, ROWS, N, 1)).astype(np.float32)  # (X, Y, Z, 1), as some tools write it
    sform = np.array([[-0.7, 0.1, 0, 20], [0, 0.8, 0.2, -30], [0, 0, 2.5, 12], [0, 0, 0, 1]])
    image = nib.Nifti1Image(data, sform)
    image.set_sform(sform, code=2)
    image.set_qform(np.diag([0.7, 0.8, 2.5, 1.0]), code=1)  # disagrees with the sform, as after a registration
    image.header.set_xyzt_units(xyz="mm")
    nib.save(image, tmp_path / "ct.nii.gz")
    source = read_image(tmp_path / "ct.nii.gz")
    mask = box(source.spatial_shape, np.s_[1, 2:6, 3:12], np.s_[2, 4:9, 5:7])
    map_ = to_write(source, tmp_path / "run", mask)
    out = write("mask", map_)
    assert out == {"mask_nifti_path": "regions/img_c1_predicted.nii.gz"}  # no DICOM source, no SEG
    written = map_.folder / out["mask_nifti_path"]
    same_geometry_as_map(map_, written, mask)
    header = nib.load(written).header
    assert nib.load(written).shape == (COLS, ROWS, N, 1)
    assert (int(header["sform_code"]), int(header["qform_code"])) == (2, 1)
    assert np.allclose(header.get_sform(), sform) and np.allclose(header.get_qform(), image.header.get_qform())
    assert header["descrip"].tobytes().rstrip(b"\0") == b"medxai explained region"
    assert not (map_.folder / "regions" / "img_c1_predicted.seg.dcm").exists()


def test_a_radiograph_gets_a_seg_without_a_frame_of_reference(tmp_path):
    path = write_xray_dicom(tmp_path / "cr.dcm", np.random.default_rng(0).random((ROWS, COLS)), uid_seed="cr")
    mask = box((ROWS, COLS), np.s_[2:9, 2:9])
    map_ = to_write(read_image(path), tmp_path / "run", mask)
    out = write("mask", map_)
    seg = hd.seg.segread(map_.folder / out["mask_seg_path"])
    uid = pydicom.dcmread(path).SOPInstanceUID
    assert np.array_equal(seg.get_pixels_by_source_instance([uid], segment_numbers=[1])[0, ..., 0], mask)


def test_a_class_target_or_an_empty_region_writes_nothing(tmp_path, ct2d):
    assert {"mask_nifti_path", "mask_seg_path"} <= set(index_columns())
    for region in (None, np.zeros((ROWS, COLS), bool)):
        assert write("mask", to_write(ct2d, tmp_path / "run", region)) == {}
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="differ in shape"):
        write("mask", to_write(ct2d, tmp_path / "run", np.ones((ROWS, COLS + 1), bool)))


def test_a_region_shared_by_several_methods_is_written_once(tmp_path, ct2d):
    mask = box((ROWS, COLS), np.s_[3:7, 4:11])
    first = write("mask", to_write(ct2d, tmp_path / "run", mask, method="ig"))
    files = [tmp_path / "run" / name for name in first.values()]
    stats = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files]
    assert write("mask", to_write(ct2d, tmp_path / "run", mask, method="saliency")) == first
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files] == stats
    assert sorted(p.name for p in (tmp_path / "run" / "regions").iterdir()) == sorted(p.name for p in files)
    files[1].unlink()  # gone (a failed image's files are removed): written again
    write("mask", to_write(ct2d, tmp_path / "run", mask, method="smoothgrad"))
    assert files[1].exists() and [p.stat().st_ino for p in files[:1]] == [s[0] for s in stats[:1]]
    other = box((ROWS, COLS), np.s_[0:2, 0:2])  # another region at that name (a library caller's): rewritten
    write("mask", to_write(ct2d, tmp_path / "run", other))
    assert np.array_equal(np.asarray(nib.load(files[0]).dataobj).T, other)


def picture(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("volume", [False, True])
def test_the_overlay_outlines_the_region_in_its_own_colour(tmp_path, ct2d, series, volume):
    image = series if volume else ct2d
    shape = image.spatial_shape
    mask = box(shape, np.s_[..., 3:9, 4:12])
    spec = {"top_percent": 20, "radius": 0, "min_size": 0}
    plain = write("overlay", to_write(image, tmp_path / "a", None, outline=spec))
    drawn = write("overlay", to_write(image, tmp_path / "b", mask, outline=spec))
    before, after = picture(tmp_path / "a" / plain["overlay_path"]), picture(tmp_path / "b" / drawn["overlay_path"])
    changed = (before != after).any(axis=-1)
    lines = montage(outline(mask), tuple(range(N))) if volume else outline(mask)
    assert before.shape[1] > lines.shape[1]  # the colour bar, on the right, unchanged
    changed, after = changed[:, : lines.shape[1]], after[:, : lines.shape[1]]
    assert changed.any() and not changed[~lines].any()  # only the outline's pixels differ
    assert (after[lines] == REGION_COLOR).all()
    assert tuple(REGION_COLOR) != (0, 255, 0)  # apart from the strongest regions' outline


def test_a_shrunk_overlay_outlines_the_shrunk_region(tmp_path, ct2d):
    mask = box((ROWS, COLS), np.s_[2:10, 2:14])
    map_ = to_write(ct2d, tmp_path / "run", mask, max_size=8)
    small = map_.picture_region(map_.pictures()[0].shape)
    assert small is not None and small.shape == (6, 8) and small.any()
    after = picture(tmp_path / "run" / write("overlay", map_)["overlay_path"])
    assert after.shape[:2] == (6, 8 + colour_bar_width(6)) and (after[:, :8][outline(small)] == REGION_COLOR).all()


@pytest.mark.parametrize("volume", [False, True])
def test_the_dicom_overlay_outlines_the_region_too(tmp_path, ct2d, series, volume):
    image = series if volume else ct2d
    mask = box(image.spatial_shape, np.s_[..., 3:7, 4:11])
    if volume:
        mask[1] = False  # one slice without the region: its picture unchanged
    plain = write("dicom", to_write(image, tmp_path / "a", None))
    drawn = write("dicom", to_write(image, tmp_path / "b", mask))

    def pixels(folder: Path, name: str) -> np.ndarray:
        files = sorted((folder / name).iterdir()) if volume else [folder / name]
        return np.stack([pydicom.dcmread(f).pixel_array for f in files]).reshape(*mask.shape, 3)

    before, after = (
        pixels(tmp_path / "a", plain["dicom_overlay_path"]),
        pixels(tmp_path / "b", drawn["dicom_overlay_path"]),
    )
    assert np.array_equal((before != after).any(axis=-1), outline(mask))


def test_write_nifti_stores_a_mask_as_uint8(tmp_path):
    write_nifti(tmp_path / "m.nii", np.eye(3, 4) * 2, np.eye(4), dtype=np.uint8, description="x" * 100)
    written = nib.load(tmp_path / "m.nii")
    assert written.get_data_dtype() == np.uint8 and np.array_equal(np.asarray(written.dataobj).T, np.eye(3, 4) * 2)
    assert written.header["descrip"].tobytes() == b"x" * 80
    for bad in (np.full((3, 4), 0.5), np.full((3, 4), 256.0), np.full((3, 4), -1.0)):
        with pytest.raises(ValueError, match="whole numbers from 0 to 255"):
            write_nifti(tmp_path / "bad.nii", bad, np.eye(4), dtype=np.uint8)
    assert not (tmp_path / "bad.nii").exists()
