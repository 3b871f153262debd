"""ROAD: remove and debias (Rong et al. 2022), a deletion curve that does not reward artefacts.

Plain deletion (:func:`~medxai.metrics.faithfulness.deletion_curve`) replaces the
most important pixels with a baseline. The replaced region then has the *shape* of
the map, and a model can react to that shape (an out-of-distribution artefact)
rather than to the information removed: the mask leaks the class. ROAD removes the
same pixels but fills each one with the weighted mean of its neighbours plus a
little noise (*noisy linear imputation*), so the filled region carries almost no
trace of where the mask was.

medxai's figure (the ``road`` column of ``metrics.csv``): the mean of the explained
score (a probability) after removing the most relevant ``10 %, 20 %, ..., 90 %`` of
the pixels (MoRF order, the paper's grid of fractions) with noisy linear imputation.
Lower is better, as for deletion AUC. It is the ROAD analogue of deletion AUC: the
mean of the nine points equals the trapezoid area of the curve over [0.1, 0.9]
divided by 0.8, up to the two end points' half weight, so it reads on the same
[0, 1] scale; deletion AUC integrates over [0, 1] with a baseline fill instead.
100 % is left out: with every pixel removed there is nothing to impute from.

The imputation (the reference code's ``NoisyLinearImputer``): for the set ``R`` of
removed pixels, solve the sparse linear system in which every removed pixel equals
the weighted mean of its in-image neighbours (removed or kept),
``x_i = sum_j w_j v_j / sum_j w_j``, then add Gaussian noise to the solved values.
In 2D the neighbours are the 8-neighbourhood with weight 1/6 for the four axis
neighbours and 1/12 for the four diagonal ones, as in the reference code; in n
dimensions a neighbour offset moving along ``k`` axes weighs ``1/k`` (normalised to
sum 1), which is the same rule. Channels share the system (one right-hand side each).
Every connected group of removed pixels touches a kept pixel whenever anything is
kept, so the system has one solution.

References:
    Rong, Leemann, Borisov, Kasneci & Kasneci (2022), "A Consistent and Efficient
    Evaluation Strategy for Attribution Methods", ICML (ROAD; reference code
    github.com/tleemann/road_evaluation).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.sparse.linalg import splu

from medxai.metrics.scores import _as_map, _top_pixels

__all__ = ["ROAD_FRACTIONS", "ROAD_NOISE", "noisy_linear_imputation", "road_curve", "road_score"]

#: The removal fractions of :func:`road_score`: 10 % to 90 % in steps of 10 % (the paper's grid).
ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: SD of the noise added to each imputed value, as a fraction of the image's value range (the
#: reference code adds 0.01 in its normalised input space).
ROAD_NOISE = 0.01

Predict = Callable[[np.ndarray], ArrayLike]


def _neighbours(ndim: int) -> list[tuple[tuple[int, ...], float]]:
    """Offsets of the 3^d - 1 neighbourhood with weight 1/(axes moved), normalised to sum 1.

    Example:
        >>> sorted({round(w * 12, 6) for _, w in _neighbours(2)})  # diagonal 1/12, axis 1/6
        [1.0, 2.0]
    """
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]
    raw = np.array([1.0 / sum(1 for v in o if v) for o in offsets])
    return list(zip(offsets, (raw / raw.sum()).tolist()))


def noisy_linear_imputation(
    image: ArrayLike, removed: ArrayLike, *, noise: float = ROAD_NOISE, seed: int | None = 0
) -> np.ndarray:
    """The image with its removed pixels filled by noisy linear imputation (ROAD).

    Each removed pixel becomes the weighted mean of its in-image neighbours (see the
    module text for the weights): the solution of one sparse linear system over all
    removed pixels, shared by the channels. Then Gaussian noise of SD
    ``noise * (max - min of the image)`` is added to the imputed values (``noise=0``:
    the exact solution). Kept pixels are returned unchanged.

    Args:
        image: ``(*spatial, C)``.
        removed: Boolean ``(*spatial)``; True = removed (to impute).
        noise: Noise SD as a fraction of the image's value range, >= 0.
        seed: Seed of the noise (``numpy.random.default_rng``).

    Returns:
        float64 array of the image's shape.

    Raises:
        ValueError: shapes disagree, or every pixel is removed (nothing to impute from).

    Example:
        >>> img = np.zeros((3, 3, 1)); img[0, 1, 0] = 12.0  # an axis neighbour of the centre
        >>> removed = np.zeros((3, 3), bool); removed[1, 1] = True
        >>> float(noisy_linear_imputation(img, removed, noise=0)[1, 1, 0])  # 12 * 1/6
        2.0
    """
    img = _as_map(image, "image")
    if img.ndim < 2:
        raise ValueError(f"image must be (*spatial, channels), got shape {img.shape}")
    gone = np.asarray(removed, dtype=bool)
    spatial, channels = img.shape[:-1], img.shape[-1]
    if gone.shape != spatial:
        raise ValueError(f"removed has shape {gone.shape}, the image's spatial shape is {spatial}")
    if noise < 0 or not np.isfinite(noise):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    n = gone.size
    flat_gone = gone.ravel()
    unknown = np.flatnonzero(flat_gone)
    out = img.reshape(n, channels).copy()
    if unknown.size == 0:
        return out.reshape(img.shape)
    if unknown.size == n:
        raise ValueError("every pixel is removed: there is nothing to impute from")
    variable = np.full(n, -1, dtype=np.int64)
    variable[unknown] = np.arange(unknown.size)
    coords = np.unravel_index(unknown, spatial)
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, channels))
    rows, cols, values = [], [], []
    for offset, weight in _neighbours(len(spatial)):
        moved = [c + o for c, o in zip(coords, offset)]
        inside = np.logical_and.reduce([(m >= 0) & (m < s) for m, s in zip(moved, spatial)])
        source = np.flatnonzero(inside)  # the equations (removed pixels) with this neighbour in the image
        target = np.ravel_multi_index(tuple(m[inside] for m in moved), spatial)
        diagonal[source] += weight
        also_removed = flat_gone[target]
        rows.append(source[also_removed])
        cols.append(variable[target[also_removed]])
        values.append(np.full(int(also_removed.sum()), -weight))
        rhs[source[~also_removed]] += weight * out[target[~also_removed]]  # one neighbour per equation and offset
    rows.append(np.arange(unknown.size))
    cols.append(np.arange(unknown.size))
    values.append(diagonal)
    system = sparse.csc_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(unknown.size,) * 2
    )
    solved = splu(system).solve(rhs)
    if noise > 0:
        spread = float(np.ptp(img))
        solved = solved + np.random.default_rng(seed).normal(0.0, noise * spread, size=solved.shape)
    out[unknown] = solved
    return out.reshape(img.shape)


def road_curve(
    predict: Predict,
    image: ArrayLike,
    heatmap: ArrayLike,
    *,
    fractions: Sequence[float] = ROAD_FRACTIONS,
    most_relevant_first: bool = True,
    noise: float = ROAD_NOISE,
    seed: int = 0,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """The model's score as ever more pixels are removed and imputed (ROAD).

    Pixels are ranked by ``heatmap`` as in :func:`~medxai.metrics.faithfulness.deletion_curve`
    (largest first, ties to the lower flat index; ``most_relevant_first=False`` takes the
    smallest first: the paper's LeRF order). At each fraction ``f`` the first
    ``round(f * n_pixels)`` pixels are removed, all channels together, and imputed
    (:func:`noisy_linear_imputation`, the noise drawn with ``seed`` at every fraction).

    Args:
        predict: Callable taking a float32 batch ``(N, *spatial, C)`` and returning the explained
            score, shape ``(N,)`` or ``(N, 1)``.
        image: The model input, ``(*spatial, C)``.
        heatmap: Importance, ``(*spatial)``.
        fractions: Removal fractions, each in [0, 1).
        most_relevant_first: MoRF (True, medxai's ``road``) or LeRF order.
        noise: See :func:`noisy_linear_imputation`.
        seed: Seed of the noise.
        batch_size: Largest batch passed to ``predict``.

    Returns:
        ``(fractions, scores)``, float64; the fractions as removed (``count / n_pixels``).
    """
    img = _as_map(image, "image")
    heat = _as_map(heatmap, "heatmap")
    if img.ndim < 2 or heat.shape != img.shape[:-1]:
        raise ValueError(f"heatmap shape {heat.shape} must equal the image's spatial shape {img.shape[:-1]}")
    wanted = np.asarray(fractions, dtype=np.float64)
    if wanted.ndim != 1 or wanted.size == 0 or np.any(~np.isfinite(wanted)) or np.any((wanted < 0) | (wanted >= 1)):
        raise ValueError(f"fractions must be a non-empty list of numbers in [0, 1), got {fractions!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = heat.size
    order = _top_pixels(heat if most_relevant_first else -heat, n)
    counts = np.round(wanted * n).astype(np.int64)
    images = np.empty((counts.size, *img.shape), dtype=np.float32)
    for j, count in enumerate(counts):
        removed = np.zeros(n, dtype=bool)
        removed[order[:count]] = True
        images[j] = noisy_linear_imputation(img, removed.reshape(heat.shape), noise=noise, seed=seed)
    scores = np.empty(counts.size, dtype=np.float64)
    for start in range(0, counts.size, batch_size):
        chunk = images[start : start + batch_size]
        out = np.asarray(predict(chunk), dtype=np.float64)
        if out.shape not in ((len(chunk),), (len(chunk), 1)):
            raise ValueError(f"predict must return one score per image, shape ({len(chunk)},); got {out.shape}")
        scores[start : start + len(chunk)] = out.reshape(-1)
    return counts / n, scores


def road_score(predict: Predict, image: ArrayLike, heatmap: ArrayLike, **kwargs) -> float:
    """medxai's ``road`` figure: the mean score over the MoRF ROAD curve at 10 %, ..., 90 % removed.

    Lower is better (the score falls fast when the map's top pixels carry the evidence).
    Keywords go to :func:`road_curve`.

    Example:
        >>> w = np.arange(16.0).reshape(4, 4, 1)
        >>> img = np.random.default_rng(0).random((4, 4, 1))
        >>> linear = lambda x: (x * w).sum(axis=(1, 2, 3))
        >>> good = road_score(linear, img, (w * img)[..., 0], noise=0)
        >>> bad = road_score(linear, img, -(w * img)[..., 0], noise=0)
        >>> bool(good < bad)
        True
    """
    return float(np.mean(road_curve(predict, image, heatmap, **kwargs)[1]))
