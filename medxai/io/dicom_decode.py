"""DICOM pixel decoding: pydicom's plugins one at a time, and GDCM in a child process for what none of them reads."""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medxai.io.dicom_size import check_codestreams, declared_size, max_file_bytes
from medxai.io.image import corrupt_error, describe, read_error
from medxai.io.limits import DEFAULT_READ_TIMEOUT, READ_TIMEOUT_SETTING, OnCorrupt, must_propagate

__all__ = ["decode_pixels", "transfer_syntax"]


def transfer_syntax(ds: Dataset) -> UID:
    """The data set's transfer syntax: its file meta's, else the encoding it was read with."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return UID(meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little in (True, None) else ExplicitVRBigEndian


def _plugin_order(decoder: Any) -> list[str]:
    """The decoder's plugins in pydicom's order of trying them, GDCM left out (see :func:`decode_pixels`), Pillow first.

    pydicom tries GDCM first; Pillow (libjpeg-turbo, OpenJPEG) decodes lossy
    JPEG bit for bit as GDCM does, where pylibjpeg's libjpeg differs by a grey
    level here and there, so images read as they did when GDCM decoded them.
    """
    names = [name for name in getattr(decoder, "_available", None) or decoder.available_plugins if name != "gdcm"]
    return sorted(names, key=lambda name: name != "pillow")


def decode_pixels(
    ds: Dataset,
    path: str,
    notes: list[str],
    max_pixels: int | None = None,
    timeout: float | None = None,
    on_corrupt: OnCorrupt = "error",
) -> tuple[np.ndarray, dict]:
    """The pixel data as an array, and pydicom's facts about it.

    Compressed data goes to pydicom's plugins one at a time (Pillow, pylibjpeg,
    pyjpegls, pydicom's RLE), never to its GDCM plugin: GDCM throws C++
    exceptions that SWIG does not catch on inconsistent headers (e.g.
    BitsAllocated 32 in a JPEG file), which aborts the whole process, and it
    holds the GIL while it works. GDCM reads only what no other plugin can
    (e.g. 12-bit JPEG Extended), in a separate process: :func:`_decode_with_gdcm`.

    Malformed compressed pixel data (found by :func:`~medxai.io.dicom_size.check_codestreams`
    before any decoder runs, reported by a decoder that refused what a later one decoded, or
    decoded by GDCM to another size than the header's) is refused with ``on_corrupt="error"``,
    before decoding where it can be; with ``"warn"`` the decoded pixels are returned with a note
    in ``notes`` naming the decoder that read them and what was wrong. Native pixel data longer
    than its size tags say (whole frames, then padding) is cut to them with a note, whatever
    ``on_corrupt``.

    Raises:
        CorruptPixelDataError: malformed pixel data with ``on_corrupt="error"``, or no decoder read it.
        ImageReadError: no decoder for the transfer syntax, or none could decode the pixel data.
    """
    ts = transfer_syntax(ds)
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
    corrupt = check_codestreams(ds, ts, path)
    if corrupt and on_corrupt == "error":
        raise corrupt_error("DICOM", path, corrupt)
    failures: list[str] = []
    refused: list[str] = []  # the failures that say the data is malformed, not merely unsupported
    for plugin in _plugin_order(decoder) if ts.is_encapsulated else [""]:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                # Never more frames than NumberOfFrames: that count is what max_pixels checked.
                # pydicom 3.0 annotates ``**kwargs: DecodeOptions`` (meaning ``Unpack[DecodeOptions]``,
                # which declares allow_excess_frames: bool), so mypy wants each keyword to be a DecodeOptions.
                arr, info = decoder.as_array(
                    ds,
                    decoding_plugin=plugin,
                    allow_excess_frames=False,  # type: ignore[arg-type]
                )
        except BaseException as exc:  # pylibjpeg-rle panics (pyo3 PanicException) are BaseExceptions
            if must_propagate(exc) or isinstance(exc, MemoryError):
                raise
            if "less than expected" in str(exc):
                raise read_error("truncated DICOM file", path, "pixel data is shorter than its size tags say") from None
            text = describe(exc).removeprefix(f"RuntimeError: {_ALL_PLUGINS_FAILED} {plugin}: ")
            if sizes := _WRONG_SIZE.search(text):  # pydicom puts each decoded frame into an array of the header's size
                text = f"it decoded a frame of {sizes[1]} values, Rows x Columns x SamplesPerPixel is {sizes[2]}"
            failures.append(f"{plugin}: {text}" if plugin else text)
            if any(word in text.lower() for word in _MALFORMED_WORDS):
                refused.append(f"{plugin or 'pydicom'} refused it: {text}")
            continue
        if any("excess padding" in str(w.message) for w in caught):  # native data: the frames are whole
            notes.append("the pixel data is longer than its size tags say; the excess was ignored")
        return _decoded(arr, info, plugin or "pydicom", corrupt + refused, path, notes, on_corrupt)
    if ts.is_compressed:
        decoded, why = _decode_with_gdcm(path, ds, max_pixels, timeout)
        if decoded is not None:
            wrong_size = _gdcm_size_problem(ds, decoded[0])
            return _decoded(*decoded, "gdcm", corrupt + refused + wrong_size, path, notes, on_corrupt)
        failures.append(f"gdcm: {why}")
    if corrupt or refused:
        raise corrupt_error("DICOM", path, [*corrupt, *failures])
    raise read_error("cannot decode DICOM pixel data", path, f"{ts.name}; {'; '.join(failures)}")


def _decoded(
    arr: np.ndarray, info: dict, decoder: str, corrupt: list[str], path: str, notes: list[str], on_corrupt: OnCorrupt
) -> tuple[np.ndarray, dict]:
    """What ``decoder`` read, unless the pixel data is malformed (``corrupt``) and ``on_corrupt`` refuses it."""
    if not corrupt:
        return arr, info
    if on_corrupt == "error":
        raise corrupt_error("DICOM", path, corrupt)
    notes.append(f"corrupt pixel data ({'; '.join(corrupt)}); {decoder} decoded it anyway, the pixels may be wrong")
    return arr, info


# What the decoders say of malformed data (lower case): pylibjpeg-rle's panics, Pillow's truncated streams,
# CharLS's structural problems, libjpeg's marker segments cut short, pydicom's RLE segments of the wrong
# length, a decoded frame of the wrong size (numpy cannot fit it in the array). Not Pillow's "broken data
# stream": it says that of codestreams it merely cannot read (pydicom's GDCMJ2K_TextGBR.dcm, which OpenJPEG reads).
_MALFORMED_WORDS = (
    "panicexception",
    "truncated",
    "invalid jpeg-ls stream",
    "run out of data",
    "decoded rle segment data doesn't match",
    "it decoded a frame of",
)
_WRONG_SIZE = re.compile(r"could not broadcast input array from shape \((\d+),?\) into shape \((\d+),?\)")


def _gdcm_size_problem(ds: Dataset, arr: np.ndarray) -> list[str]:
    """GDCM's reader sizes the image by the codestream: its frames, rows and columns unless the header's."""
    size = declared_size(ds)
    found = arr.shape if arr.ndim == 3 else (1, *arr.shape)
    if size is None or found == size[:3]:
        return []
    return [
        f"gdcm decoded {' x '.join(map(str, found))} (frames x rows x columns), the header declares "
        f"{' x '.join(map(str, size[:3]))}"
    ]


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
