"""NPY reader (NumPy's ``.npy`` format, read without unpickling)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from medxai.io.image import LoadedImage, as_image_array, describe, read_error

__all__ = ["read_npy", "range_meta", "mapped_range"]


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


def mapped_range(values: Sequence[float], slope: float = 1.0, intercept: float = 0.0) -> tuple[float, float]:
    """``(lowest, highest)`` of ``values * slope + intercept``, as ints where they are whole."""
    mapped = np.asarray(values, dtype=np.float64) * float(slope) + float(intercept)
    ends = (float(mapped.min()), float(mapped.max()))
    return tuple(int(v) if v.is_integer() else v for v in ends)  # type: ignore[return-value]


def read_npy(path: str | os.PathLike) -> LoadedImage:
    """Reads a ``.npy`` array as an image.

    Shapes: ``(H, W)`` -> ``(H, W, 1)``; ``(H, W, 1|3)`` kept; ``(D, H, W)``
    -> ``(D, H, W, 1)``; ``(D, H, W, 1|3)`` kept. A 3-axis array whose last
    axis is 1 or 3 is read as a 2D image with channels. ``meta`` records the
    dtype's range (:func:`range_meta`; None for float arrays).

    Raises:
        ImageReadError: unreadable, pickled objects, non-numeric, or another shape.
    """
    path = os.fspath(path)
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
    return LoadedImage(array=array, source_path=path, kind="npy", meta={"dtype": str(data.dtype), **range_meta(data.dtype)})
