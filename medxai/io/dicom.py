"""DICOM reader: PS3.10 files decoded with pydicom 3 and its pylibjpeg plugins.

Grey images get the modality LUT (PS3.3 C.11.1: Modality LUT Sequence or
Rescale Slope/Intercept, also from enhanced multi-frame functional groups);
the VOI window (PS3.3 C.11.2) is kept aside, never applied here; MONOCHROME1
sets ``invert``. Colour photometrics (RGB, YBR_FULL, YBR_FULL_422, YBR_ICT,
YBR_RCT, PALETTE COLOR) become RGB. Multi-frame files become volumes.
``meta["stored_range"]`` is the range BitsStored/PixelRepresentation can hold,
taken through the same modality LUT.
"""

from __future__ import annotations

import os
import struct
import warnings
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space, get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medxai.io.arrays import mapped_range, range_meta
from medxai.io.geometry import dicom_affine
from medxai.io.image import LoadedImage, as_image_array, describe, read_error

__all__ = ["read_dicom", "has_dicom_magic", "looks_like_bare_dataset", "frame_placement"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Colour spaces the decoders leave alone but the JPEG 2000 codec already
# returns as RGB (its own multi-component transform).
_RGB_LIKE = ("RGB", "YBR_ICT", "YBR_RCT")
_YBR = ("YBR_FULL", "YBR_FULL_422")


def has_dicom_magic(head: bytes) -> bool:
    """True when ``head`` has the PS3.10 128-byte preamble then ``DICM``."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def looks_like_bare_dataset(head: bytes) -> bool:
    """True when ``head`` plausibly starts a data set written without a preamble.

    Old (ACR-NEMA style) files start directly with the first element, in
    practice group 0002 or 0008, little endian.
    """
    if len(head) < 8:
        return False
    group = struct.unpack("<H", head[:2])[0]
    if group not in (0x0002, 0x0008):
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():  # explicit VR
        return True
    return struct.unpack("<I", head[4:8])[0] < 0x10000  # implicit VR: a short first value


def read_dicom(path: str | os.PathLike, *, force: bool = False) -> LoadedImage:
    """Reads one DICOM file.

    Args:
        path: the file.
        force: read a data set that has no preamble/``DICM`` marker.

    Returns:
        A :class:`LoadedImage` of kind ``"dicom"``.

    Raises:
        ImageReadError: not DICOM, truncated, no pixel data, no decoder for
            the transfer syntax, or an unsupported photometric interpretation.
    """
    path = os.fspath(path)
    ds = _read_dataset(path, force)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise read_error("DICOM file has no pixel data", path)
    arr, info = _decode(ds, path)

    frames = int(info.get("number_of_frames") or 1)
    samples = int(info.get("samples_per_pixel") or 1)
    photometric = str(info.get("photometric_interpretation") or ds.get("PhotometricInterpretation", ""))
    original_photometric = str(ds.get("PhotometricInterpretation", photometric))
    window = None
    invert = False

    if photometric == "PALETTE COLOR":
        arr = _guard(path, "cannot apply the DICOM palette colour LUT", apply_color_lut, arr, ds)
    elif samples == 3 and photometric in _YBR:
        arr = _guard(path, "cannot convert DICOM YBR pixels to RGB", convert_color_space, arr, photometric, "RGB")
    elif samples == 3 and photometric in _RGB_LIKE:
        pass
    elif samples == 1 and photometric in ("MONOCHROME1", "MONOCHROME2"):
        arr = _guard(path, "cannot apply the DICOM modality LUT", _modality_lut, arr, ds, frames)
        window = _window(ds)
        invert = photometric == "MONOCHROME1"
    else:
        raise read_error(
            "unsupported DICOM photometric interpretation", path, f"{photometric}, {samples} samples per pixel"
        )

    if arr.ndim == (3 if frames > 1 else 2):
        arr = arr[..., np.newaxis]
    array = as_image_array(arr, path)
    meta: dict[str, Any] = {
        "modality": str(ds.get("Modality", "")) or None,
        "photometric": original_photometric,
        "frames": frames,
        "transfer_syntax": _transfer_syntax(ds).name,
        "bits_stored": int(ds.get("BitsStored", 0)) or None,
        **_stored_range(ds, frames, samples == 1 and photometric in ("MONOCHROME1", "MONOCHROME2"), arr),
    }
    if info.get("decoder"):
        meta["decoder"] = info["decoder"]
    voi_function = ds.get("VOILUTFunction")
    if voi_function:
        meta["voi_lut_function"] = str(voi_function)
    meta["source_files"] = [path]
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if key in ds:
            meta[key] = str(ds[key].value)
    affine = _affine(ds, frames)
    return LoadedImage(
        array=array,
        source_path=path,
        kind="dicom",
        window=window,
        invert=invert,
        spacing=_spacing(ds, frames),
        meta=meta,
        affine=affine,
        patient_geometry=affine is not None,
    )


def _read_dataset(path: str, force: bool) -> Dataset:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, force=force)
    except InvalidDicomError:
        raise read_error("not a DICOM file", path) from None
    except Exception as exc:
        raise read_error("cannot parse DICOM file (truncated or corrupt)", path, describe(exc)) from None
    if _is_truncated(ds, caught):
        raise read_error("truncated DICOM file", path)
    return ds


def _is_truncated(ds: Dataset, caught: list[warnings.WarningMessage]) -> bool:
    # pydicom stops quietly at end of file, keeping short values; spot that
    # before any element is converted (raw elements still know their length).
    if any("End of file" in str(w.message) for w in caught):
        return True
    for dataset in (getattr(ds, "file_meta", None), ds):
        if dataset is None:
            continue
        for elem in dataset.elements():
            if (
                isinstance(elem, RawDataElement)
                and elem.value is not None
                and elem.length != _UNDEFINED_LENGTH
                and len(elem.value) < elem.length
            ):
                return True
    return len(ds) == 0


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return UID(meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian


def _decode(ds: Dataset, path: str) -> tuple[np.ndarray, dict]:
    ts = _transfer_syntax(ds)
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:  # a bare data set: the decoders need it
        ds.file_meta.TransferSyntaxUID = ts
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise read_error("unsupported DICOM transfer syntax", path, f"{ts.name} ({ts})") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no plugin"
        raise read_error("no decoder installed for the DICOM transfer syntax", path, f"{ts.name}: {missing}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr, info = decoder.as_array(ds)
    except Exception as exc:
        if "less than expected" in str(exc):
            raise read_error("truncated DICOM file", path, "pixel data is shorter than its size tags say") from None
        if ts.is_compressed:
            decoded = _decode_with_gdcm(path, ds)
            if decoded is not None:
                return decoded
        raise read_error("cannot decode DICOM pixel data", path, f"{ts.name}; {describe(exc)}") from None
    return arr, info


_GDCM_DTYPES = {
    "UINT8": np.uint8, "INT8": np.int8, "UINT12": np.uint16, "INT12": np.int16, "UINT16": np.uint16,
    "INT16": np.int16, "UINT32": np.uint32, "INT32": np.int32, "FLOAT32": np.float32, "FLOAT64": np.float64,
}  # fmt: skip


def _decode_with_gdcm(path: str, ds: Dataset) -> tuple[np.ndarray, dict] | None:
    """Greyscale pixel data decoded by GDCM's own file reader, or None when it cannot.

    pydicom's plugins (pylibjpeg, and pydicom's GDCM plugin, which refuses it
    up front) cannot decode 12-bit JPEG Extended (process 2 & 4) codestreams,
    nor ones with small conformance slips (e.g. pydicom's ``JPEG-lossy.dcm``,
    whose scan header has the wrong spectral end); GDCM's reader, called on
    the whole file, decodes both.
    """
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None  # colour: GDCM may change the colour space without saying so
    try:
        import gdcm
    except ImportError:
        return None
    try:
        reader = gdcm.ImageReader()
        reader.SetFileName(path)
        if not reader.Read():
            return None
        image = reader.GetImage()
        dtype = _GDCM_DTYPES.get(image.GetPixelFormat().GetScalarTypeAsString())
        if dtype is None or image.GetPixelFormat().GetSamplesPerPixel() != 1:
            return None
        frames = int(image.GetDimension(2)) if image.GetNumberOfDimensions() == 3 else 1
        rows, cols = int(image.GetDimension(1)), int(image.GetDimension(0))
        raw = image.GetBuffer().encode("utf-8", "surrogateescape")  # GDCM hands char* back as str
        if len(raw) != frames * rows * cols * np.dtype(dtype).itemsize:
            return None
        arr = np.frombuffer(raw, dtype=dtype).reshape((frames, rows, cols) if frames > 1 else (rows, cols)).copy()
    except Exception:
        return None
    info = {
        "number_of_frames": frames,
        "samples_per_pixel": 1,
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        "decoder": "gdcm",
    }
    return arr, info


def _guard(path: str, problem: str, func: Any, *args: Any) -> np.ndarray:
    try:
        return func(*args)
    except Exception as exc:
        raise read_error(problem, path, describe(exc)) from None


def _functional_group(ds: Dataset, sequence: str, frame: int) -> Dataset | None:
    """The item of ``sequence`` for ``frame`` in an enhanced multi-frame object (PS3.3 C.7.6.16)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame) and per_frame[frame].get(sequence):
        return per_frame[frame].get(sequence)[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get(sequence):
        return shared[0].get(sequence)[0]
    return None


def _rescale(arr: np.ndarray, item: Dataset) -> np.ndarray:
    slope = float(item.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(item.get("RescaleIntercept", 0.0) or 0.0)
    return arr.astype(np.float64) * slope + intercept


def _modality_lut(arr: np.ndarray, ds: Dataset, frames: int) -> np.ndarray:
    if ds.get("ModalityLUTSequence") or ("RescaleSlope" in ds and "RescaleIntercept" in ds):
        return apply_modality_lut(arr, ds)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return _rescale(arr, ds)
    items = [_functional_group(ds, "PixelValueTransformationSequence", f) for f in range(frames)]
    if not any(item is not None for item in items):
        return arr
    if frames == 1:
        return _rescale(arr, items[0])
    out = arr.astype(np.float64)
    for f, item in enumerate(items):
        if item is not None:
            out[f] = _rescale(arr[f], item)
    return out


def _stored_range(ds: Dataset, frames: int, grey: bool, arr: np.ndarray) -> dict[str, Any]:
    """``stored_range``/``bit_depth`` meta: what BitsStored and PixelRepresentation can hold, in output units.

    Grey images take the ends through the modality LUT (the lowest and highest value
    a LUT sequence can give, or the rescale of each frame); colour images are as stored
    (a palette: its LUT's entries). Float pixel data has none.
    """
    if "PixelData" not in ds:  # (Double)FloatPixelData
        return range_meta(np.float32)
    if not grey and arr.dtype.kind in "iu" and str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        return range_meta(arr.dtype)
    bits = int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 0) or 8)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    meta = range_meta(np.int64 if signed else np.uint64, bits)
    if not grey:
        return meta
    low, high = meta["stored_range"]
    if ds.get("ModalityLUTSequence"):
        # A LUT need not be monotonic: map every stored value where there are few enough.
        values = np.arange(low, high + 1) if high - low < 2**17 else np.array([low, high])
        meta["stored_range"] = mapped_range(apply_modality_lut(values, ds))
        return meta
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        meta["stored_range"] = mapped_range(_rescale(np.array([low, high]), ds))
        return meta
    items = [_functional_group(ds, "PixelValueTransformationSequence", f) for f in range(frames)]
    ends = [_rescale(np.array([low, high]), item) if item is not None else np.array([low, high]) for item in items]
    meta["stored_range"] = mapped_range(np.concatenate(ends))
    return meta


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        return float(value[0]) if len(value) else None
    return float(value)


def _window(ds: Dataset) -> tuple[float, float] | None:
    """The first (center, width) pair of the VOI LUT module (PS3.3 C.11.2), if usable."""
    sources = [ds, _functional_group(ds, "FrameVOILUTSequence", 0)]
    for source in sources:
        if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
            continue
        try:
            center, width = _first(source.WindowCenter), _first(source.WindowWidth)
        except (TypeError, ValueError):
            return None
        if center is None or width is None or not np.isfinite([center, width]).all() or width <= 0:
            return None
        return (center, width)
    return None


def _spacing(ds: Dataset, frames: int) -> tuple[float, ...] | None:
    """Row/column spacing (PixelSpacing, else ImagerPixelSpacing), plus slice spacing for volumes."""
    try:
        measures = _functional_group(ds, "PixelMeasuresSequence", 0)
        sources = [s for s in (ds, measures) if s is not None]
        in_plane = next((s.get(k) for k in ("PixelSpacing", "ImagerPixelSpacing") for s in sources if s.get(k)), None)
        if not in_plane or len(in_plane) < 2:
            return None
        rows, cols = float(in_plane[0]), float(in_plane[1])
        if frames == 1:
            return (rows, cols)
        between = next(
            (s.get(k) for k in ("SpacingBetweenSlices", "SliceThickness") for s in sources if s.get(k)), None
        )
        return None if between is None else (abs(float(between)), rows, cols)
    except (TypeError, ValueError, AttributeError):
        return None


def frame_placement(ds: Dataset, frame: int = 0) -> tuple[list[float], list[float], list[float]] | None:
    """ImageOrientationPatient, ImagePositionPatient and PixelSpacing of a frame (plain or functional groups).

    None when any of the three is missing or malformed.
    """
    try:
        sources = [
            ds,
            _functional_group(ds, "PlaneOrientationSequence", frame),
            _functional_group(ds, "PlanePositionSequence", frame),
            _functional_group(ds, "PixelMeasuresSequence", frame),
        ]
        found = {}
        for key in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
            value = next((s.get(key) for s in sources if s is not None and s.get(key)), None)
            if value is None:
                return None
            found[key] = [float(v) for v in value]
        if (len(found["ImageOrientationPatient"]), len(found["ImagePositionPatient"]), len(found["PixelSpacing"])) != (6, 3, 2):
            return None
        if not np.isfinite([v for vs in found.values() for v in vs]).all():
            return None
        return found["ImageOrientationPatient"], found["ImagePositionPatient"], found["PixelSpacing"]
    except (TypeError, ValueError, AttributeError):
        return None


def _affine(ds: Dataset, frames: int) -> np.ndarray | None:
    """The RAS+ affine of a single-frame image, or of a multi-frame one whose frames are evenly stacked."""
    first = frame_placement(ds, 0)
    if first is None:
        return None
    orientation, position, spacing = first
    try:
        if frames == 1:
            return dicom_affine(orientation, position, spacing)
        placements = [frame_placement(ds, f) for f in range(frames)]
        if any(p is None or not np.allclose(p[0], orientation, atol=1e-4) for p in placements):
            return None
        positions = np.array([p[1] for p in placements])
        steps = np.diff(positions, axis=0)
        step = steps.mean(axis=0)
        if np.linalg.norm(step) < 1e-6 or np.abs(steps - step).max() > 1e-2 * max(1.0, float(np.linalg.norm(step))):
            return None  # frames that are not one evenly spaced stack (e.g. a time series) have no single affine
        return dicom_affine(orientation, position, spacing, step)
    except ValueError:
        return None
