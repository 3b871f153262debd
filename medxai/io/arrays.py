"""NPY reader (NumPy's ``.npy`` format, read without unpickling)."""

from __future__ import annotations

import os

import numpy as np

from medxai.io.image import LoadedImage, as_image_array, describe, read_error

__all__ = ["read_npy"]


def read_npy(path: str | os.PathLike) -> LoadedImage:
    """Reads a ``.npy`` array as an image.

    Shapes: ``(H, W)`` -> ``(H, W, 1)``; ``(H, W, 1|3)`` kept; ``(D, H, W)``
    -> ``(D, H, W, 1)``; ``(D, H, W, 1|3)`` kept. A 3-axis array whose last
    axis is 1 or 3 is read as a 2D image with channels.

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
    return LoadedImage(array=array, source_path=path, kind="npy", meta={"dtype": str(data.dtype)})
