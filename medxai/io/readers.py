"""``read_image``: one entry point for every supported image file."""

from __future__ import annotations

import gzip
import math
import numbers
import os
import stat
from pathlib import Path

from medxai.io.arrays import read_npy, value_range_of
from medxai.io.dicom import has_dicom_magic, looks_like_bare_dataset, read_dicom
from medxai.io.dicom_series import read_dicom_series
from medxai.io.image import LoadedImage, describe, read_error
from medxai.io.limits import call_with_timeout, convert_failure, must_propagate, regular_file
from medxai.io.nifti import nifti_version, read_nifti
from medxai.io.raster import read_raster

__all__ = ["read_image", "supported_suffixes", "sniff_kind", "kind_from_suffix"]

_SUFFIX_KIND = {
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".npy": "npy",
    ".nii": "nifti",
    ".nii.gz": "nifti",
}
_NAMES = {"dicom": "DICOM", "png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "npy": "NPY", "nifti": "NIfTI"}
_HEAD_BYTES = 1024


def supported_suffixes() -> tuple[str, ...]:
    """The file suffixes :func:`read_image` knows (lower case, with the dot).

    Files without a suffix are read too when they are DICOM (``DICM`` marker).
    """
    return tuple(_SUFFIX_KIND)


def kind_from_suffix(path: str | os.PathLike) -> str | None:
    """The kind a file's suffix promises (case-insensitive), or None."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return "nifti"
    return _SUFFIX_KIND.get(Path(name).suffix)


def sniff_kind(head: bytes) -> str | None:
    """The kind of file ``head`` (its first bytes) starts, by magic number, or None."""
    # DICOM first: a PS3.10 preamble may itself hold a TIFF header (dual-format files).
    if has_dicom_magic(head):
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if nifti_version(head):
        return "nifti"
    return None


def _gzipped_kind(path: Path) -> str | None:
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except Exception:
        return None
    return "nifti" if nifti_version(head) else None


def read_image(
    path: str | os.PathLike,
    *,
    series_uid: str | None = None,
    max_pixels: int | None = None,
    timeout: float | None = None,
    max_abandoned: int | None = None,
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

    Raises:
        ImageReadError: for every per-file problem; the message names the file.
        ValueError: ``max_pixels``, ``timeout`` or ``max_abandoned`` is not positive (a caller's bug).
    """
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
        max_pixels = int(max_pixels)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        timeout = None if math.isinf(timeout) else float(timeout)
    if max_abandoned is not None and (isinstance(max_abandoned, bool) or not isinstance(max_abandoned, numbers.Integral) or max_abandoned < 1):
        raise ValueError(f"max_abandoned must be a positive integer or None, got {max_abandoned!r}")
    p = Path(os.fspath(path))
    try:
        return call_with_timeout(lambda: _read_image(p, series_uid, max_pixels, timeout), timeout, p, max_abandoned)
    except BaseException as exc:
        if must_propagate(exc):
            raise
        raise convert_failure(exc, p) from None


def _read_image(p: Path, series_uid: str | None, max_pixels: int | None, timeout: float | None) -> LoadedImage:
    st = regular_file(p, allow_dir=True)
    if stat.S_ISDIR(st.st_mode):
        return _finish(read_dicom_series(p, series_uid, max_pixels=max_pixels, timeout=timeout))
    if st.st_size == 0:
        raise read_error("empty file", p)
    try:
        with open(p, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        raise read_error("cannot open file", p, describe(exc)) from None

    expected = kind_from_suffix(p)
    kind = sniff_kind(head)
    force_dicom = False
    if kind is None and head[:2] == b"\x1f\x8b":
        kind = _gzipped_kind(p)
    if kind is None and expected in ("dicom", None) and looks_like_bare_dataset(head):
        kind, force_dicom = "dicom", True
    if kind is None:
        if expected is None:
            raise read_error("unsupported file type", p, f"supported: {', '.join(supported_suffixes())}")
        raise read_error(f"not a {_NAMES[expected]} file", p, "its content is not recognised")

    try:
        image = _read(p, kind, force_dicom, max_pixels, timeout)
    except BaseException as exc:  # a safety net: library errors (even Rust panics) never escape
        if must_propagate(exc):
            raise
        raise convert_failure(exc, p, f"cannot read {_NAMES[kind]} file") from None
    image = _finish(image)
    if expected is not None and expected != kind:
        image.meta["suffix_mismatch"] = f"named as {_NAMES[expected]}, content is {_NAMES[kind]}"
        image.meta["warnings"].append(f"the file is named as {_NAMES[expected]} but its content is {_NAMES[kind]}")
    if series_uid is not None and image.meta.get("SeriesInstanceUID") != series_uid:
        found = image.meta.get("SeriesInstanceUID") or f"none (a {_NAMES[kind]} file)"
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


def _read(path: Path, kind: str, force_dicom: bool, max_pixels: int | None, timeout: float | None) -> LoadedImage:
    if kind == "dicom":
        return read_dicom(path, force=force_dicom, max_pixels=max_pixels, timeout=timeout)
    if kind in ("png", "jpeg", "tiff"):
        return read_raster(path, kind, max_pixels=max_pixels)
    if kind == "npy":
        return read_npy(path, max_pixels=max_pixels)
    return read_nifti(path, max_pixels=max_pixels)
