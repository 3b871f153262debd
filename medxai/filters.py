"""Image filters shared by the methods and the evaluation (numpy/scipy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def gaussian_blur(image: np.ndarray, sigma: float | Sequence[float], *, batch: bool = False) -> np.ndarray:
    """Gaussian blur over the spatial axes of ``(*spatial, C)`` (or ``(N, *spatial, C)`` with ``batch``).

    Channels are never mixed and batch members never blur into each other.

    Args:
        image: Channel-last array.
        sigma: One sigma in pixels, or one per spatial axis.
        batch: The first axis is a batch axis.

    Returns:
        float32 array of the same shape.

    Example:
        >>> gaussian_blur(np.ones((4, 4, 1)), 2.0).round(6).max()
        np.float32(1.0)
    """
    spatial = image.ndim - 1 - int(batch)
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (spatial,))
    full = ((0.0,) if batch else ()) + tuple(sigmas) + (0.0,)
    return ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigma=full, mode="nearest")
