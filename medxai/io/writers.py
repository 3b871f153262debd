"""Atomic file writers: a file is either written whole or not at all.

Each writer writes a temporary file in the destination folder, then renames
it over the destination with ``os.replace`` (atomic on POSIX and Windows when
both are on the same file system). On any failure the temporary file is
removed and the destination is left as it was.

Every ``OSError`` a writer raises names the destination. A full disk (or an
exceeded quota, or a short write) is a :class:`DiskFullError`, which also says
how many bytes the write wanted and how many are free. Temporary names are
``.<name>.<12 hex>.tmp`` (the DICOM export's folder swaps add ``.old``):
:func:`remove_stale_temps` removes those a killed run left behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

__all__ = [
    "PROBE_NAME",
    "STALE_TEMP",
    "DiskFullError",
    "atomic_write_bytes",
    "atomic_open",
    "human_bytes",
    "is_disk_full",
    "npy_problem",
    "probe_writable",
    "read_npy",
    "remove_stale_temps",
    "write_npy",
    "write_png",
    "write_text",
]

#: errno values that mean "no room for this write".
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
#: numpy's message for a short ``fwrite`` (a full disk seen through C stdio, without errno).
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")
#: The temporary names of the writers (and of the DICOM export's folder swaps).
STALE_TEMP = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{12}\.(tmp|old)$")
#: The name :func:`probe_writable` writes (as ``.<name>.<12 hex>.tmp``) and deletes.
PROBE_NAME = "medxai-probe"


class DiskFullError(OSError):
    """No space left on the device (or quota exceeded) while writing ``path``.

    Attributes:
        path: the file being written.
        needed: bytes the failed write wanted (None when unknown).
        free: bytes free on that file system when it failed (None when unknown).
    """

    path: str = ""
    needed: int | None = None
    free: int | None = None


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` means the disk (or the user's quota) is full: ENOSPC, EDQUOT, EFBIG or a short write."""
    if isinstance(err, DiskFullError):
        return True
    if not isinstance(err, OSError):
        return False
    return err.errno in _FULL or bool(_SHORT_WRITE.search(str(err)))


def human_bytes(n: int | None) -> str:
    """``n`` bytes as text for people: ``512 B``, ``4.2 KiB``, ``1.5 GiB``."""
    if n is None:
        return "an unknown amount"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            if candidate.exists():
                return shutil.disk_usage(candidate).free
    return None


def _naming(err: OSError, path: Path, size: int | None) -> OSError:
    """``err`` as an error that names ``path`` (a :class:`DiskFullError` for a full disk)."""
    if getattr(err, "_medxai_path", None) is not None:
        return err  # already named (a nested writer)
    reason = err.strerror or str(err) or type(err).__name__
    if is_disk_full(err):
        short = _SHORT_WRITE.search(str(err))
        needed = size if size is not None else (int(short.group(1)) - int(short.group(2)) if short else None)
        code = err.errno if err.errno in _FULL else errno.ENOSPC
        free = _free_bytes(path.parent)
        what = "the disk quota is exceeded" if code == getattr(errno, "EDQUOT", None) else "no space left on the device"
        full = DiskFullError(
            code,
            f"{what} writing {path} (the write needed {human_bytes(needed)}; {human_bytes(free)} free there"
            + (f"; {short.group(0)})" if short else ")"),
        )
        full.path, full.needed, full.free = os.fspath(path), needed, free
        named: OSError = full
    elif err.errno is not None:
        named = OSError(err.errno, f"cannot write {path}: {reason}")  # OSError picks the subclass (PermissionError...)
    else:
        named = OSError(f"cannot write {path}: {reason}")
    named._medxai_path = os.fspath(path)  # type: ignore[attr-defined]
    return named


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, *, fsync: bool = False, size: int | None = None) -> Iterator[BinaryIO]:
    """Opens a binary temporary file that replaces ``path`` on a clean exit.

    Creates missing parent folders. If the ``with`` body raises, the temporary
    file is deleted and ``path`` is untouched.

    Args:
        path: the destination.
        fsync: flush the data to disk before the rename (slower, survives power loss).
        size: the bytes about to be written, if known: a full disk's error reports it.

    Raises:
        DiskFullError: no space left (ENOSPC, EDQUOT, a short write); names ``path``.
        OSError: any other failure to write, naming ``path``.
    """
    target = Path(os.fspath(path))
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # os.open with mode 0o666 lets the umask decide permissions, like a plain open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as err:
        raise _naming(err, target, size) from err
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _naming(err, target, size) from err
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    """Writes ``data`` to ``path`` atomically (see module docstring)."""
    with atomic_open(path, fsync=fsync, size=len(data)) as f:
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
    with atomic_open(path, size=array.nbytes + 128) as f:
        np.save(f, array, allow_pickle=False)


def write_png(path: str | os.PathLike, rgb_or_grey: np.ndarray, text: Mapping[str, str] | None = None) -> None:
    """Writes an 8-bit PNG: grey ``(H, W)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)``.

    Args:
        path: the destination.
        rgb_or_grey: uint8, or float in [0, 1] (scaled by 255 and rounded).
        text: ``tEXt`` chunks to write (Latin-1 keys and values), e.g. a picture's layout.

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
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG", compress_level=1, pnginfo=info)
    atomic_write_bytes(path, buffer.getvalue())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` as UTF-8, byte for byte (no newline translation)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def npy_problem(path: str | os.PathLike, size: int | None = None) -> str | None:
    """What is wrong with a written ``.npy`` file, or None when it is whole.

    Reads the header only: the file must exist, parse as NPY, and hold exactly
    the bytes its header announces (and ``size`` bytes, when given).
    """
    path = Path(os.fspath(path))
    try:
        actual = path.stat().st_size
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                offset = f.tell()
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                offset = f.tell()
            else:  # NPY 3.0 (utf-8 field names) has no public header reader: map the file instead
                mapped = np.load(path, mmap_mode="r", allow_pickle=False)
                shape, dtype, offset = mapped.shape, mapped.dtype, mapped.offset
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, ValueError, EOFError) as err:
        return f"{path} is not a readable .npy file ({err or type(err).__name__})"
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if actual != expected:
        return f"{path} is truncated or damaged: {actual} bytes, its header announces {expected}"
    if size is not None and actual != size:
        return f"{path} has {actual} bytes, the index recorded {size}"
    return None


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Reads a ``.npy`` map (no pickles).

    Raises:
        ValueError: the file is missing, truncated or not NPY; the message names it.
    """
    problem = npy_problem(path)
    if problem is not None:
        raise ValueError(problem)
    try:
        return np.load(os.fspath(path), allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"cannot read {os.fspath(path)}: {err or type(err).__name__}") from err


def probe_writable(folder: str | os.PathLike) -> None:
    """Checks that ``folder`` can be created and written: creates it, writes and deletes a small file.

    Folders created for the check are removed again, so a check leaves nothing behind.

    Raises:
        OSError: the folder (or a parent) is a file, or cannot be created or written; names the path.
    """
    folder = Path(os.fspath(folder))
    missing = []
    current = folder
    while not current.exists() and not current.is_symlink() and current != current.parent:
        missing.append(current)
        current = current.parent
    if current.exists() and not current.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{current} is a file, not a folder")
    probe = folder / f".{PROBE_NAME}.{secrets.token_hex(6)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, b"medxai")
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    except OSError as err:
        raise _naming(err, folder, None) from err
    finally:
        for created in missing:  # deepest first
            with contextlib.suppress(OSError):
                created.rmdir()


def remove_stale_temps(folder: str | os.PathLike, only: Callable[[str], bool] | None = None) -> list[str]:
    """Removes the temporary files and swap folders a killed writer left under ``folder``.

    Only names of the form ``.<name>.<12 hex digits>.tmp`` or ``.old`` are touched;
    call it only while no writer works there (e.g. holding the run folder's lock).

    Args:
        folder: The folder to sweep.
        only: None sweeps the whole tree under ``folder`` (a folder only the writers fill).
            Otherwise only the top level of ``folder`` is swept, and only the temporary names
            ``only`` accepts: the folder holds other files too, and those are never touched.

    Returns:
        The removed paths, relative to ``folder``.
    """
    root = Path(os.fspath(folder))
    removed: list[str] = []
    for base, dirs, files in os.walk(root):
        for name in [d for d in dirs if STALE_TEMP.match(d) and (only is None or only(d))]:
            dirs.remove(name)  # not descended into: removed whole
            path = Path(base) / name
            if path.is_symlink():
                with contextlib.suppress(OSError):
                    path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path.relative_to(root).as_posix())
        for name in files:
            if STALE_TEMP.match(name) and (only is None or only(name)):
                path = Path(base) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path.relative_to(root).as_posix())
        if only is not None:
            break  # the top level only
    return sorted(removed)
