"""Baselines for path methods, in the model's input space (after preprocessing).

"Zero" means zero in the tensor the model sees: after windowing and scaling, not
in Hounsfield units or raw pixel values.
"""

from __future__ import annotations

import numpy as np

from medxai.filters import gaussian_blur

BASELINE_KINDS = ("zeros", "black", "white", "uniform", "blur")
RANDOM_KINDS = ("uniform",)


def default_blur_sigma(spatial_shape: tuple[int, ...]) -> float:
    """Default Gaussian sigma of the ``blur`` baseline: 1/8 of the smallest side."""
    return max(1.0, min(spatial_shape) / 8.0)


def blur(images: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """The ``blur`` baseline of ``(N, *spatial, C)`` images (default sigma: :func:`default_blur_sigma`)."""
    sigma = default_blur_sigma(images.shape[1:-1]) if sigma is None else float(sigma)
    return gaussian_blur(images, sigma, batch=True)


def validate_baseline(baseline: object, n_baselines: int) -> None:
    """Check a baseline setting early (at construction), with a clear message."""
    if isinstance(baseline, str):
        if baseline not in BASELINE_KINDS:
            raise ValueError(f"unknown baseline {baseline!r} (known: {', '.join(BASELINE_KINDS)}, a float or an array)")
    elif not isinstance(baseline, (int, float, np.ndarray)) or isinstance(baseline, bool):
        raise ValueError(f"baseline must be a name, a float or an array, got {type(baseline).__name__}")
    if isinstance(n_baselines, bool) or not isinstance(n_baselines, (int, np.integer)) or n_baselines < 1:
        raise ValueError(f"n_baselines must be a positive integer, got {n_baselines!r}")
    if n_baselines > 1 and not (isinstance(baseline, str) and baseline in RANDOM_KINDS):
        shown = "an array baseline" if isinstance(baseline, np.ndarray) else repr(baseline)
        raise ValueError(
            f"n_baselines={n_baselines} only makes sense for a random baseline "
            f"({', '.join(RANDOM_KINDS)}); {shown} is the same every time"
        )


def make_baselines(
    images: np.ndarray,
    baseline: str | float | np.ndarray = "zeros",
    *,
    n_baselines: int = 1,
    seed: int = 0,
    blur_sigma: float | None = None,
) -> np.ndarray:
    """Baselines for a batch, shape ``(N, n_baselines, *spatial, C)`` float32.

    Args:
        images: ``(N, *spatial, C)`` model inputs.
        baseline: ``"zeros"``/``"black"`` (0), ``"white"`` (each image's maximum),
            ``"uniform"`` (uniform noise between each image's minimum and maximum,
            as the random baselines of Sundararajan et al. 2017), ``"blur"`` (the
            image Gaussian-blurred), a float (that constant) or an array shaped
            like one image or like the batch.
        n_baselines: Random baselines per image (``"uniform"`` only).
        seed: Random baseline ``j`` is drawn from ``(seed, j)`` for every image,
            so a map never depends on the batch it was computed in.
        blur_sigma: Sigma of the ``blur`` baseline in pixels (default 1/8 of the
            smallest spatial side).

    Example:
        >>> make_baselines(np.ones((2, 3, 3, 1)), "white").shape
        (2, 1, 3, 3, 1)
    """
    validate_baseline(baseline, n_baselines)
    images = np.asarray(images, dtype=np.float32)
    n, shape = images.shape[0], images.shape[1:]
    axes = tuple(range(1, images.ndim))
    if isinstance(baseline, np.ndarray):
        array = np.asarray(baseline, dtype=np.float32)
        if array.shape == shape:
            array = np.broadcast_to(array, images.shape)
        elif array.shape != images.shape:
            raise ValueError(
                f"a baseline array must be shaped like one image {shape} or the batch {images.shape}, got {array.shape}"
            )
        result = array[:, None]
    elif isinstance(baseline, (int, float)):
        result = np.full((n, 1, *shape), float(baseline), dtype=np.float32)
    elif baseline in ("zeros", "black"):
        result = np.zeros((n, 1, *shape), dtype=np.float32)
    elif baseline == "white":
        result = np.broadcast_to(images.max(axis=axes, keepdims=True), images.shape)[:, None]
    elif baseline == "blur":
        result = blur(images, blur_sigma)[:, None]
    else:  # uniform
        low = images.min(axis=axes).reshape((n, 1) + (1,) * len(shape))
        high = images.max(axis=axes).reshape((n, 1) + (1,) * len(shape))
        unit = np.stack([np.random.default_rng([seed, j]).random(shape, dtype=np.float32) for j in range(n_baselines)])
        result = low + unit[None] * (high - low)
    return np.ascontiguousarray(result, dtype=np.float32)
