"""DICOM reader: PS3.10 files decoded with pydicom 3 and its pylibjpeg plugins.

Grey images get the modality LUT (PS3.3 C.11.1: Modality LUT Sequence or
Rescale Slope/Intercept, also from enhanced multi-frame functional groups);
the VOI window (PS3.3 C.11.2) is kept aside, never applied here; MONOCHROME1
sets ``invert``. Colour photometrics (RGB, YBR_FULL, YBR_FULL_422, YBR_ICT,
YBR_RCT, PALETTE COLOR) become RGB. Multi-frame files become volumes.
``meta["stored_range"]`` is the range BitsStored/PixelRepresentation can hold,
taken through the same modality LUT.

Suspicious headers are refused or reported, never silently used:

* RescaleSlope 0 is refused (every pixel would equal the intercept: nothing is
  left to explain), as is a non-finite slope or intercept, or a rescale that
  takes the pixels beyond float32's range;
* a positive RescaleSlope too small for float32 (under ~1.2e-38) is used as
  written, with a warning in ``meta["warnings"]``;
* an invalid window (non-finite, width <= 0, or under 1 for a LINEAR window,
  PS3.3 C.11.2.1.2) is dropped with a warning instead of silently;
* malformed compressed pixel data (an RLE segment that does not decode to Rows x
  Columns bytes, a truncated or overlong JPEG/JPEG 2000 codestream, a frame a
  decoder refuses as malformed or decodes to another size, frames past
  NumberOfFrames) is a :class:`~medxai.errors.CorruptPixelDataError`
  (``on_corrupt="error"``, the default), or read as a decoder reads it, with a
  warning naming the decoder (``on_corrupt="warn"``);
* native pixel data longer than its size tags say is cut to them (never read as
  extra frames), with a warning.

With ``max_pixels`` (``data.max_pixels``) the size is checked before anything is
decoded (:mod:`medxai.io.dicom_size`); the pixels are decoded by
:mod:`medxai.io.dicom_decode`; the geometry is :mod:`medxai.io.dicom_geometry`'s.
"""

from __future__ import annotations

import os
import struct
import warnings
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space

from medxai.io.arrays import mapped_range, range_meta, value_range_of
from medxai.io.dicom_decode import decode_pixels, transfer_syntax
from medxai.io.dicom_geometry import frames_affine, functional_group, pixel_spacing
from medxai.io.dicom_size import check_dicom_size, check_file_bytes
from medxai.io.image import ImageReadError, LoadedImage, as_image_array, describe, read_error
from medxai.io.limits import OnCorrupt

__all__ = ["has_dicom_magic", "looks_like_bare_dataset", "read_dicom"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Colour spaces the decoders leave alone but the JPEG 2000 codec already
# returns as RGB (its own multi-component transform).
_RGB_LIKE = ("RGB", "YBR_ICT", "YBR_RCT")
_YBR = ("YBR_FULL", "YBR_FULL_422")
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


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


def read_dicom(
    path: str | os.PathLike,
    *,
    force: bool = False,
    max_pixels: int | None = None,
    timeout: float | None = None,
    on_corrupt: OnCorrupt = "error",
) -> LoadedImage:
    """Reads one DICOM file.

    Args:
        path: the file.
        force: read a data set that has no preamble/``DICM`` marker.
        max_pixels: the most values (Rows x Columns x NumberOfFrames x
            SamplesPerPixel) the header may declare (``data.max_pixels``),
            checked before decoding; None: no limit.
        timeout: seconds the GDCM fallback's child process may take
            (``runtime.read_timeout``); None: :data:`~medxai.io.limits.DEFAULT_READ_TIMEOUT`.
            The time limit of the whole read is :func:`medxai.io.read_image`'s.
        on_corrupt: malformed pixel data is an error (``"error"``), or read with a warning
            naming the decoder that read it (``"warn"``) (``data.on_corrupt``).

    Returns:
        A :class:`LoadedImage` of kind ``"dicom"``; ``meta["warnings"]`` lists
        what was suspicious but usable, ``meta["value_range"]`` is the array's
        ``(min, max)``.

    Raises:
        ImageReadError: not DICOM, truncated, too large, no pixel data, no decoder
            for the transfer syntax, an unsupported photometric interpretation,
            or an unusable rescale (see the module's notes).
        CorruptPixelDataError: malformed pixel data, with ``on_corrupt="error"``.
    """
    path = os.fspath(path)
    check_file_bytes(path, max_pixels)
    ds = _read_dataset(path, force)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise read_error("DICOM file has no pixel data", path)
    check_dicom_size(ds, path, max_pixels)
    notes: list[str] = []
    arr, info = decode_pixels(ds, path, notes, max_pixels, timeout, on_corrupt)

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
        arr = _guard(path, "cannot apply the DICOM modality LUT", _modality_lut, arr, ds, frames, path, notes)
        window = _window(ds, notes)
        invert = photometric == "MONOCHROME1"
    else:
        raise read_error(
            "unsupported DICOM photometric interpretation", path, f"{photometric}, {samples} samples per pixel"
        )

    if arr.ndim == (3 if frames > 1 else 2):
        arr = arr[..., np.newaxis]
    array = as_image_array(arr, path)
    value_range = value_range_of(array)
    if "PixelData" in ds and not np.isfinite(value_range).all():
        raise read_error("the DICOM rescale takes pixel values beyond float32's range", path, _rescale_text(ds) or None)
    meta: dict[str, Any] = {
        "modality": str(ds.get("Modality", "")) or None,
        "photometric": original_photometric,
        "frames": frames,
        "transfer_syntax": transfer_syntax(ds).name,
        "bits_stored": int(ds.get("BitsStored", 0)) or None,
        **_stored_range(ds, frames, samples == 1 and photometric in ("MONOCHROME1", "MONOCHROME2"), arr),
    }
    if info.get("decoder"):
        meta["decoder"] = info["decoder"]
    voi_function = ds.get("VOILUTFunction")
    if voi_function:
        meta["voi_lut_function"] = str(voi_function)
    meta["source_files"] = [path]
    meta["value_range"] = value_range
    meta["warnings"] = notes
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if key in ds:
            meta[key] = str(ds[key].value)
    affine = frames_affine(ds, frames)
    return LoadedImage(
        array=array,
        source_path=path,
        kind="dicom",
        window=window,
        invert=invert,
        spacing=pixel_spacing(ds, frames),
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


def _guard(path: str, problem: str, func: Any, *args: Any) -> np.ndarray:
    try:
        return func(*args)
    except ImageReadError:
        raise
    except Exception as exc:
        raise read_error(problem, path, describe(exc)) from None


def _slope_intercept(item: Dataset) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept of ``item``; absent or empty: 1 and 0."""
    slope, intercept = item.get("RescaleSlope"), item.get("RescaleIntercept")
    return (
        1.0 if slope is None or slope == "" else float(slope),
        0.0 if intercept is None or intercept == "" else float(intercept),
    )


def _checked_slope_intercept(item: Dataset, path: str, notes: list[str]) -> tuple[float, float]:
    """:func:`_slope_intercept`, refusing what cannot be used and noting what is suspicious."""
    slope, intercept = _slope_intercept(item)
    written = str(item.get("RescaleSlope")).strip()  # as the file has it: 1e-320 prints as 9.99989e-321
    if not np.isfinite(slope):
        raise read_error(f"invalid DICOM RescaleSlope {written}", path, "not a finite number")
    if slope == 0:
        raise read_error(
            "invalid DICOM RescaleSlope 0",
            path,
            "every pixel would equal the RescaleIntercept, leaving nothing to explain",
        )
    if not np.isfinite(intercept):
        raise read_error(
            f"invalid DICOM RescaleIntercept {str(item.get('RescaleIntercept')).strip()}", path, "not a finite number"
        )
    if abs(slope) < _FLOAT32_TINY:
        note = (
            f"RescaleSlope {written} is implausibly small (under float32's smallest normal number, "
            f"{_FLOAT32_TINY:.3g}); used as written"
        )
        if note not in notes:
            notes.append(note)
    return slope, intercept


def _rescale(arr: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    if slope == 1 and intercept == 0:
        return arr
    return arr.astype(np.float64) * slope + intercept


def _rescale_text(ds: Dataset) -> str:
    """``"RescaleSlope x, RescaleIntercept y"`` as the data set holds them, for messages."""
    try:
        return ", ".join(f"{key} {ds[key].value}" for key in ("RescaleSlope", "RescaleIntercept") if key in ds)
    except Exception:
        return ""


def _modality_lut(arr: np.ndarray, ds: Dataset, frames: int, path: str, notes: list[str]) -> np.ndarray:
    if ds.get("ModalityLUTSequence"):
        return apply_modality_lut(arr, ds)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return _rescale(arr, *_checked_slope_intercept(ds, path, notes))
    items = [functional_group(ds, "PixelValueTransformationSequence", f) for f in range(frames)]
    if not any(item is not None for item in items):
        return arr
    if frames == 1 and items[0] is not None:
        return _rescale(arr, *_checked_slope_intercept(items[0], path, notes))
    out = arr.astype(np.float64)
    for f, item in enumerate(items):
        if item is not None:
            out[f] = _rescale(arr[f], *_checked_slope_intercept(item, path, notes))
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
    stored = meta["stored_range"]
    if not isinstance(stored, tuple):  # an integer dtype always has one
        raise TypeError(f"no stored range for {bits}-bit integer data: {stored!r}")
    low, high = stored
    if ds.get("ModalityLUTSequence"):
        # A LUT need not be monotonic: map every stored value where there are few enough.
        values = np.arange(low, high + 1) if high - low < 2**17 else np.array([low, high])
        meta["stored_range"] = mapped_range(apply_modality_lut(values, ds))
        return meta
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        meta["stored_range"] = mapped_range(_rescale(np.array([low, high]), *_slope_intercept(ds)))
        return meta
    items = [functional_group(ds, "PixelValueTransformationSequence", f) for f in range(frames)]
    ends = [
        _rescale(np.array([low, high]), *_slope_intercept(item)) if item is not None else np.array([low, high])
        for item in items
    ]
    meta["stored_range"] = mapped_range(np.concatenate(ends))
    return meta


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        return float(value[0]) if len(value) else None
    return float(value)


def _window(ds: Dataset, notes: list[str]) -> tuple[float, float] | None:
    """The first (center, width) pair of the VOI LUT module (PS3.3 C.11.2), if usable.

    An unusable one is dropped with a note: unreadable or non-finite values, a
    width <= 0, or under 1 for a LINEAR window (PS3.3 C.11.2.1.2.1 requires >= 1;
    LINEAR_EXACT and SIGMOID only > 0: there, one too small for float32).
    """
    sources = [ds, functional_group(ds, "FrameVOILUTSequence", 0)]
    for source in sources:
        if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
            continue
        try:
            center, width = _first(source.WindowCenter), _first(source.WindowWidth)
        except (TypeError, ValueError) as exc:
            notes.append(f"the DICOM window cannot be read ({describe(exc)}); no window from the file")
            return None
        if center is None or width is None:  # empty (type 2): no window, nothing suspicious
            return None
        function = str(source.get("VOILUTFunction", ds.get("VOILUTFunction", "")) or "LINEAR").upper()
        if not np.isfinite(center):
            notes.append(f"WindowCenter {center:g} is invalid; no window from the file")
        elif not np.isfinite(width) or width <= 0:
            notes.append(f"WindowWidth {width:g} is invalid; no window from the file")
        elif function == "LINEAR" and width < 1:
            notes.append(
                f"WindowWidth {width:g} is under 1, the least a LINEAR window may have; no window from the file"
            )
        elif width < _FLOAT32_TINY:
            notes.append(f"WindowWidth {width:g} is too small to use; no window from the file")
        else:
            return (center, width)
        return None
    return None
