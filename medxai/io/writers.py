"""Atomic file writers: a file is either written whole or not at all.

Each writer writes a temporary file in the destination folder, then renames
it over the destination with ``os.replace`` (atomic on POSIX and Windows when
both are on the same file system). On any failure the temporary file is
removed and the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

__all__ = ["atomic_write_bytes", "atomic_open", "write_npy", "write_png", "write_text"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[BinaryIO]:
    """Opens a binary temporary file that replaces ``path`` on a clean exit.

    Creates missing parent folders. If the ``with`` body raises, the temporary
    file is deleted and ``path`` is untouched.

    Args:
        path: the destination.
        fsync: flush the data to disk before the rename (slower, survives power loss).
    """
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 lets the umask decide permissions, like a plain open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    """Writes ``data`` to ``path`` atomically (see module docstring)."""
    with atomic_open(path, fsync=fsync) as f:
        f.write(data)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes one array as ``.npy`` (NumPy format, no pickles), exactly as given.

    ``path`` is used as is (no ``.npy`` is appended). The dtype is kept, so a
    float32 map reads back bit for bit.

    Raises:
        ValueError: an object array (it would need pickling).
    """
    array = np.asanyarray(array)
    if array.dtype.hasobject:
        raise ValueError(f"cannot write an object array as NPY: {os.fspath(path)}")
    with atomic_open(path) as f:
        np.save(f, array, allow_pickle=False)


def write_png(path: str | os.PathLike, rgb_or_grey: np.ndarray) -> None:
    """Writes an 8-bit PNG: grey ``(H, W)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)``.

    Args:
        path: the destination.
        rgb_or_grey: uint8, or float in [0, 1] (scaled by 255 and rounded).

    Raises:
        ValueError: another shape or dtype, or floats outside [0, 1] or not finite.
    """
    arr = np.asarray(rgb_or_grey)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))) or 0 in arr.shape:
        raise ValueError(f"PNG needs shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError("PNG data contains NaN or infinite values")
        # Tolerate float round-off just outside [0, 1]; anything more is a bug upstream.
        if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
            raise ValueError(f"float PNG data must lie in [0, 1], got [{arr.min()}, {arr.max()}]")
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValueError(f"PNG data must be uint8 or float in [0, 1], got {arr.dtype}")
    buffer = io.BytesIO()
    # zlib level 1: about 3x faster to encode than the default 6 for ~15 % larger files;
    # PNGs are for looking at (the exact maps are the .npy files), and writing them is on the hot path.
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG", compress_level=1)
    atomic_write_bytes(path, buffer.getvalue())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` as UTF-8, byte for byte (no newline translation)."""
    atomic_write_bytes(path, text.encode("utf-8"))
