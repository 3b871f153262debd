"""Faithfulness of a map to the model: deletion and insertion curves (RISE).

A faithful map ranks pixels by how much the model's score depends on them.
*Deletion* replaces the most important pixels first with a baseline and
watches the score fall (a small area under the curve is good); *insertion*
starts from the baseline and puts the most important pixels back first (a
large area is good).

Everything here works in the model's input space: ``image`` is the tensor the
model sees (after windowing and scaling), and so is the baseline, so
``baseline="zeros"`` means zeros in that space. ``predict`` is any callable,
for a Keras model e.g. ``lambda x: model(x, training=False)[:, class_index]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from medxai.filters import gaussian_blur
from medxai.metrics.scores import _as_map, _top_pixels

__all__ = ["deletion_curve", "insertion_curve", "curve_area"]

Baseline = Literal["blur", "zeros"] | float | ArrayLike
Predict = Callable[[np.ndarray], ArrayLike]

# np.trapezoid is numpy >= 2.0; np.trapz is the same rule under its old name.
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009 (absent in new numpy)


def deletion_curve(
    predict: Predict,
    image: ArrayLike,
    heatmap: ArrayLike,
    *,
    baseline: Baseline = "blur",
    step_percent: float = 5.0,
    batch_size: int = 32,
    blur_sigma: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score as the most important pixels are replaced by the baseline.

    Pixels are ranked by ``heatmap`` (largest first; ties go to the lower
    flat C-order index). Step ``i`` replaces the first
    ``round(i * step_percent / 100 * n_pixels)`` of them, all channels of a
    pixel together, from 0 % up to 100 % (the last step is always 100 %;
    steps that would replace the same number of pixels are merged). All
    perturbed images go through ``predict`` in batches of at most
    ``batch_size``.

    Args:
        predict: Callable taking a float32 batch ``(N, *spatial, C)`` and
            returning the explained score, shape ``(N,)`` or ``(N, 1)``.
        image: The model input, ``(*spatial, C)``.
        heatmap: Importance, ``(*spatial)``; any real values.
        baseline: ``"blur"`` (the image blurred over the spatial axes),
            ``"zeros"``, a number, or an array broadcastable to the image.
        step_percent: Pixels per step, in percent of all pixels, in (0, 100].
        batch_size: Largest batch passed to ``predict``.
        blur_sigma: Gaussian sigma in pixels for ``"blur"``: one number or one
            per spatial axis; default ``max(1, min(spatial) / 16)``.

    Returns:
        ``(fractions, scores)``: the fraction of pixels replaced at each step
        (exact, ``count / n_pixels``) and the model's score there, float64.

    References:
        Petsiuk, Das & Saenko (2018), "RISE: Randomized input sampling for
        explanation of black-box models", BMVC.

    Example:
        >>> img = np.ones((4, 5, 1), np.float32)
        >>> f, s = deletion_curve(lambda x: x.sum(axis=(1, 2, 3)), img,
        ...                       np.arange(20.0).reshape(4, 5), baseline="zeros")
        >>> float(s[0]), float(s[-1]), round(curve_area(f, s), 6)
        (20.0, 0.0, 10.0)
    """
    return _curve(
        predict,
        image,
        heatmap,
        deletion=True,
        baseline=baseline,
        step_percent=step_percent,
        batch_size=batch_size,
        blur_sigma=blur_sigma,
    )


def insertion_curve(
    predict: Predict,
    image: ArrayLike,
    heatmap: ArrayLike,
    *,
    baseline: Baseline = "blur",
    step_percent: float = 5.0,
    batch_size: int = 32,
    blur_sigma: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score as the image's pixels are put back into the baseline, most important first.

    The mirror of :func:`deletion_curve` (same arguments and steps): step 0
    is the baseline itself, the last step the full image.

    References:
        Petsiuk, Das & Saenko (2018), "RISE: Randomized input sampling for
        explanation of black-box models", BMVC.

    Example:
        >>> img = np.ones((4, 5, 1), np.float32)
        >>> f, s = insertion_curve(lambda x: x.sum(axis=(1, 2, 3)), img,
        ...                        np.arange(20.0).reshape(4, 5), baseline="zeros")
        >>> float(s[0]), float(s[-1])
        (0.0, 20.0)
    """
    return _curve(
        predict,
        image,
        heatmap,
        deletion=False,
        baseline=baseline,
        step_percent=step_percent,
        batch_size=batch_size,
        blur_sigma=blur_sigma,
    )


def curve_area(fractions: ArrayLike, scores: ArrayLike) -> float:
    """Area under a deletion/insertion curve by the trapezoid rule.

    Args:
        fractions: Non-decreasing x values (fractions of pixels), 1D.
        scores: y values, 1D, same length (at least two points).

    Returns:
        ``np.trapezoid(scores, fractions)``.

    Example:
        >>> curve_area([0.0, 0.5, 1.0], [1.0, 0.5, 0.0])
        0.5
    """
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape or x.size < 2:
        raise ValueError(f"fractions and scores must be 1D of the same length >= 2, got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)) or np.any(np.diff(x) < 0):
        raise ValueError("fractions must be finite and non-decreasing")
    return float(_trapezoid(y, x))


# --------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------
def _curve(predict, image, heatmap, *, deletion, baseline, step_percent, batch_size, blur_sigma):
    if not callable(predict):
        raise ValueError(f"predict must be callable, got {type(predict).__name__}")
    img = _as_map(image, "image").astype(np.float32)
    heat = _as_map(heatmap, "heatmap")
    if img.ndim < 2:
        raise ValueError(f"image must be (*spatial, channels), got shape {img.shape}")
    if heat.shape != img.shape[:-1]:
        hint = " (add a channel axis: image[..., None])" if heat.shape == img.shape else ""
        raise ValueError(f"heatmap shape {heat.shape} must equal the image's spatial shape {img.shape[:-1]}{hint}")
    if not np.isscalar(step_percent) or not (0 < step_percent <= 100):
        raise ValueError(f"step_percent must be in (0, 100], got {step_percent!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    base = _baseline(img, baseline, blur_sigma)

    n = heat.size
    channels = img.shape[-1]
    order = _top_pixels(heat, n)
    counts = _step_counts(n, step_percent)
    start, fill = (img, base) if deletion else (base, img)
    start_flat = start.reshape(n, channels)
    fill_flat = fill.reshape(n, channels)

    scores = np.empty(counts.size, dtype=np.float64)
    for b0 in range(0, counts.size, batch_size):
        chunk = counts[b0 : b0 + batch_size]
        batch = np.repeat(start_flat[None], chunk.size, axis=0)
        for j, count in enumerate(chunk):
            idx = order[:count]
            batch[j, idx] = fill_flat[idx]
        out = np.asarray(predict(batch.reshape((chunk.size,) + img.shape)), dtype=np.float64)
        if out.shape not in ((chunk.size,), (chunk.size, 1)):
            raise ValueError(
                f"predict must return one score per image, shape ({chunk.size},) or ({chunk.size}, 1); got {out.shape}"
            )
        scores[b0 : b0 + chunk.size] = out.reshape(-1)
    return counts / n, scores


def _step_counts(n: int, step_percent: float) -> np.ndarray:
    """Number of pixels changed at each step: 0, step, 2 step, ..., all."""
    fractions = np.arange(0.0, 100.0, step_percent) / 100.0
    counts = np.round(np.append(fractions, 1.0) * n).astype(np.int64)
    return np.unique(counts)


def _baseline(img: np.ndarray, baseline: Baseline, blur_sigma) -> np.ndarray:
    spatial = img.shape[:-1]
    if isinstance(baseline, str):
        if baseline not in ("blur", "zeros"):
            raise ValueError(f"baseline must be 'blur', 'zeros', a number or an array, got {baseline!r}")
        if baseline == "zeros":
            if blur_sigma is not None:
                raise ValueError("blur_sigma only applies to baseline='blur'")
            return np.zeros_like(img)
        if blur_sigma is None:
            sigma = np.full(len(spatial), max(1.0, min(spatial) / 16.0))
        else:
            sigma = np.asarray(blur_sigma, dtype=np.float64)
            if sigma.ndim == 0:
                sigma = np.full(len(spatial), float(sigma))
        if sigma.shape != (len(spatial),) or not np.all(np.isfinite(sigma)) or np.any(sigma <= 0):
            raise ValueError(
                f"blur_sigma must be a positive number or one per spatial axis ({len(spatial)}), got {blur_sigma!r}"
            )
        # No blur across channels: each channel is smoothed on its own.
        return gaussian_blur(img, tuple(sigma))
    if blur_sigma is not None:
        raise ValueError("blur_sigma only applies to baseline='blur'")
    if isinstance(baseline, bool):
        raise ValueError("baseline must be 'blur', 'zeros', a number or an array, got a bool")
    arr = np.asarray(baseline, dtype=np.float32)
    try:
        return np.array(np.broadcast_to(arr, img.shape))
    except ValueError:
        raise ValueError(f"baseline of shape {arr.shape} does not broadcast to the image's shape {img.shape}") from None
