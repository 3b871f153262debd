"""DICOM size guards: what a file may declare and hold, checked before pydicom or a decoder allocates it.

With ``max_pixels`` (``data.max_pixels``), memory follows the setting, not the
file: the declared size (Rows x Columns x NumberOfFrames x SamplesPerPixel) is
checked before any pixel is decoded; so is the size each compressed frame's own
codestream header declares (JPEG SOFn, JPEG-LS SOF55, JPEG 2000 SIZ), which the
decoders allocate by; the file itself, or a deflated data set once inflated, may
hold at most :func:`max_file_bytes` bytes.

:func:`check_codestreams` also finds what makes compressed pixel data malformed
(``data.on_corrupt`` decides what then happens): an RLE frame whose header or
segments do not decode to its size (:mod:`medxai.io.dicom_rle`), a JPEG or JPEG 2000
codestream cut before its end marker or with data after it, frames past
NumberOfFrames.
"""

from __future__ import annotations

import os
import struct
import zlib

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.filereader import read_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from medxai.io.dicom_rle import rle_frame_problem
from medxai.io.image import ImageReadError, describe, read_error
from medxai.io.limits import check_declared_size

__all__ = [
    "check_codestreams",
    "check_dicom_size",
    "check_file_bytes",
    "codestream_end_problem",
    "codestream_size",
    "declared_size",
    "max_file_bytes",
]

#: Room for everything in a DICOM file but its pixels (overlays, icons, private data).
_HEADER_ROOM = 64 << 20
# JPEG (ISO 10918) SOFn and DHP markers, and JPEG-LS SOF55: Lf, P, Y, X, Nf follow.
_SOF_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xDE, 0xF7})
# The transfer syntaxes whose frames are one codestream ending in FFD9: JPEG's and JPEG-LS's EOI, JPEG 2000's EOC.
_ENDS_WITH_FFD9 = frozenset({*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes})
_END_MARKER = b"\xff\xd9"


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


def codestream_end_problem(frame: bytes) -> str | None:
    """What is wrong with the end of a JPEG, JPEG-LS or JPEG 2000 codestream, or None.

    It must end with its end marker (FFD9: EOI, or JPEG 2000's EOC), then at most the
    one pad byte that makes a fragment's length even.
    """
    size = len(frame)
    if frame.endswith(_END_MARKER) or frame[size - 3 : size - 1] == _END_MARKER:
        return None
    at = frame.rfind(_END_MARKER)
    if at < 0:
        return f"the {size}-byte codestream ends without its end marker (FFD9): truncated"
    return f"{size - at - 2} bytes follow the codestream's end marker (FFD9) at byte {at} of {size}"


def check_codestreams(ds: Dataset, ts: UID, path: str) -> list[str]:
    """Refuses encapsulated pixel data that cannot be split into frames, or declares more than the header in a frame;
    returns what makes it malformed.

    The JPEG family's decoders allocate what the codestream declares, before
    pydicom compares it with Rows and Columns: a 3 KB frame declaring
    40000 x 40000 would take gigabytes. Malformed item tags or lengths are
    refused here, before the GDCM fallback, which spends seconds and
    gigabytes on them.

    Returns:
        What is malformed, one sentence per frame at fault (``"frame 2 of 3: RLE segment 1 of 2 ..."``): an
        RLE frame that does not decode to its size, a codestream cut short or followed by data, frames past
        NumberOfFrames. Empty when nothing is.
    """
    if not ts.is_encapsulated or "PixelData" not in ds:
        return []
    size = declared_size(ds)
    if size is None:
        return []
    frames, rows, cols, samples = size
    segments = _rle_segments(ds, samples) if ts == RLELossless else None
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    problems: list[str] = []
    try:
        for k, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=frames, extended_offsets=offsets)):
            if k >= frames:
                problems.append(f"the pixel data holds more frames than NumberOfFrames = {frames}")
                break
            if ts == RLELossless:  # no codestream size: RLE decoders allocate by Rows and Columns
                problem = None if segments is None else rle_frame_problem(frame, rows, cols, segments)
                if problem is not None:
                    problems.append(f"frame {k + 1} of {frames}: {problem}")
                continue
            if ts in _ENDS_WITH_FFD9 and (problem := codestream_end_problem(frame)) is not None:
                problems.append(f"frame {k + 1} of {frames}: {problem}")
            found = codestream_size(frame)
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
    return problems


def _rle_segments(ds: Dataset, samples: int) -> int | None:
    """The segments an RLE frame holds: SamplesPerPixel x BitsAllocated / 8; None for bits the decoders refuse."""
    try:
        bits = int(ds.get("BitsAllocated") or 0)
    except Exception:  # a malformed value: the decoder refuses the file with the details
        return None
    return samples * bits // 8 if bits > 0 and bits % 8 == 0 and samples > 0 else None


def check_file_bytes(path: str, max_pixels: int | None) -> None:
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
