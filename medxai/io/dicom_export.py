"""Attribution maps as DICOM objects in a new series of the source study.

Two objects are built with highdicom (https://highdicom.readthedocs.io), never
by hand:

* a **Parametric Map** (PS3.3 A.75) holding the float32 map exactly, with an
  identity Real World Value Mapping (unit UCUM ``1``, range 0..1), the
  source's frame of reference, pixel measures, plane orientation and plane
  positions, and references to the source instances;
* **Secondary Capture** images (PS3.3 A.8.1) of the RGB overlay, one per frame.

Both copy patient and study from the source, and its body part and side
(Laterality, from Image or Frame Laterality where the source has only those),
live in a new series of the source study and say they are derived research
output, not for diagnosis. A radiograph's ImagerPixelSpacing becomes the
overlay's PixelSpacing when the source has no PixelSpacing.

UIDs are deterministic (:func:`pydicom.uid.generate_uid` with entropy from the
run, the source series, the method, the class and the kind of object): the 2D
images of one source series explained with one method and class share one new
series, a rerun of a run writes the same UIDs, another run writes new ones.
Series numbers are ``9000 + 10 * (crc32(method, class) % 100)``, plus 1 for the
Secondary Capture series: stable, and usually distinct per method and class.

Sources are read without their pixel data (highdicom only needs the header).
A single multi-frame source (e.g. enhanced CT) is supported: highdicom takes
its plane positions from the functional groups. Sources without patient
geometry (no ImageOrientationPatient/ImagePositionPatient at all, e.g. a CR or
DX radiograph) get no Parametric Map: the IOD requires a frame of reference
and plane positions (and highdicom 0.28 cannot build one without them), so
only the overlay is written and ``dicom_map_path`` is absent from the result.

An explained region (a segmentation model's target, :mod:`medxai.regions`) is
written by :func:`write_dicom_seg` as a DICOM Segmentation (PS3.3 A.51, BINARY,
one segment) built with highdicom from the same sources, its frames paired with
them as the map's are.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

try:
    import highdicom as hd
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("DICOM export needs highdicom: pip install 'highdicom>=0.28'") from exc

from medxai._version import __version__
from medxai.io.dicom_geometry import frame_geometry, orientation_letters, source_orientation
from medxai.io.writers import atomic_write_bytes

__all__ = ["DicomExportError", "write_dicom_outputs", "write_dicom_seg"]

SERIES_NUMBER_BASE = 9000
_SERIES_OFFSET = {"pm": 0, "sc": 1, "seg": 2}
_CONTENT_LABEL = "ATTRIBUTION_MAP"
_CREATOR = "medxai^"  # trailing caret: a one-component person name (highdicom warns otherwise)
# Type 2 attributes highdicom reads as attributes from the source: present, maybe empty.
_TYPE2_PATIENT_STUDY = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)
_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Rows", "Columns")
_MUST_AGREE = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "Rows", "Columns")


class DicomExportError(ValueError):
    """The map cannot be written as DICOM; the message names the file, shape or attribute."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


def write_dicom_outputs(
    heatmap: np.ndarray,
    overlay_rgb: np.ndarray,
    sources: Sequence[str | os.PathLike],
    stem: str | os.PathLike,
    *,
    method: str,
    class_index: int,
    class_name: str | None = None,
    run_id: str = "",
) -> dict[str, str]:
    """Writes the map as a Parametric Map and the overlay as Secondary Capture.

    Everything is built in memory first, then each file is written atomically,
    so a failure leaves earlier outputs as they were. Parametric Map frames are
    stored in highdicom's order, sorted along the slice normal (column x row
    cosines: head first for axial slices); each frame keeps its source's
    position and references that source, whatever the order of ``sources``.
    Secondary Capture files follow the order of ``sources``.

    Args:
        heatmap: float map in [0, 1] at source geometry, ``(rows, cols)`` or
            ``(frames, rows, cols)`` (frame k belongs to ``sources[k]``, or to
            frame k+1 of a single multi-frame source); stored as float32.
        overlay_rgb: uint8 RGB picture, ``heatmap.shape + (3,)``, or with fewer rows and
            columns (a picture bounded in size); its PixelSpacing is scaled to match.
        sources: the source DICOM files, one per frame, or one multi-frame file.
        stem: output path stem; ``.pm.dcm`` and ``.sc.dcm`` (2D) or ``.sc/``
            (a folder of ``0001.dcm``... for a 3D heatmap) are appended.
        method: attribution method or instance name, e.g. ``"ig_blur"``.
        class_index: explained class.
        class_name: its name, if known.
        run_id: run fingerprint mixed into the UIDs.

    Returns:
        ``{"dicom_map_path": ..., "dicom_overlay_path": ...}`` as written;
        no ``dicom_map_path`` for sources without patient geometry.

    Raises:
        DicomExportError: unreadable or non-DICOM source, sources that
            disagree, wrong shapes or dtypes, non-finite or out-of-range values,
            incomplete geometry, or highdicom refusing the inputs.
    """
    paths = [Path(os.fspath(p)) for p in sources]
    if not paths:
        raise DicomExportError("no source DICOM files given")
    datasets = [_read_source(p) for p in paths]
    _check_agree(datasets, paths)
    heatmap, overlay_rgb = _check_arrays(heatmap, overlay_rgb, datasets, paths)
    frames = heatmap if heatmap.ndim == 3 else heatmap[np.newaxis]
    overlays = overlay_rgb if heatmap.ndim == 3 else overlay_rgb[np.newaxis]

    text = _Texts(method, class_index, class_name)
    first = datasets[0]

    def uid(kind: str, *instance: str) -> str:
        return generate_uid(
            entropy_srcs=["medxai", run_id, first.SeriesInstanceUID, method, str(class_index), kind, *instance]
        )

    pm_bytes = None
    if all(_has_patient_geometry(ds, p) for ds, p in zip(datasets, paths)):
        pm = _build_pm(datasets, paths, frames, text, uid, heatmap.ndim == 2)
        pm_bytes = _to_bytes(pm)
    multi = len(datasets) == 1 and len(frames) > 1
    sc_bytes = []
    for k in range(len(frames)):
        ds = datasets[0] if multi else datasets[k]
        frame = k if multi else None
        number = k + 1 if multi or ds.get("InstanceNumber") in (None, "") else int(ds.InstanceNumber)
        # A volume's frames must not reuse the UID of a 2D export of the same slice.
        extra = (f"{k + 1}/{len(frames)}",) if heatmap.ndim == 3 else ()
        sc = _build_sc(
            ds,
            paths[0 if multi else k],
            frame,
            overlays[k],
            text,
            uid("sc"),
            uid("sc", ds.SOPInstanceUID, *extra),
            number,
        )
        sc_bytes.append(_to_bytes(sc))

    stem = os.fspath(stem)
    out: dict[str, str] = {}
    if pm_bytes is not None:
        out["dicom_map_path"] = str(Path(f"{stem}.pm.dcm"))
        atomic_write_bytes(out["dicom_map_path"], pm_bytes)
    if heatmap.ndim == 2:
        out["dicom_overlay_path"] = str(Path(f"{stem}.sc.dcm"))
        atomic_write_bytes(out["dicom_overlay_path"], sc_bytes[0])
    else:
        out["dicom_overlay_path"] = str(Path(f"{stem}.sc"))
        _replace_dir(Path(out["dicom_overlay_path"]), [(f"{k:04d}.dcm", b) for k, b in enumerate(sc_bytes, 1)])
    return out


def write_dicom_seg(
    mask: np.ndarray,
    sources: Sequence[str | os.PathLike],
    path: str | os.PathLike,
    *,
    channel: int,
    region: str,
    run_id: str = "",
) -> bool:
    """Writes an explained region as a DICOM Segmentation (BINARY, one segment), atomically.

    The mask's frames pair with the sources as a map's do in :func:`write_dicom_outputs`:
    frame k belongs to ``sources[k]``, or to frame k+1 of a single multi-frame source;
    each SEG frame keeps its source's position and references it (highdicom stores
    them in its own order). Every source frame gets a SEG frame, empty ones too
    (``omit_empty_frames=False``), so the SEG covers exactly the map's grid. Sources
    without patient geometry (a radiograph) get a SEG without a frame of reference,
    its pixels tied to the source's by the Derivation Image references alone.

    The segment is labelled ``medxai region: channel <channel> <region>``, coded as
    a Spatial and Relational Concept (SCT 309825002) of type Region in Space
    (DCM 130488), made AUTOMATICally by medxai (algorithm family Artificial
    Intelligence); the SEG lives in a new series of the source study (UIDs from the
    run, the source series, the channel and ``region``), series number
    ``9000 + 10 * (crc32(channel, region) % 100) + 2``.

    Args:
        mask: bool (or 0/1) array at the sources' geometry, ``(rows, cols)`` or ``(frames, rows, cols)``.
        sources: the source DICOM files, one per frame, or one multi-frame file.
        path: the file to write (``<region_stem>.seg.dcm``).
        channel: the explained output channel.
        region: the region's name (the segment label's end), e.g. ``"ct_001_c1_predicted"``.
        run_id: run fingerprint mixed into the UIDs.

    Returns:
        True when written; False (nothing written) for an all-empty mask, which has no segment.

    Raises:
        DicomExportError: unreadable or disagreeing sources, a mask of another shape, or highdicom refusing it.
    """
    paths = [Path(os.fspath(p)) for p in sources]
    if not paths:
        raise DicomExportError("no source DICOM files given")
    datasets = [_read_source(p) for p in paths]
    _check_agree(datasets, paths)
    mask = np.asarray(mask)
    _check_shape(mask, "region mask", datasets, paths)
    mask = mask.astype(bool)
    if not mask.any():
        return False
    first = datasets[0]
    name = _clean(f"channel {int(channel)} {region}", 64 - len("medxai region: "))
    algorithm = hd.AlgorithmIdentificationSequence(
        name="medxai", family=codes.DCM.ArtificialIntelligence, version=__version__
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=f"medxai region: {name}",
        segmented_property_category=codes.SCT.SpatialAndRelationalConcept,
        segmented_property_type=codes.DCM.RegionInSpace,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    entropy = ["medxai", run_id, first.SeriesInstanceUID, "region", str(int(channel)), region, "seg"]
    crc = zlib.crc32(f"region\0{int(channel)}\0{region}".encode())
    try:
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=mask.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=generate_uid(entropy_srcs=entropy),
            series_number=SERIES_NUMBER_BASE + 10 * (crc % 100) + _SERIES_OFFSET["seg"],
            sop_instance_uid=generate_uid(entropy_srcs=[*entropy, *(ds.SOPInstanceUID for ds in datasets)]),
            instance_number=_instance_number(first) if mask.ndim == 2 else 1,
            manufacturer="medxai",
            manufacturer_model_name="medxai",
            software_versions=__version__,
            device_serial_number="none",
            omit_empty_frames=False,
            content_label="REGION",
            content_description=_clean(f"medxai explained region, {name}", 64),
            content_creator_name=_CREATOR,
            series_description=_clean(f"medxai region {name}", 64),
        )
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RuntimeError) as exc:
        raise DicomExportError(f"highdicom cannot build a Segmentation from {paths[0]}: {exc}", paths[0]) from exc
    if "FrameOfReferenceUID" not in seg:
        # Pixel Measures belongs to a patient frame of reference (PS3.3 A.51.5); without one,
        # highdicom 0.28 still writes a PixelSpacing-only group that its own reader refuses.
        for group in seg.SharedFunctionalGroupsSequence:
            if "PixelMeasuresSequence" in group:
                del group.PixelMeasuresSequence
    _copy_series_anatomy(first, seg)
    atomic_write_bytes(path, _to_bytes(seg))
    return True


class _Texts:
    """The wording shared by both objects, cut to the VR lengths (SH 16, LO 64)."""

    def __init__(self, method: str, class_index: int, class_name: str | None) -> None:
        cls = f"c{int(class_index)}" + (f" {class_name}" if class_name else "")
        self.method = method
        self.cls = cls
        self.lut_label = _clean(method, 16 - len(f" c{class_index}")) + f" c{class_index}"
        self.lut_explanation = _clean(f"medxai {method} attribution, class {cls}", 64)
        self.content_description = _clean(f"medxai {method} attribution map, class {cls}", 64)

    def series_description(self, what: str) -> str:
        return _clean(f"medxai {self.method} {self.cls}", 64 - len(what) - 1) + f" {what}"

    def derivation(self, what: str) -> str:
        return _clean(
            f"medxai {self.method} attribution {what} for class {self.cls}; research use only, not for diagnosis", 1024
        )

    def series_number(self, kind: str) -> int:
        crc = zlib.crc32(f"{self.method}\0{self.cls.split()[0]}".encode())
        return SERIES_NUMBER_BASE + 10 * (crc % 100) + _SERIES_OFFSET[kind]


def _clean(value: str, limit: int) -> str:
    # Backslash separates values and control characters are not allowed in SH/LO/ST.
    text = "".join(ch for ch in str(value).replace("\\", "/") if ch >= " ")
    return text[:limit].rstrip()


def _read_source(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types for broken files
        raise DicomExportError(f"source {path} is not a readable DICOM file: {exc}", path) from exc
    missing = [kw for kw in _REQUIRED if kw not in ds]
    if missing:
        raise DicomExportError(f"source {path} is not a DICOM image: it lacks {', '.join(missing)}", path)
    for kw in _TYPE2_PATIENT_STUDY:
        if kw not in ds:
            setattr(ds, kw, None)
    return ds


def _n_frames(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def _check_agree(datasets: list[Dataset], paths: list[Path]) -> None:
    first = datasets[0]
    if len(datasets) > 1:
        for ds, path in zip(datasets, paths):
            if _n_frames(ds) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
                raise DicomExportError(f"source {path} is multi-frame: pass a multi-frame file alone", path)
    for ds, path in zip(datasets[1:], paths[1:]):
        for kw in _MUST_AGREE:
            if ds.get(kw) != first.get(kw):
                raise DicomExportError(
                    f"sources disagree on {kw}: {paths[0]} has {first.get(kw)}, {path} has {ds.get(kw)}", path
                )


def _check_arrays(
    heatmap: Any, overlay: Any, datasets: list[Dataset], paths: list[Path]
) -> tuple[np.ndarray, np.ndarray]:
    heatmap, overlay = np.asarray(heatmap), np.asarray(overlay)
    where = _check_shape(heatmap, "heatmap", datasets, paths)
    if heatmap.dtype.kind not in "fiub":
        raise DicomExportError(f"heatmap must be real numbers, got dtype {heatmap.dtype}")
    if not np.all(np.isfinite(heatmap)):
        raise DicomExportError(f"heatmap for {where} has {int(np.sum(~np.isfinite(heatmap)))} NaN/inf values")
    if heatmap.size and (heatmap.min() < 0 or heatmap.max() > 1):
        raise DicomExportError(f"heatmap for {where} must be in [0, 1], got [{heatmap.min():g}, {heatmap.max():g}]")
    # The overlay may be smaller than the map (pictures are bounded by output.max_size), never larger.
    fits = (
        overlay.ndim == heatmap.ndim + 1
        and overlay.shape[-1] == 3
        and overlay.shape[:-3] == heatmap.shape[:-2]
        and all(0 < o <= h for o, h in zip(overlay.shape[-3:-1], heatmap.shape[-2:]))
    )
    if not fits or overlay.dtype != np.uint8:
        raise DicomExportError(
            f"overlay_rgb must be uint8 of shape {heatmap.shape + (3,)} (or smaller rows and columns), "
            f"got {overlay.dtype} {overlay.shape}"
        )
    return heatmap.astype(np.float32, copy=False), overlay


def _check_shape(array: np.ndarray, what: str, datasets: list[Dataset], paths: list[Path]) -> str:
    """Raises unless ``array`` is ``(frames, rows, cols)`` of the sources (or ``(rows, cols)`` for one frame).

    Returns:
        The sources as the messages name them.
    """
    where = f"{len(paths)} source(s) from {paths[0]}"
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    frames = _n_frames(datasets[0]) if len(datasets) == 1 else len(datasets)
    expected = [(frames, rows, cols)] + ([(rows, cols)] if frames == 1 else [])
    if array.shape not in expected:
        raise DicomExportError(
            f"{what} shape {array.shape} does not match {where}: expected "
            f"{' or '.join(map(str, expected))} (frames, rows, cols)"
        )
    return where


def _has_patient_geometry(ds: Dataset, path: Path) -> bool:
    """False for projection images (no plane at all); raises on half a geometry."""
    iop, ipp, spacing = frame_geometry(ds, 0)
    if iop is None and ipp is None:
        return False
    missing = [
        kw
        for kw, v in (
            ("ImageOrientationPatient", iop),
            ("ImagePositionPatient", ipp),
            ("PixelSpacing", spacing),
            ("FrameOfReferenceUID", ds.get("FrameOfReferenceUID")),
        )
        if v is None
    ]
    if missing:
        raise DicomExportError(f"source {path} lacks {', '.join(missing)}, needed for a Parametric Map", path)
    return True


def _instance_number(ds: Dataset) -> int:
    value = ds.get("InstanceNumber")
    return int(value) if value not in (None, "") else 1


def _build_pm(
    datasets: list[Dataset], paths: list[Path], frames: np.ndarray, text: _Texts, uid: Callable[..., str], single: bool
) -> Dataset:
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=text.lut_label,
        lut_explanation=text.lut_explanation,
        unit=codes.UCUM.NoUnits,
        value_range=(0.0, 1.0),
        slope=1,
        intercept=0,
    )
    try:
        # Plane positions come from source_images: frames[k] is paired with
        # datasets[k] (or frame k+1 of a multi-frame source) before highdicom
        # sorts the frames along the normal.
        pm = hd.pm.ParametricMap(
            source_images=datasets,
            pixel_array=frames if not single else frames[0],
            series_instance_uid=uid("pm"),
            series_number=text.series_number("pm"),
            sop_instance_uid=uid("pm", *(ds.SOPInstanceUID for ds in datasets), *(() if single else ("3d",))),
            instance_number=_instance_number(datasets[0]) if single else 1,
            manufacturer="medxai",
            manufacturer_model_name="medxai",
            software_versions=__version__,
            device_serial_number="none",
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
            content_label=_CONTENT_LABEL,
            content_description=text.content_description,
            content_creator_name=_CREATOR,
            series_description=text.series_description("map"),
        )
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RuntimeError) as exc:
        raise DicomExportError(f"highdicom cannot build a Parametric Map from {paths[0]}: {exc}", paths[0]) from exc
    pm.DerivationDescription = text.derivation("map")
    _copy_series_anatomy(datasets[0], pm)
    return pm


def _build_sc(
    ds: Dataset,
    path: Path,
    frame: int | None,
    rgb: np.ndarray,
    text: _Texts,
    series_uid: str,
    sop_uid: str,
    instance_number: int,
) -> Dataset:
    iop, _, frame_spacing = frame_geometry(ds, frame or 0)
    spacing: Sequence[float] | None = frame_spacing or _imager_pixel_spacing(ds)
    orientation = orientation_letters(iop) if iop is not None else source_orientation(ds)
    laterality = _laterality(ds)
    try:
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ds,
            pixel_array=np.ascontiguousarray(rgb),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_uid,
            series_number=text.series_number("sc"),
            sop_instance_uid=sop_uid,
            instance_number=instance_number,
            manufacturer="medxai",
            pixel_spacing=None
            if spacing is None
            else (
                float(spacing[0]) * int(ds.Rows) / rgb.shape[0],
                float(spacing[1]) * int(ds.Columns) / rgb.shape[1],
            ),  # a shrunk picture has coarser pixels over the same field of view
            patient_orientation=orientation or ("L", "P"),
            laterality=laterality or None,  # highdicom takes R or L; the empty value is set below
            transfer_syntax_uid=ExplicitVRLittleEndian,
            manufacturer_model_name="medxai",
            software_versions=__version__,
            device_serial_number="none",
            series_description=text.series_description("overlay"),
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise DicomExportError(f"highdicom cannot build a Secondary Capture from {path}: {exc}", path) from exc
    if orientation is None:
        # highdicom insists on a value; Type 2C allows "unknown" (empty). setattr: highdicom's
        # attribute is inferred as list[str], which leaves out the empty value.
        setattr(sc, "PatientOrientation", None)
    sc.BurnedInAnnotation = "NO"
    sc.DerivationDescription = text.derivation("overlay")
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    if frame is not None and _multiframe_class(ds):
        ref.ReferencedFrameNumber = frame + 1
    sc.SourceImageSequence = [ref]
    _copy_series_anatomy(ds, sc)
    return sc


def _multiframe_class(ds: Dataset) -> bool:
    """Whether the source's SOP class allows frames (a frame number may only reference those); unknown classes do."""
    try:
        return bool(hd.utils.is_multiframe_image(ds))
    except KeyError:  # a SOP class highdicom does not know (private, retired)
        return True


def _copy_series_anatomy(source: Dataset, target: Dataset) -> None:
    """The General Series anatomy highdicom leaves out: BodyPartExamined and Laterality (Type 2C)."""
    if source.get("BodyPartExamined") and "BodyPartExamined" not in target:
        target.BodyPartExamined = source.BodyPartExamined
    laterality = _laterality(source)
    if laterality is not None and "Laterality" not in target:
        target.Laterality = laterality


def _laterality(ds: Dataset) -> str | None:
    """The Laterality (PS3.3 C.7.3.1, Type 2C) of an export of ``ds``: "R", "L", "" (unknown) or None (absent).

    Laterality is required, maybe empty, when the body part is paired, and the
    exports have no Image or Frame Laterality to say it instead. So: the
    source's own Laterality as it is, even empty; else what its Image
    Laterality or its frames' Frame Laterality (enhanced objects' Frame
    Anatomy) say: one side, absent for U (unpaired), empty for B or sides that
    differ; else, with none of them, empty when no body part is named (it may
    be paired) and absent when one is, as in the source.
    """
    if "Laterality" in ds:
        return str(ds.Laterality or "")
    groups = [*(ds.get("SharedFunctionalGroupsSequence") or []), *(ds.get("PerFrameFunctionalGroupsSequence") or [])]
    anatomy = [item for group in groups for item in group.get("FrameAnatomySequence") or []]
    sides = {str(item.get("FrameLaterality") or "") for item in anatomy} | {str(ds.get("ImageLaterality") or "")}
    sides.discard("")
    if sides == {"U"}:
        return None
    if len(sides) == 1 and sides <= {"R", "L"}:
        return sides.pop()
    return "" if sides or not ds.get("BodyPartExamined") else None


def _imager_pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """A radiograph's ImagerPixelSpacing (PS3.3 C.8.11.4): row and column spacing, None when absent or malformed."""
    try:
        rows, cols = (float(v) for v in ds.get("ImagerPixelSpacing") or ())
    except (TypeError, ValueError):
        return None
    return (rows, cols) if np.isfinite([rows, cols]).all() and rows > 0 and cols > 0 else None


def _to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _replace_dir(target: Path, files: list[tuple[str, bytes]]) -> None:
    """Fills a fresh sibling folder, then swaps it for ``target`` (os.replace cannot replace a full folder)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(6)
    tmp = target.with_name(f".{target.name}.{token}.tmp")
    trash = target.with_name(f".{target.name}.{token}.old")
    tmp.mkdir()
    moved = False
    try:
        for name, data in files:
            atomic_write_bytes(tmp / name, data)
        if target.exists() or target.is_symlink():
            os.rename(target, trash)
            moved = True
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved and not target.exists():
            os.rename(trash, target)
        raise
    if moved:
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink()
