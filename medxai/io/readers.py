"""``read_image``: one entry point for every image file, and the table of input formats it reads.

An input format is one module (its ``sniff`` and ``read``) plus one :func:`register_reader` call;
the suffix lookup, the content sniffing, the dispatch and :func:`supported_suffixes` all derive
from :data:`READERS`.
"""

from __future__ import annotations

import functools
import gzip
import inspect
import math
import numbers
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from medxai.io.arrays import is_npy, read_npy, value_range_of
from medxai.io.dicom import has_dicom_magic, looks_like_bare_dataset, read_dicom
from medxai.io.dicom_series import read_dicom_series
from medxai.io.image import LoadedImage, describe, read_error
from medxai.io.limits import (
    OnCorrupt,
    call_with_timeout,
    check_on_corrupt,
    convert_failure,
    must_propagate,
    regular_file,
)
from medxai.io.nifti import is_nifti, read_nifti
from medxai.io.raster import is_jpeg, is_png, is_tiff, read_raster

__all__ = [
    "READERS",
    "ReadFunction",
    "Reader",
    "kind_from_suffix",
    "read_image",
    "register_reader",
    "sniff_kind",
    "supported_suffixes",
    "unregister_reader",
]

_HEAD_BYTES = 1024


class ReadFunction(Protocol):
    """What a reader's ``read`` is: reads one file whose content its ``sniff`` recognised."""

    def __call__(
        self, path: Path, *, max_pixels: int | None, timeout: float | None, on_corrupt: OnCorrupt
    ) -> LoadedImage:
        """Reads ``path``; ``max_pixels`` bounds what may be decoded, ``timeout`` what a child process may take.

        ``on_corrupt``: what malformed pixel data is, where the format can tell (``"error"``:
        a :class:`~medxai.errors.CorruptPixelDataError`; ``"warn"``: the decoded image, with a warning).

        Raises:
            ImageReadError: the file cannot be read (anything else raised becomes one too).
        """


@dataclass(frozen=True)
class Reader:
    """One input format: how :func:`read_image` recognises it and reads it.

    Attributes:
        kind: the format's key, ``LoadedImage.kind`` of what it reads (e.g. ``"png"``).
        name: how messages name it (e.g. ``"PNG"``).
        suffixes: the file suffixes that promise it, lower case with the dot (``".nii.gz"`` too).
        sniff: True when a file's first bytes (up to 1024 of them) start this format.
        read: reads a file of this format (:class:`ReadFunction`).
        gzipped: its files may be gzip-compressed: a gzipped file is sniffed on its decompressed start.
        sniff_unmarked: a weaker check, trusted only when no reader's ``sniff`` recognised the file and
            its suffix is this format's or absent (a DICOM data set without its preamble).
    """

    kind: str
    name: str
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    read: ReadFunction
    gzipped: bool = False
    sniff_unmarked: Callable[[bytes], bool] | None = None


#: The input formats, by kind, in the order their ``sniff`` is tried; change it through
#: :func:`register_reader` and :func:`unregister_reader`.
READERS: dict[str, Reader] = {}


def register_reader(
    kind: str,
    *,
    suffixes: Iterable[str],
    sniff: Callable[[bytes], bool],
    read: ReadFunction,
    name: str | None = None,
    gzipped: bool = False,
    sniff_unmarked: Callable[[bytes], bool] | None = None,
) -> Reader:
    """Adds an input format to :data:`READERS`: :func:`read_image` reads it from then on.

    Its ``sniff`` is tried after those of the formats already registered.

    Args:
        kind: the format's key (a new one).
        suffixes: the suffixes that promise it, e.g. ``(".toy",)``; no other reader may claim one.
        sniff: True when a file's first bytes start this format.
        read: reads one file (see :class:`ReadFunction`).
        name: how messages name the format; ``kind`` in upper case by default.
        gzipped: see :class:`Reader`.
        sniff_unmarked: see :class:`Reader`.

    Returns:
        The registered :class:`Reader`.

    Raises:
        ValueError: the kind is taken, a suffix is malformed or claimed by another reader.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"a reader's kind is a non-empty string, got {kind!r}")
    if kind in READERS:
        raise ValueError(f"a reader for {kind!r} is already registered")
    suffixes = tuple(suffixes)
    claimed = {suffix: other.kind for other in READERS.values() for suffix in other.suffixes}
    for suffix in suffixes:
        if not isinstance(suffix, str) or not suffix.startswith(".") or len(suffix) < 2 or suffix != suffix.lower():
            raise ValueError(f"a suffix is lower case and starts with a dot, got {suffix!r}")
        if suffix in claimed:
            raise ValueError(f"the suffix {suffix!r} is already read as {claimed[suffix]!r}")
    reader = Reader(kind, name or kind.upper(), suffixes, sniff, _with_on_corrupt(read), gzipped, sniff_unmarked)
    READERS[kind] = reader
    return reader


def _with_on_corrupt(read: Callable[..., LoadedImage]) -> ReadFunction:
    """``read`` as a :class:`ReadFunction`: a reader written before ``on_corrupt`` (``read(path, *,
    max_pixels, timeout)``) is called without it (its format cannot tell damaged data)."""
    try:
        parameters = inspect.signature(read).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): call it as documented
        return read
    if any(p.name == "on_corrupt" or p.kind is p.VAR_KEYWORD for p in parameters):
        return read

    def read_without(
        path: Path, *, max_pixels: int | None, timeout: float | None, on_corrupt: OnCorrupt
    ) -> LoadedImage:
        return read(path, max_pixels=max_pixels, timeout=timeout)

    return read_without


def unregister_reader(kind: str) -> None:
    """Removes an input format from :data:`READERS` (a KeyError when it is not there)."""
    del READERS[kind]


def supported_suffixes() -> tuple[str, ...]:
    """The file suffixes :func:`read_image` knows (lower case, with the dot).

    Files without a suffix are read too when they are DICOM (``DICM`` marker).
    """
    return tuple(suffix for reader in READERS.values() for suffix in reader.suffixes)


def kind_from_suffix(path: str | os.PathLike) -> str | None:
    """The kind a file's suffix promises (case-insensitive; the longest suffix wins), or None."""
    name = Path(path).name.lower()
    matches = [
        (len(suffix), reader.kind)
        for reader in READERS.values()
        for suffix in reader.suffixes
        if name.endswith(suffix) and len(name) > len(suffix)
    ]
    return max(matches)[1] if matches else None


def sniff_kind(head: bytes) -> str | None:
    """The kind of file ``head`` (its first bytes) starts, by magic number, or None."""
    return next((reader.kind for reader in READERS.values() if reader.sniff(head)), None)


def _gzipped_kind(path: Path) -> str | None:
    """The kind a gzipped file's decompressed start shows, among the readers that take gzipped files."""
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except Exception:
        return None
    return next((reader.kind for reader in READERS.values() if reader.gzipped and reader.sniff(head)), None)


def _unmarked_kind(head: bytes, expected: str | None) -> str | None:
    """The kind a reader's ``sniff_unmarked`` finds, trusted only when the suffix promises it or nothing."""
    return next(
        (
            reader.kind
            for reader in READERS.values()
            if reader.sniff_unmarked is not None and expected in (reader.kind, None) and reader.sniff_unmarked(head)
        ),
        None,
    )


def read_image(
    path: str | os.PathLike,
    *,
    series_uid: str | None = None,
    max_pixels: int | None = None,
    timeout: float | None = None,
    max_abandoned: int | None = None,
    on_corrupt: OnCorrupt = "error",
) -> LoadedImage:
    """Reads any supported image file (see :func:`supported_suffixes`), or a DICOM series folder.

    The kind comes from the file's content (magic numbers) when it is
    recognisable, else from its suffix; a file whose content contradicts its
    suffix and is not recognisable (e.g. text named ``.dcm``) is refused. A
    folder is read as one DICOM series volume
    (:func:`medxai.io.dicom_series.read_dicom_series`). Only regular files and
    folders are read: a FIFO, socket or device is refused (it could block forever).

    Hostile files cannot take the caller down (:mod:`medxai.io.limits`):
    anything reading raises, including decoder panics and ``MemoryError``,
    becomes an :class:`ImageReadError`; ``max_pixels`` bounds what is decoded
    by the size the header declares; ``timeout`` bounds the time.

    ``meta["warnings"]`` lists what the user should know about a readable image,
    as sentences (e.g. "the image is constant (every pixel is 0)", an invalid
    DICOM window that was ignored, a suffix that lies); ``meta["value_range"]``
    is the array's ``(min, max)``.

    Args:
        path: an image file or a DICOM series folder.
        series_uid: the SeriesInstanceUID to read from a folder of several series;
            for a file, the series it must belong to.
        max_pixels: the most values (pixels x channels x frames or slices) an
            image may declare (``data.max_pixels``); checked on the header,
            before decoding. None: no limit.
        timeout: seconds the read may take (``runtime.read_timeout``); None: no
            limit. A read that runs over is abandoned to finish in the
            background (see :func:`medxai.io.limits.call_with_timeout`).
        max_abandoned: with a ``timeout``, the most abandoned reads that may still
            run when this one starts (``runtime.max_abandoned_reads``); at that many
            it waits up to ``timeout`` for one to end, else it is refused. None: no bound.
        on_corrupt: malformed compressed pixel data (an RLE segment that decodes to more or fewer
            bytes than the frame needs, a truncated or overlong JPEG/JPEG 2000 codestream, data past the
            declared frames, a decoder that reports the data malformed) raises
            :class:`~medxai.errors.CorruptPixelDataError` (``"error"``), or is read as a decoder reads it,
            with a warning naming the decoder and what is wrong (``"warn"``) (``data.on_corrupt``).

    Raises:
        ImageReadError: for every per-file problem; the message names the file.
        CorruptPixelDataError: malformed pixel data (an :class:`ImageReadError`), with ``on_corrupt="error"``.
        ValueError: ``max_pixels``, ``timeout`` or ``max_abandoned`` is not positive, or ``on_corrupt``
            is not ``"error"`` or ``"warn"`` (a caller's bug).
    """
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
        max_pixels = int(max_pixels)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        timeout = None if math.isinf(timeout) else float(timeout)
    if max_abandoned is not None and (
        isinstance(max_abandoned, bool) or not isinstance(max_abandoned, numbers.Integral) or max_abandoned < 1
    ):
        raise ValueError(f"max_abandoned must be a positive integer or None, got {max_abandoned!r}")
    on_corrupt = check_on_corrupt(on_corrupt)
    p = Path(os.fspath(path))
    try:
        return call_with_timeout(
            lambda: _read_image(p, series_uid, max_pixels, timeout, on_corrupt), timeout, p, max_abandoned
        )
    except BaseException as exc:
        if must_propagate(exc):
            raise
        raise convert_failure(exc, p) from None


def _read_image(
    p: Path, series_uid: str | None, max_pixels: int | None, timeout: float | None, on_corrupt: OnCorrupt
) -> LoadedImage:
    st = regular_file(p, allow_dir=True)
    if stat.S_ISDIR(st.st_mode):
        return _finish(read_dicom_series(p, series_uid, max_pixels=max_pixels, timeout=timeout, on_corrupt=on_corrupt))
    if st.st_size == 0:
        raise read_error("empty file", p)
    try:
        with open(p, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        raise read_error("cannot open file", p, describe(exc)) from None

    expected = kind_from_suffix(p)
    kind = sniff_kind(head)
    if kind is None and head[:2] == b"\x1f\x8b":
        kind = _gzipped_kind(p)
    if kind is None:
        kind = _unmarked_kind(head, expected)
    if kind is None:
        if expected is None:
            raise read_error("unsupported file type", p, f"supported: {', '.join(supported_suffixes())}")
        raise read_error(f"not a {READERS[expected].name} file", p, "its content is not recognised")

    reader = READERS[kind]
    try:
        image = reader.read(p, max_pixels=max_pixels, timeout=timeout, on_corrupt=on_corrupt)
    except BaseException as exc:  # a safety net: library errors (even Rust panics) never escape
        if must_propagate(exc):
            raise
        raise convert_failure(exc, p, f"cannot read {reader.name} file") from None
    image = _finish(image)
    if expected is not None and expected != kind:
        promised = READERS[expected].name
        image.meta["suffix_mismatch"] = f"named as {promised}, content is {reader.name}"
        image.meta["warnings"].append(f"the file is named as {promised} but its content is {reader.name}")
    if series_uid is not None and image.meta.get("SeriesInstanceUID") != series_uid:
        found = image.meta.get("SeriesInstanceUID") or f"none (a {reader.name} file)"
        raise read_error(f"the file is not in series {series_uid}", p, f"its series: {found}")
    return image


def _finish(image: LoadedImage) -> LoadedImage:
    """Adds ``meta["value_range"]`` and ``meta["warnings"]`` (with one for a constant image)."""
    warnings_ = image.meta.setdefault("warnings", [])
    value_range = image.meta.get("value_range")
    if value_range is None:
        value_range = image.meta["value_range"] = value_range_of(image.array)
    low, high = value_range
    if low == high:  # False for NaN
        warnings_.append(f"the image is constant (every pixel is {low:g})")
    return image


def _untimed(read: Callable[..., LoadedImage], *args: Any) -> ReadFunction:
    """``read(path, *args, max_pixels=...)`` as a :class:`ReadFunction`: a reader no child process runs,
    whose time :func:`read_image` bounds from outside, and whose decoder refuses malformed data itself."""

    def read_file(path: Path, *, max_pixels: int | None, timeout: float | None, on_corrupt: OnCorrupt) -> LoadedImage:
        return read(path, *args, max_pixels=max_pixels)

    return read_file


# The built-in formats, DICOM first: a PS3.10 preamble may itself hold a TIFF header (dual-format files).
# ``force=True``: a file is read as DICOM only once its content is known to be one, marked or bare.
register_reader(
    "dicom",
    name="DICOM",
    suffixes=(".dcm", ".dicom"),
    sniff=has_dicom_magic,
    read=functools.partial(read_dicom, force=True),
    sniff_unmarked=looks_like_bare_dataset,
)
register_reader("png", suffixes=(".png",), sniff=is_png, read=_untimed(read_raster, "png"))
register_reader("jpeg", suffixes=(".jpg", ".jpeg"), sniff=is_jpeg, read=_untimed(read_raster, "jpeg"))
register_reader("tiff", suffixes=(".tif", ".tiff"), sniff=is_tiff, read=_untimed(read_raster, "tiff"))
register_reader("npy", suffixes=(".npy",), sniff=is_npy, read=_untimed(read_npy))
register_reader(
    "nifti", name="NIfTI", suffixes=(".nii", ".nii.gz"), sniff=is_nifti, read=_untimed(read_nifti), gzipped=True
)
