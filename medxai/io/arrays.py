"""NPY reader (NumPy's ``.npy`` format, read without unpickling)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from medxai.io.image import ImageReadError, LoadedImage, as_image_array, describe, read_error
from medxai.io.limits import check_declared_size

__all__ = ["is_npy", "read_npy", "range_meta", "mapped_range", "value_range_of"]


def range_meta(
    dtype: np.dtype | type, bits: int | None = None, *, slope: float = 1.0, intercept: float = 0.0
) -> dict[str, tuple[float, float] | int | None]:
    """``{"stored_range": (low, high), "bit_depth": bits}`` for data stored as ``dtype``.

    The range an integer ``dtype`` can hold (or its low ``bits``, e.g. 12-bit samples
    decoded into uint16; signed: two's complement), mapped through the linear rescale
    ``v * slope + intercept`` the reader applies (ends swapped for a negative slope);
    a bool is 1 bit, (0, 1). Float data has no stored range: both are None. Ends are
    ints where they are whole numbers.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        low, high, bits = 0, 1, 1
    elif dtype.kind in "iu":
        bits = dtype.itemsize * 8 if bits is None or not 0 < bits <= dtype.itemsize * 8 else int(bits)
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if dtype.kind == "i" else (0, 2**bits - 1)
    else:
        return {"stored_range": None, "bit_depth": None}
    return {"stored_range": mapped_range([low, high], slope, intercept), "bit_depth": bits}


def mapped_range(
    values: Sequence[float] | np.ndarray, slope: float = 1.0, intercept: float = 0.0
) -> tuple[float, float]:
    """``(lowest, highest)`` of ``values * slope + intercept``, as ints where they are whole."""
    mapped = np.asarray(values, dtype=np.float64) * float(slope) + float(intercept)
    ends = (float(mapped.min()), float(mapped.max()))
    low, high = (int(v) if v.is_integer() else v for v in ends)
    return low, high


def value_range_of(array: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of ``array`` as floats; NaN when it holds a NaN."""
    flat = array.reshape(-1)
    return float(flat.min()), float(flat.max())


def _npy_header(path: str) -> tuple[tuple[int, ...], np.dtype, int, int]:
    """Shape, dtype, data offset and file size from a ``.npy`` header, without reading the data."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:  # 3.0 exists only for structured dtypes with non-Latin-1 field names
                raise read_error("unsupported NPY format version", path, f"{version[0]}.{version[1]}")
            return tuple(int(n) for n in shape), np.dtype(dtype), f.tell(), os.fstat(f.fileno()).st_size
    except ImageReadError:
        raise
    except Exception as exc:
        raise read_error("cannot read NPY file", path, describe(exc)) from None


def is_npy(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts a ``.npy`` file."""
    return head.startswith(b"\x93NUMPY")


def read_npy(path: str | os.PathLike, *, max_pixels: int | None = None) -> LoadedImage:
    """Reads a ``.npy`` array as an image.

    Shapes: ``(H, W)`` -> ``(H, W, 1)``; ``(H, W, 1|3)`` kept; ``(D, H, W)``
    -> ``(D, H, W, 1)``; ``(D, H, W, 1|3)`` kept. A 3-axis array whose last
    axis is 1 or 3 is read as a 2D image with channels. ``meta`` records the
    dtype's range (:func:`range_meta`; None for float arrays).

    Args:
        path: the file.
        max_pixels: the most values the header may declare (``data.max_pixels``); None: no limit.

    Raises:
        ImageReadError: unreadable, truncated, too large, pickled objects,
            non-numeric, or another shape.
    """
    path = os.fspath(path)
    shape, dtype, offset, size = _npy_header(path)
    if dtype.hasobject:
        raise read_error("NPY file holds Python objects (pickles are never loaded)", path)
    check_declared_size(shape, path, max_pixels)
    needed = math.prod(shape) * dtype.itemsize
    if size - offset < needed:
        detail = f"its header declares {needed} bytes of data, it holds {size - offset}"
        raise read_error("truncated NPY file", path, detail)
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise read_error("NPY file holds Python objects (pickles are never loaded)", path) from None
        raise read_error("cannot read NPY file", path, describe(exc)) from None
    except Exception as exc:
        raise read_error("cannot read NPY file", path, describe(exc)) from None
    if not isinstance(data, np.ndarray):
        raise read_error("not a single NPY array", path)
    shape = data.shape
    if data.ndim == 2 or (data.ndim == 3 and shape[-1] not in (1, 3)):
        data = data[..., np.newaxis]
    elif not (data.ndim == 3 or (data.ndim == 4 and shape[-1] in (1, 3))):
        raise read_error(
            "unsupported NPY array shape", path, f"shape {shape}; expected (H,W), (H,W,1|3), (D,H,W) or (D,H,W,1|3)"
        )
    array = as_image_array(data, path)
    return LoadedImage(
        array=array, source_path=path, kind="npy", meta={"dtype": str(data.dtype), **range_meta(data.dtype)}
    )
