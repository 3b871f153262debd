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
* pixel data longer than its size tags say is cut to them (never read as
  extra frames), with a warning.

With ``max_pixels`` (``data.max_pixels``), memory follows the setting, not the
file: the declared size (Rows x Columns x NumberOfFrames x SamplesPerPixel) is
checked before any pixel is decoded; so is the size each compressed frame's own
codestream header declares (JPEG SOFn, JPEG-LS SOF55, JPEG 2000 SIZ), which the
decoders allocate by; the file itself, or a deflated data set once inflated, may
hold at most :func:`max_file_bytes` bytes.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import struct
import subprocess
import sys
import warnings
import zlib
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space, get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from medxai.io.arrays import mapped_range, range_meta, value_range_of
from medxai.io.geometry import dicom_affine
from medxai.io.image import ImageReadError, LoadedImage, as_image_array, describe, read_error
from medxai.io.limits import DEFAULT_READ_TIMEOUT, READ_TIMEOUT_SETTING, check_declared_size, must_propagate

__all__ = ["read_dicom", "has_dicom_magic", "looks_like_bare_dataset", "frame_geometry", "frame_placement", "declared_size"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Colour spaces the decoders leave alone but the JPEG 2000 codec already
# returns as RGB (its own multi-component transform).
_RGB_LIKE = ("RGB", "YBR_ICT", "YBR_RCT")
_YBR = ("YBR_FULL", "YBR_FULL_422")
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)
#: Room for everything in a DICOM file but its pixels (overlays, icons, private data).
_HEADER_ROOM = 64 << 20
# JPEG (ISO 10918) SOFn and DHP markers, and JPEG-LS SOF55: Lf, P, Y, X, Nf follow.
_SOF_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xDE, 0xF7})


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


def declared_size(ds: Dataset) -> tuple[int, int, int, int] | None:
    """``(frames, rows, columns, samples)`` as the header declares them; None when they cannot be read."""
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except Exception:  # a malformed value: the decoder refuses the file with the details
        return None
    return (frames, rows, cols, samples)


def check_dicom_size(ds: Dataset, path: str | os.PathLike, max_pixels: int | None) -> int:
    """Refuses a data set whose declared pixel count is over ``max_pixels``; returns the count (0: unknown)."""
    size = declared_size(ds)
    if size is None or min(size) < 0:
        return 0
    frames, rows, cols, samples = size
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        samples = 3  # one index a pixel, three values once through the palette
    check_declared_size((frames, rows, cols), path, max_pixels, channels=samples)
    return frames * rows * cols * samples


def max_file_bytes(max_pixels: int) -> int:
    """The most bytes a DICOM file (or a deflated data set, inflated) may hold under ``max_pixels``.

    8 bytes a value (the widest sample, 64-bit float) plus 64 MiB for everything else.
    """
    return max_pixels * 8 + _HEADER_ROOM


def codestream_size(frame: bytes) -> tuple[int, int, int] | None:
    """``(rows, columns, components)`` a JPEG, JPEG-LS or JPEG 2000 codestream declares; None when not found.

    Rows are 0 for a JPEG whose height comes later (a DNL marker).
    """
    if frame[:2] == b"\xff\xd8":  # JPEG / JPEG-LS: marker segments up to the first SOFn
        i, n = 2, len(frame)
        while i + 4 <= n:
            if frame[i] != 0xFF:
                return None
            marker = frame[i + 1]
            if marker == 0xFF:  # a fill byte
                i += 1
                continue
            if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
                i += 2
                continue
            if marker in _SOF_MARKERS:
                if i + 10 > n:
                    return None
                _, rows, cols, components = struct.unpack(">BHHB", frame[i + 4 : i + 10])
                return rows, cols, components
            if marker == 0xDA:  # a scan before any frame header
                return None
            i += 2 + struct.unpack(">H", frame[i + 2 : i + 4])[0]
        return None
    at = frame.find(b"\xff\x4f\xff\x51", 0, 4096)  # JPEG 2000: SOC then SIZ (maybe after JP2 boxes)
    if at < 0 or at + 42 > len(frame):
        return None
    x, y, x0, y0 = struct.unpack(">IIII", frame[at + 8 : at + 24])
    components = struct.unpack(">H", frame[at + 40 : at + 42])[0]
    return max(y - y0, 0), max(x - x0, 0), components


def _check_codestreams(ds: Dataset, ts: UID, path: str) -> None:
    """Refuses encapsulated pixel data that cannot be split into frames, or declares more than the header in a frame.

    The JPEG family's decoders allocate what the codestream declares, before
    pydicom compares it with Rows and Columns: a 3 KB frame declaring
    40000 x 40000 would take gigabytes. Malformed item tags or lengths are
    refused here, before the GDCM fallback, which spends seconds and
    gigabytes on them.
    """
    if not ts.is_encapsulated or "PixelData" not in ds:
        return
    size = declared_size(ds)
    if size is None:
        return
    frames, rows, cols, samples = size
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        for k, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames, extended_offsets=offsets)):
            if k >= frames:
                break
            found = None if ts == RLELossless else codestream_size(frame)  # RLE decoders allocate by Rows, Columns
            if found is None:
                continue  # no size to check: the decoders refuse what they cannot parse
            r, c, comps = found
            if (r or rows) * c * comps > rows * cols * max(samples, 1):
                raise read_error(
                    "the compressed DICOM pixel data declares a larger image than the header",
                    path,
                    f"frame {k + 1}: {r} x {c} x {comps} in the codestream, Rows x Columns x SamplesPerPixel "
                    f"{rows} x {cols} x {samples}",
                )
    except ImageReadError:
        raise
    except Exception as exc:
        detail = f"malformed encapsulated pixel data; {describe(exc)}"
        raise read_error("cannot decode DICOM pixel data", path, detail) from None


def _check_file_bytes(path: str, max_pixels: int | None) -> None:
    """Refuses a file, or a deflated data set once inflated, over :func:`max_file_bytes`, before pydicom reads it."""
    if max_pixels is None:
        return
    limit = max_file_bytes(max_pixels)
    size = os.path.getsize(path)
    if size > limit:
        raise read_error(
            "DICOM file too large", path, f"{size} bytes, over the {limit} that data.max_pixels = {max_pixels} allows"
        )
    with open(path, "rb") as f:
        if f.read(132)[128:] != b"DICM":
            return  # without file meta information there is no deflate
    try:
        meta = read_file_meta_info(path)
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            return
        start = 132 + 12 + int(meta.FileMetaInformationGroupLength)
    except Exception:
        return  # pydicom says what is wrong
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(1 << 20):
            while chunk and not inflater.eof:
                try:
                    inflated += len(inflater.decompress(chunk, 1 << 24))
                except zlib.error:
                    return  # pydicom says what is wrong
                if inflated > limit:
                    raise read_error(
                        "deflated DICOM data set too large",
                        path,
                        f"it inflates to over {limit} bytes, what data.max_pixels = {max_pixels} allows",
                    )
                chunk = inflater.unconsumed_tail


def read_dicom(
    path: str | os.PathLike, *, force: bool = False, max_pixels: int | None = None, timeout: float | None = None
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

    Returns:
        A :class:`LoadedImage` of kind ``"dicom"``; ``meta["warnings"]`` lists
        what was suspicious but usable, ``meta["value_range"]`` is the array's
        ``(min, max)``.

    Raises:
        ImageReadError: not DICOM, truncated, too large, no pixel data, no decoder
            for the transfer syntax, an unsupported photometric interpretation,
            or an unusable rescale (see the module's notes).
    """
    path = os.fspath(path)
    _check_file_bytes(path, max_pixels)
    ds = _read_dataset(path, force)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise read_error("DICOM file has no pixel data", path)
    check_dicom_size(ds, path, max_pixels)
    notes: list[str] = []
    arr, info = _decode(ds, path, notes, max_pixels, timeout)

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
        raise read_error(
            "the DICOM rescale takes pixel values beyond float32's range", path, _rescale_text(ds) or None
        )
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
    meta["value_range"] = value_range
    meta["warnings"] = notes
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


def _plugin_order(decoder: Any) -> list[str]:
    """The decoder's plugins in pydicom's order of trying them, GDCM left out (see :func:`_decode`), Pillow first.

    pydicom tries GDCM first; Pillow (libjpeg-turbo, OpenJPEG) decodes lossy
    JPEG bit for bit as GDCM does, where pylibjpeg's libjpeg differs by a grey
    level here and there, so images read as they did when GDCM decoded them.
    """
    names = [name for name in getattr(decoder, "_available", None) or decoder.available_plugins if name != "gdcm"]
    return sorted(names, key=lambda name: name != "pillow")


def _decode(
    ds: Dataset, path: str, notes: list[str], max_pixels: int | None = None, timeout: float | None = None
) -> tuple[np.ndarray, dict]:
    """The pixel data as an array, and pydicom's facts about it.

    Compressed data goes to pydicom's plugins one at a time (Pillow, pylibjpeg,
    pyjpegls, pydicom's RLE), never to its GDCM plugin: GDCM throws C++
    exceptions that SWIG does not catch on inconsistent headers (e.g.
    BitsAllocated 32 in a JPEG file), which aborts the whole process, and it
    holds the GIL while it works. GDCM reads only what no other plugin can
    (e.g. 12-bit JPEG Extended), in a separate process: :func:`_decode_with_gdcm`.
    """
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
    _check_codestreams(ds, ts, path)
    failures: list[str] = []
    for plugin in _plugin_order(decoder) if ts.is_encapsulated else [""]:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                # Never more frames than NumberOfFrames: that count is what max_pixels checked.
                arr, info = decoder.as_array(ds, decoding_plugin=plugin, allow_excess_frames=False)
        except BaseException as exc:  # pylibjpeg-rle panics (pyo3 PanicException) are BaseExceptions
            if must_propagate(exc) or isinstance(exc, MemoryError):
                raise
            if "less than expected" in str(exc):
                raise read_error("truncated DICOM file", path, "pixel data is shorter than its size tags say") from None
            text = describe(exc).removeprefix(f"RuntimeError: {_ALL_PLUGINS_FAILED} {plugin}: ")
            failures.append(f"{plugin}: {text}" if plugin else text)
            continue
        if any("excess padding" in str(w.message) for w in caught):
            notes.append("the pixel data is longer than its size tags say; the excess was ignored")
        return arr, info
    if ts.is_compressed:
        decoded, why = _decode_with_gdcm(path, ds, max_pixels, timeout)
        if decoded is not None:
            return decoded
        failures.append(f"gdcm: {why}")
    raise read_error("cannot decode DICOM pixel data", path, f"{ts.name}; {'; '.join(failures)}")


# How pydicom starts the error of a plugin that failed (each call here names one plugin).
_ALL_PLUGINS_FAILED = "Unable to decode as exceptions were raised by all available plugins:"

_GDCM_DTYPES = {
    "UINT8": np.uint8, "INT8": np.int8, "UINT12": np.uint16, "INT12": np.int16, "UINT16": np.uint16,
    "INT16": np.int16, "UINT32": np.uint32, "INT32": np.int32, "FLOAT32": np.float32, "FLOAT64": np.float64,
}  # fmt: skip

# Run as ``python -c``: decodes argv[1] with GDCM, writes "<type> <samples> <dims...>\n" then the pixels.
_GDCM_CHILD = """
import resource, sys
limit = int(sys.argv[2])
if limit > 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:  # Linux: die with the parent, never outlive the run
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
except Exception:
    pass
import gdcm
reader = gdcm.ImageReader()
reader.SetFileName(sys.argv[1])
if not reader.Read():
    sys.exit(3)
image = reader.GetImage()
pf = image.GetPixelFormat()
dims = [image.GetDimension(i) for i in range(image.GetNumberOfDimensions())]
raw = image.GetBuffer().encode("utf-8", "surrogateescape")  # GDCM hands char* back as str
head = " ".join([pf.GetScalarTypeAsString(), str(pf.GetSamplesPerPixel()), *map(str, dims)])
sys.stdout.buffer.write(head.encode() + b"\\n" + raw)
"""


def _decode_with_gdcm(
    path: str, ds: Dataset, max_pixels: int | None, timeout: float | None
) -> tuple[tuple[np.ndarray, dict] | None, str]:
    """Greyscale pixel data decoded by GDCM's own file reader in a child process, or None and why not.

    pydicom's plugins cannot decode 12-bit JPEG Extended (process 2 & 4)
    codestreams, nor ones with small conformance slips (e.g. pydicom's
    ``JPEG-lossy.dcm``, whose scan header has the wrong spectral end); GDCM's
    reader, called on the whole file, decodes both. A child process keeps a
    GDCM abort or hang from taking the run with it: it is killed after
    ``timeout`` seconds (default :data:`~medxai.io.limits.DEFAULT_READ_TIMEOUT`),
    and with ``max_pixels`` its address space is capped.
    """
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None, "not tried on colour images (it may change the colour space without saying so)"
    if importlib.util.find_spec("gdcm") is None:
        return None, "python-gdcm is not installed"
    limit = 0 if max_pixels is None else 4 * max_file_bytes(max_pixels) + (512 << 20)
    seconds = DEFAULT_READ_TIMEOUT if timeout is None else timeout
    try:
        child = subprocess.run(
            [sys.executable, "-c", _GDCM_CHILD, path, str(limit)], capture_output=True, timeout=seconds, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"took longer than {seconds:g} s ({READ_TIMEOUT_SETTING}); stopped"
    except OSError as exc:
        return None, f"cannot start it ({describe(exc)})"
    if child.returncode != 0:
        if child.returncode < 0:
            return None, f"crashed ({_signal_name(-child.returncode)})"
        return None, "cannot read the file" if child.returncode == 3 else f"failed (exit status {child.returncode})"
    head, _, raw = child.stdout.partition(b"\n")
    try:
        scalar, samples, *dims = head.decode().split()
        sizes = [int(d) for d in dims]
    except ValueError:
        return None, "gave an unreadable answer"
    if len(sizes) < 2:
        return None, "decoded no 2D image"
    cols, rows, frames = sizes[0], sizes[1], sizes[2] if len(sizes) > 2 else 1
    dtype = _GDCM_DTYPES.get(scalar)
    if dtype is None or samples != "1":
        return None, f"decoded {scalar} with {samples} samples per pixel, which is not supported"
    if len(raw) != frames * rows * cols * np.dtype(dtype).itemsize:
        return None, "decoded a different number of bytes than its sizes say"
    arr = np.frombuffer(raw, dtype=dtype).reshape((frames, rows, cols) if frames > 1 else (rows, cols)).copy()
    info = {
        "number_of_frames": frames,
        "samples_per_pixel": 1,
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        "decoder": "gdcm",
    }
    return (arr, info), ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _guard(path: str, problem: str, func: Any, *args: Any) -> np.ndarray:
    try:
        return func(*args)
    except ImageReadError:
        raise
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
            "invalid DICOM RescaleSlope 0", path, "every pixel would equal the RescaleIntercept, leaving nothing to explain"
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
    items = [_functional_group(ds, "PixelValueTransformationSequence", f) for f in range(frames)]
    if not any(item is not None for item in items):
        return arr
    if frames == 1:
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
    low, high = meta["stored_range"]
    if ds.get("ModalityLUTSequence"):
        # A LUT need not be monotonic: map every stored value where there are few enough.
        values = np.arange(low, high + 1) if high - low < 2**17 else np.array([low, high])
        meta["stored_range"] = mapped_range(apply_modality_lut(values, ds))
        return meta
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        meta["stored_range"] = mapped_range(_rescale(np.array([low, high]), *_slope_intercept(ds)))
        return meta
    items = [_functional_group(ds, "PixelValueTransformationSequence", f) for f in range(frames)]
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
    sources = [ds, _functional_group(ds, "FrameVOILUTSequence", 0)]
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


_PLACEMENT = {  # attribute: (its functional group, its length)
    "ImageOrientationPatient": ("PlaneOrientationSequence", 6),
    "ImagePositionPatient": ("PlanePositionSequence", 3),
    "PixelSpacing": ("PixelMeasuresSequence", 2),
}


def frame_geometry(ds: Dataset, frame: int = 0) -> dict[str, list[float] | None]:
    """ImageOrientationPatient, ImagePositionPatient and PixelSpacing of a frame, each None when absent or malformed.

    Read from the data set itself or its functional groups (per-frame, then shared).
    """
    found: dict[str, list[float] | None] = {}
    for key, (sequence, length) in _PLACEMENT.items():
        try:
            sources = [ds, _functional_group(ds, sequence, frame)]
            value = next((s.get(key) for s in sources if s is not None and s.get(key)), None)
            numbers = None if value is None else [float(v) for v in value]
        except (TypeError, ValueError, AttributeError):
            numbers = None
        ok = numbers is not None and len(numbers) == length and bool(np.isfinite(numbers).all())
        found[key] = numbers if ok else None
    return found


def frame_placement(ds: Dataset, frame: int = 0) -> tuple[list[float], list[float], list[float]] | None:
    """ImageOrientationPatient, ImagePositionPatient and PixelSpacing of a frame; None when any is missing or malformed."""
    found = frame_geometry(ds, frame)
    if any(v is None for v in found.values()):
        return None
    return found["ImageOrientationPatient"], found["ImagePositionPatient"], found["PixelSpacing"]  # type: ignore[return-value]


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
