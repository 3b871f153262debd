"""Map-quality metrics: sparseness, localisation against a mask, agreement.

Plain functions on numpy arrays of any spatial rank (2D slices, 3D volumes).
A *map* is a float array (for medxai heatmaps: [0, 1], 1 = most important);
a *mask* is a boolean array of the same shape (True = lesion). Localisation
scores are NaN when the mask is empty, because there is nothing to find, and
when the map is constant (e.g. all zeros), because it points nowhere;
:func:`summarise` skips NaN, so a study mixing positives and negatives can be
summarised directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi
from scipy import stats

__all__ = [
    "gini",
    "pointing_game",
    "relevance_mass",
    "topk_iou",
    "summarise",
    "bootstrap_mean_ci",
    "rank_correlation",
]


# --------------------------------------------------------------------------
# argument checks (shared with faithfulness.py)
# --------------------------------------------------------------------------
def _as_map(values: ArrayLike, name: str = "map", *, non_negative: bool = False) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty array with at least one axis, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if non_negative and arr.min() < 0:
        raise ValueError(
            f"{name} has negative values (min {arr.min():g}); pass a non-negative map, "
            "e.g. np.clip(attributions, 0, None) for the positive evidence only"
        )
    return arr


def _number(value: object, name: str, expected: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float when it is a real, finite number that ``ok`` accepts; else ValueError naming it."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not real or not np.isfinite(float(value)) or not ok(float(value)):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _as_mask(mask: ArrayLike, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    arr = np.asarray(mask)
    if arr.shape != shape:
        raise ValueError(f"{name} shape {arr.shape} does not match the map's shape {shape}")
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.number) and np.all((arr == 0) | (arr == 1)):
        return arr.astype(bool)
    raise ValueError(
        f"{name} must be boolean (or hold only 0 and 1), got dtype {arr.dtype}; threshold it first, e.g. mask > 0"
    )


# --------------------------------------------------------------------------
# sparseness
# --------------------------------------------------------------------------
def gini(map: ArrayLike) -> float:
    """Gini index of a non-negative map: 0 = mass spread evenly, near 1 = concentrated.

    With the values sorted ascending, ``c_1 <= ... <= c_n``,
    ``G = 1 - 2 * sum_k (c_k / ||c||_1) * (n - k + 1/2) / n``.
    A uniform map gives 0, a one-hot map ``(n - 1) / n``; an all-zero map
    gives 0 (no mass to concentrate) rather than NaN.

    Args:
        map: Non-negative array of any shape.

    Returns:
        The Gini index in [0, 1).

    Raises:
        ValueError: On negative, NaN/inf or empty input.

    References:
        Hurley & Rickard (2009), "Comparing measures of sparsity", IEEE Trans.
        Inf. Theory 55(10). Chalasani et al. (2020), "Concise explanations of
        neural networks using adversarial training", ICML (Gini as the
        sparseness of attribution maps).

    Example:
        >>> gini(np.array([[0.0, 0.0], [0.0, 1.0]]))
        0.75
    """
    c = np.sort(_as_map(map, non_negative=True).ravel())
    total = c.sum()
    if total == 0:
        return 0.0
    n = c.size
    k = np.arange(1, n + 1)
    # max(): rounding can leave -1e-16 for a uniform map.
    return max(0.0, float(1.0 - 2.0 * np.sum((c / total) * (n - k + 0.5) / n)))


# --------------------------------------------------------------------------
# localisation against a ground-truth mask
# --------------------------------------------------------------------------
def pointing_game(map: ArrayLike, mask: ArrayLike, *, tolerance: float = 0) -> float:
    """1.0 if the map's maximum falls in the mask, 0.0 if not (a hit or a miss).

    The mask is first grown by ``tolerance`` pixels (Euclidean distance, in
    pixel units, on every axis). Ties: when several pixels share the maximum
    value (exact equality), the score is the fraction of them inside the grown
    mask (the hit rate of a random tie-break), so a map cannot score a hit by
    tying its peak everywhere. A constant map (all values equal, e.g. all
    zeros) has no peak and scores NaN.

    Args:
        map: Array of any shape; signed values are fine.
        mask: Boolean array of the same shape.
        tolerance: Non-negative dilation radius in pixels (Zhang et al. use 15
            pixels at 224 x 224).

    Returns:
        1.0 (hit), 0.0 (miss), the fraction of tied maxima inside the mask, or
        NaN when the mask is empty or the map constant.

    References:
        Zhang et al. (2018), "Top-down neural attention by excitation
        backprop", IJCV 126.

    Example:
        >>> pointing_game(np.array([[0.1, 0.9], [0.2, 0.3]]),
        ...               np.array([[False, True], [False, False]]))
        1.0
    """
    m = _as_map(map)
    target = _as_mask(mask, m.shape)
    tolerance = _number(tolerance, "tolerance", "a finite number >= 0", lambda t: t >= 0)
    if not target.any() or np.ptp(m) == 0:
        return float("nan")
    if tolerance > 0:
        # Distance of every pixel to the nearest mask pixel.
        target = ndi.distance_transform_edt(~target) <= tolerance
    return float(np.mean(target[m == m.max()]))


def relevance_mass(map: ArrayLike, mask: ArrayLike) -> float:
    """Share of the map's total mass that lies inside the mask.

    ``sum(map[mask]) / sum(map)``; 1.0 means all relevance is on the lesion.
    An all-zero map has no mass to share out, so the share is undefined: NaN.
    A constant non-zero map gives the mask's share of the pixels (chance level).

    Args:
        map: Non-negative array of any shape (clip signed attributions first;
            Arras et al. count positive relevance only).
        mask: Boolean array of the same shape.

    Returns:
        The share in [0, 1], or NaN when the mask is empty or the map all zeros.

    References:
        Arras, Osman & Samek (2022), "CLEVR-XAI: A benchmark dataset for the
        ground truth evaluation of neural network explanations", Information
        Fusion 81 ("relevance mass accuracy").

    Example:
        >>> relevance_mass(np.array([[3.0, 1.0], [0.0, 0.0]]),
        ...                np.array([[True, False], [False, False]]))
        0.75
    """
    m = _as_map(map, non_negative=True)
    target = _as_mask(mask, m.shape)
    if not target.any():
        return float("nan")
    total = m.sum()
    if total == 0:
        return float("nan")
    return float(m[target].sum() / total)


def _top_pixels(values: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the ``k`` largest values; ties go to the lower flat (C-order) index."""
    # A stable sort of the negated values keeps equal values in index order.
    return np.argsort(-values.ravel(), kind="stable")[:k]


def _top_weights(values: np.ndarray, k: int) -> np.ndarray:
    """Membership in the top ``k`` per flat pixel: 1 above the k-th largest value, a share at it.

    The pixels equal to the k-th largest value share the slots left over by the
    larger ones equally, so the weights sum to ``k`` and no pixel order decides.
    """
    flat = values.ravel()
    kth = np.partition(flat, flat.size - k)[flat.size - k]
    above = flat > kth
    tied = flat == kth
    weights = above.astype(np.float64)
    weights[tied] = (k - above.sum()) / tied.sum()
    return weights


def topk_iou(map: ArrayLike, mask: ArrayLike, *, percent: float = 5.0) -> float:
    """Intersection over union of the map's top ``percent`` % pixels with the mask.

    The top set holds ``k = ceil(n * percent / 100)`` pixels (at least one),
    the largest values first. When pixels tie at the k-th largest value, they
    share the remaining places of the set equally (a fractional membership
    ``w``), and the IoU is the weighted Jaccard index
    ``sum(min(w, mask)) / sum(max(w, mask))``: the same for every placement of
    the mask among tied pixels, and the plain IoU when nothing ties. A
    constant map ranks nothing and scores NaN.

    Args:
        map: Array of any shape; signed values are fine (ranked by value).
        mask: Boolean array of the same shape.
        percent: Size of the top set, in (0, 100].

    Returns:
        IoU in [0, 1], or NaN when the mask is empty or the map constant.

    References:
        The "energy/top-k localisation" protocol of saliency benchmarks, e.g.
        Saporta et al. (2022), "Benchmarking saliency methods for chest X-ray
        interpretation", Nature Machine Intelligence 4 (IoU of thresholded maps).

    Example:
        >>> topk_iou(np.array([[4.0, 3.0], [2.0, 1.0]]),
        ...          np.array([[True, True], [False, False]]), percent=50)
        1.0
    """
    m = _as_map(map)
    target = _as_mask(mask, m.shape)
    percent = _number(percent, "percent", "in (0, 100]", lambda v: 0 < v <= 100)
    if not target.any() or np.ptp(m) == 0:
        return float("nan")
    n = m.size
    # The small epsilon keeps e.g. 5 % of 20 pixels at exactly 1, not 2.
    k = min(n, max(1, int(np.ceil(n * percent / 100.0 - 1e-9))))
    weights = _top_weights(m, k)
    inside = target.ravel()
    return float(weights[inside].sum() / (inside.sum() + weights[~inside].sum()))


# --------------------------------------------------------------------------
# summaries and agreement
# --------------------------------------------------------------------------
#: Resamples of the bootstrap confidence interval of the mean (:func:`bootstrap_mean_ci`).
BOOTSTRAP_RESAMPLES = 2000
#: Index draws held at once while bootstrapping (bounds memory for many values).
_BOOTSTRAP_DRAWS = 1 << 22


def bootstrap_mean_ci(
    values: ArrayLike, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95
) -> tuple[float, float]:
    """A bootstrap confidence interval of the mean of the finite values (percentile method).

    ``resamples`` samples of the values, drawn with replacement, each as large as the
    values, by ``numpy.random.default_rng(seed)``; the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of their means (Efron's
    percentile bootstrap). The same values and seed always give the same interval. One
    value gives a zero-width interval at it; none gives NaN.

    Args:
        values: Scores of any shape (e.g. one per map); NaN/inf are ignored.
        seed: The resampling's seed (``medxai evaluate`` uses the evaluation's).
        resamples: How many bootstrap samples.
        level: The interval's coverage, in (0, 1).

    Example:
        >>> low, high = bootstrap_mean_ci([1.0, 2.0, 3.0, 4.0], seed=0)
        >>> bool(low < 2.5 < high)
        True
    """
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"level must be in (0, 1) and resamples at least 1, got {level} and {resamples}")
    arr = np.asarray(values, dtype=np.float64).ravel()
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    block = max(1, _BOOTSTRAP_DRAWS // finite.size)
    means = np.concatenate(
        [
            finite[rng.integers(0, finite.size, size=(min(block, resamples - done), finite.size))].mean(axis=1)
            for done in range(0, resamples, block)
        ]
    )
    tail = 50 * (1 - level)
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarise(values: ArrayLike, *, seed: int = 0) -> dict[str, float | int]:
    """Mean with its 95 % confidence interval, median, central 95 % range of the finite values (NaN/inf ignored).

    Two intervals, of different things:

    * ``mean_ci_low``/``mean_ci_high``: a 95 % bootstrap confidence interval of the mean
      (:func:`bootstrap_mean_ci`: 2,000 resamples drawn with ``seed``, percentile method):
      where the mean over maps would likely fall again; it narrows as ``n`` grows.
    * ``p2.5``/``p97.5``: the 2.5th and 97.5th percentiles of the values themselves, the
      spread of the score over maps (it does not narrow with ``n``).

    Args:
        values: Scores of any shape (e.g. one per image).
        seed: The bootstrap's seed.

    Returns:
        ``{"mean", "mean_ci_low", "mean_ci_high", "median", "p2.5", "p97.5", "n"}``; ``n`` is
        the number of finite values, and the others are NaN when it is 0.

    Example:
        >>> summarise([1.0, float("nan"), 3.0])["mean"]
        2.0
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        nan = float("nan")
        return {
            "mean": nan, "mean_ci_low": nan, "mean_ci_high": nan, "median": nan, "p2.5": nan, "p97.5": nan, "n": 0
        }  # fmt: skip
    low, high = np.percentile(finite, [2.5, 97.5])
    mean_low, mean_high = bootstrap_mean_ci(finite, seed=seed)
    return {
        "mean": float(finite.mean()),
        "mean_ci_low": mean_low,
        "mean_ci_high": mean_high,
        "median": float(np.median(finite)),
        "p2.5": float(low),
        "p97.5": float(high),
        "n": int(finite.size),
    }


def rank_correlation(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of two maps of the same shape, pixel by pixel.

    Ties get average ranks (``scipy.stats.spearmanr``). A constant map has no
    ranking, so the result is NaN (without scipy's warning).

    Args:
        a, b: Arrays of the same shape.

    Returns:
        The correlation in [-1, 1], or NaN when either map is constant.

    References:
        Adebayo et al. (2018), "Sanity checks for saliency maps", NeurIPS
        (rank correlation between maps).

    Example:
        >>> rank_correlation(np.array([[1.0, 2.0], [3.0, 4.0]]),
        ...                  np.array([[10.0, 20.0], [30.0, 40.0]]))
        1.0
    """
    x = _as_map(a, "a")
    y = _as_map(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x.ravel(), y.ravel()).statistic)
