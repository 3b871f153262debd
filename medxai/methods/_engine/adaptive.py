"""Adaptive step counts for Integrated Gradients: refine each map until it stops changing.

``steps="auto"`` asks for a map that is accurate *per pixel*, not just complete:
completeness (Sundararajan et al. 2017) is one scalar per image, and on ReLU
networks, whose path gradients are piecewise constant, a map can meet it to
0.2 % while single pixels are 5-13 % off the converged integral. So each image
is integrated on ever finer levels, and it is done when the relative L2 change
of its whole attribution map between two consecutive levels,
``||A_L - A_{L-1}|| / ||A_L||``, is at most the tolerance. The finest level is
kept (no extrapolation: Romberg's assumes a smooth integrand, which ReLU paths
are not). Completeness is still reported, separately, as a check.

* **Nested rules** (``trapezoid``, ``riemann_left``, ``riemann_right``) double
  their intervals: every earlier gradient is reused and the change between
  levels costs nothing extra. A point's weight is ``h * c`` with ``c`` fixed
  across levels (1/2 at the trapezoid's ends, 1 elsewhere), so one running sum
  ``V = sum(c * g)`` per image is the whole state: ``estimate = h * V``.
* **Gauss-Legendre** and ``riemann_middle`` are not nested: each level is
  computed afresh at twice the order, so a map kept at order ``n`` cost about
  ``2n`` evaluations (reported as ``evaluations``; ``steps`` is ``n``).
* **Embedded pairs** (``adaptive_simpson``: Simpson with the trapezoid, the nested
  3- and 2-point Clenshaw-Curtis rules; ``gauss_kronrod_15``: G7/K15;
  ``gauss_kronrod_7``: G3/K7, Kronrod 1965) subdivide the path where the integrand
  bends (QUADPACK's ``qag``, Piessens et al. 1983): each sub-interval carries its map
  and the per-pixel error vector of the pair, computed from the same gradients, and
  the worst sub-intervals are bisected until the map's estimated relative L2 error is
  at most the tolerance (see :func:`_panels`). No second level is needed to measure.

Memory stays bounded by the engine's ``batch_size`` plus a few arrays per image
(the embedded pairs: each live panel's node terms and map, for the images still refining).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medxai.methods._engine.plan import PathPlan
from medxai.methods._engine.quadrature import ADAPTIVE_ONLY_RULES, embedded_pair, integration_points
from medxai.methods._engine.targets import Targets

if TYPE_CHECKING:
    from medxai.methods._engine.engine import GradientEngine

NESTED_RULES = ("trapezoid", "riemann_left", "riemann_right")
RESTART_RULES = ("gauss_legendre", "riemann_middle")


@dataclass
class AdaptiveResult:
    """Per-image outcome of an adaptive integration."""

    attributions: np.ndarray  # (N, *spatial, C) float32: the finest level's map
    steps: np.ndarray  # (N,) path points per baseline of the kept map
    evaluations: np.ndarray  # (N,) path points per baseline evaluated in all levels
    change: np.ndarray  # (N,) relative L2 change of the last two levels (inf after one), or the estimated error
    met: np.ndarray  # (N,) bool: change <= tolerance


#: Share of the squared error estimate whose sub-intervals are bisected in one round (the worst first).
BISECTED_SHARE = 0.5


def first_points(rule: str) -> int:
    """Path points of the first level of an adaptive rule."""
    if rule in ADAPTIVE_ONLY_RULES:
        return len(embedded_pair(rule)[0])
    return {"trapezoid": 3, "riemann_left": 2, "riemann_right": 2}.get(rule, 4)


def smallest_max_steps(rule: str) -> int:
    """The fewest points ``max_steps`` may allow: two levels are needed to measure a change.

    An embedded pair measures its error at its first level: one sub-interval is enough.
    """
    first = first_points(rule)
    if rule in ADAPTIVE_ONLY_RULES:
        return first
    return 2 * first - 1 if rule == "trapezoid" else 2 * first


def _nested_level(rule: str, intervals: int) -> tuple[np.ndarray, np.ndarray, float]:
    """All points of a nested rule with ``intervals`` sub-intervals, their classes ``c`` and ``h``."""
    h = 1.0 / intervals
    if rule == "trapezoid":
        alphas = np.arange(intervals + 1) * h
        classes = np.ones(intervals + 1)
        classes[[0, -1]] = 0.5
    elif rule == "riemann_left":
        alphas, classes = np.arange(intervals) * h, np.ones(intervals)
    else:  # riemann_right
        alphas, classes = np.arange(1, intervals + 1) * h, np.ones(intervals)
    return alphas, classes, h


def relative_change(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``||new - old|| / ||new||`` per image (0 when both are 0, inf when only the change is not).

    Example:
        >>> relative_change(np.array([[3.0, 4.0]]), np.array([[3.0, 3.0]])).tolist()
        [0.2]
    """
    n = len(new)
    difference = np.linalg.norm((new.astype(np.float64) - old).reshape(n, -1), axis=1)
    size = np.linalg.norm(new.reshape(n, -1).astype(np.float64), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(difference == 0, 0.0, difference / size)


def adaptive_integrated_gradients(
    engine: GradientEngine,
    images: np.ndarray,
    targets: Targets,
    baselines: np.ndarray,
    *,
    rule: str,
    tolerance: float,
    max_steps: int,
    batch_size: int,
) -> AdaptiveResult:
    """Integrated Gradients with as many path points per image as its tolerance needs.

    Args:
        engine: The gradient engine of the explained model.
        images: ``(N, *spatial, C)`` checked float32 inputs.
        targets: The images' targets.
        baselines: ``(N, B, *spatial, C)`` baselines (IG is averaged over B).
        rule: An integration rule name (see the module docstring).
        tolerance: Target relative L2 change of the map between two levels.
        max_steps: Most path points (per baseline) of a kept map.
        batch_size: Rows per model call.

    Returns:
        An :class:`AdaptiveResult`; images that never met the tolerance keep
        their finest map and ``met`` False.
    """
    if rule in ADAPTIVE_ONLY_RULES:
        return _panels(rule, engine, images, targets, baselines, tolerance, max_steps, batch_size)
    n = len(images)
    nested = rule in NESTED_RULES
    result = np.zeros(images.shape, dtype=np.float32)
    change = np.full(n, np.inf)
    steps = np.zeros(n, dtype=np.int64)
    evaluations = np.zeros(n, dtype=np.int64)
    running = np.zeros(images.shape, dtype=np.float64) if nested else None
    active = np.arange(n)
    done_alphas = np.zeros(0)
    points = first_points(rule)
    intervals = points - 1 if rule == "trapezoid" else points
    first = True
    while active.size:
        if nested:
            alphas, classes, h = _nested_level(rule, intervals)
            new = ~np.isin(np.round(alphas, 12), np.round(done_alphas, 12))
            plan_alphas, plan_weights, points = alphas[new], classes[new], len(alphas)
        else:
            plan_alphas, plan_weights = integration_points(rule, points)
        if points > max_steps and not first:
            break
        plan = PathPlan(alphas=plan_alphas, weights=plan_weights, baselines=baselines[active])
        part = engine.integrate(images[active], targets[active], plan, batch_size)
        if running is not None:
            running[active] += part
            estimate = (h * running[active]).astype(np.float32)
            done_alphas = alphas
            intervals *= 2
        else:
            estimate = part
        if not first:
            change[active] = relative_change(estimate, result[active])
        result[active] = estimate
        steps[active] = points
        evaluations[active] += len(plan_alphas)
        active = active[~(change[active] <= tolerance)]
        if not nested:
            points *= 2
        first = False
    return AdaptiveResult(result, steps, evaluations, change, change <= tolerance)


#: ``adaptive_simpson``'s estimate is ``|Simpson - trapezoid|``, the trapezoid's error; on the rough path
#: integrands of ReLU networks Simpson's own error is about half of it (Richardson's 1/15 assumes a
#: smooth integrand and is far too optimistic there). 0.6 rather than 0.5 keeps the 90th percentile of
#: the demo model's maps under the tolerance (delivered / tolerance: median 0.75, 90th percentile
#: 0.93; 0.5 gave 0.83 and 1.28), for about 10 % more gradients (``benchmarks/bench_ig_auto.py``).
#: The Gauss-Kronrod pairs use ``|K - G|`` as it is (an overestimate of K's error).
CALIBRATION = {"adaptive_simpson": 0.6}


def _inherited(nodes: np.ndarray) -> np.ndarray:
    """``(2, K)``: for each node of a bisected panel's left and right half, the parent's node it is (-1: new).

    Example:
        >>> _inherited(np.array([0.0, 0.5, 1.0])).tolist()
        [[0, -1, 1], [1, -1, 2]]
    """
    parent = np.round(nodes, 12)
    out = np.full((2, len(nodes)), -1)
    for side in (0, 1):
        for node, position in enumerate(np.round(0.5 * (side + nodes), 12)):
            match = np.flatnonzero(parent == position)
            out[side, node] = match[0] if match.size else -1
    return out


class _Terms:
    """Per live panel a slot of ``rows`` vectors of ``pixels`` float32; freed slots are reused."""

    def __init__(self, rows: int, pixels: int) -> None:
        self.data = np.empty((0, rows, pixels), dtype=np.float32)
        self.free: list[int] = []

    def take(self, count: int) -> np.ndarray:
        """``count`` free slots; the store doubles when it is short."""
        if len(self.free) < count:
            size = len(self.data)
            grown = max(2 * size, size + count - len(self.free))
            # in place (realloc): the slots already filled are not copied, as np.concatenate would
            self.data.resize((grown, *self.data.shape[1:]), refcheck=False)
            self.free += range(grown - 1, size - 1, -1)
        slots = self.free[len(self.free) - count :]
        del self.free[len(self.free) - count :]
        return np.array(slots, dtype=np.int64)

    def give(self, slots: np.ndarray) -> None:
        """Free ``slots``."""
        self.free += slots.tolist()


def _rank_in_run(image: np.ndarray) -> np.ndarray:
    """For ``image`` sorted (an image's rows together): each row's rank among its image's rows.

    Example:
        >>> _rank_in_run(np.array([0, 0, 2, 2, 2, 5])).tolist()
        [0, 1, 0, 1, 2, 0]
    """
    starts = np.r_[0, np.flatnonzero(np.diff(image)) + 1]
    return np.arange(len(image)) - np.repeat(starts, np.diff(np.r_[starts, len(image)]))


def _add_runs(total: np.ndarray, image: np.ndarray, values: np.ndarray) -> None:
    """``total[image[r]] += values[r]`` for every row ``r``, in float64; ``image`` sorted (an image's rows together)."""
    if not image.size:
        return
    rank = _rank_in_run(image)
    for layer in range(int(rank.max()) + 1):  # each layer holds an image once: no repeated index in one add
        rows = rank == layer
        total[image[rows]] += values[rows]


def _to_bisect(image: np.ndarray, lo: np.ndarray, size: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Per image, its worst panels holding :data:`BISECTED_SHARE` of its squared error, at most ``budget[image]``.

    Panels are ranked within their image by error, largest first (ties: lower ``lo`` first).

    Example:
        >>> image, lo = np.array([0, 0, 0, 1]), np.array([0.0, 0.5, 0.75, 0.0])
        >>> _to_bisect(image, lo, np.array([1.0, 3.0, 1.0, 2.0]), np.array([5, 5])).tolist()
        [1, 3]
    """
    if not image.size:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((lo, -size, image))
    image, squared = image[order], size[order] ** 2
    rank = _rank_in_run(image)
    before = np.cumsum(squared) - squared  # squared error of all panels ranked before this one
    worse = before - before[np.arange(len(image)) - rank]  # ... of its own image's worse panels
    total = np.bincount(image, weights=squared, minlength=len(budget))[image]
    chosen = ((rank == 0) | (worse < BISECTED_SHARE * total)) & (rank < budget[image])
    return order[chosen]


def _panels(
    rule: str,
    engine: GradientEngine,
    images: np.ndarray,
    targets: Targets,
    baselines: np.ndarray,
    tolerance: float,
    max_steps: int,
    batch_size: int,
) -> AdaptiveResult:
    """Globally adaptive quadrature with an embedded pair (QUADPACK's ``qag``, Piessens et al. 1983) for maps.

    Each sub-interval ("panel") of an image's path is integrated by the pair's fine rule
    and, with the same gradients, by its embedded coarse rule (:func:`embedded_pair`);
    ``fine - coarse`` is the panel's per-pixel error vector. The map is the sum of the
    fine panels; its error estimate is ``c * sqrt(sum_panels ||fine - coarse||^2) / ||map||``
    (panels' errors taken as independent, as a ReLU network's jumps are; ``c`` from
    :data:`CALIBRATION`). While it is above the tolerance, the worst panels (half the
    squared error) are bisected. The points of every image still refining are evaluated
    together, ``batch_size`` model rows at a time. A point is evaluated once: the
    gradients a panel's halves share with it are reused (all of them for
    ``adaptive_simpson``; none inside a Gauss-Kronrod panel, so ``evaluations`` counts
    them and ``steps`` counts the points of the kept panels). The bookkeeping is done on
    arrays for all images at once (a round costs a few numpy calls, not a loop over images).
    Memory: per live panel of an image still refining, its terms at its nodes and its map
    (``K + 1`` arrays of the image's size), and each image's map in float64.
    """
    nodes, fine_w, coarse_w = embedded_pair(rule)
    k = len(nodes)
    pair = np.stack([fine_w, fine_w - coarse_w]).astype(np.float32)  # (2, K): a panel's map and error vector
    inherited = _inherited(nodes)
    shared = int(nodes[0] == 0.0 and nodes[-1] == 1.0)  # neighbouring panels share an end point
    scale = CALIBRATION.get(rule, 1.0)
    n = len(images)
    pixels = int(np.prod(images.shape[1:]))
    store = _Terms(k + 1, pixels)  # a panel's terms at its K nodes, then its map
    total = np.zeros((n, pixels))  # each image's map: the sum of its live panels' fine rules
    error = np.full(n, np.inf)
    evaluations = np.zeros(n, dtype=np.int64)
    steps = np.zeros(n, dtype=np.int64)
    # live panels of the images still refining: image, interval, slot in the store, ||fine - coarse||
    image, lo, hi = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    slot, size = np.zeros(0, np.int64), np.zeros(0)
    # panels to integrate next, with the parent's slot and the half (side -1: no parent)
    c_image, c_lo, c_hi = np.arange(n), np.zeros(n), np.ones(n)
    c_parent, c_side = np.full(n, -1), np.full(n, -1)
    while c_image.size:
        source = np.where(c_side[:, None] >= 0, inherited[np.maximum(c_side, 0)], -1)
        rows, columns = np.nonzero(source < 0)
        alphas = np.round(c_lo[rows] + (c_hi - c_lo)[rows] * nodes[columns], 12)
        terms = engine.path_terms(images, targets, baselines, c_image[rows], alphas, batch_size)
        evaluations += np.bincount(c_image[rows], minlength=n)
        c_slot = store.take(len(c_image))
        store.data[c_slot[rows], columns] = terms.reshape(len(rows), pixels)
        rows, columns = np.nonzero(source >= 0)
        store.data[c_slot[rows], columns] = store.data[c_parent[rows], source[rows, columns]]
        store.give(np.unique(c_parent[c_parent >= 0]))
        width = (c_hi - c_lo).astype(np.float32)[:, None, None]
        values = width * np.matmul(pair, store.data[c_slot, :k])  # (C, 2, pixels): map and error vector
        store.data[c_slot, k] = values[:, 0]
        _add_runs(total, c_image, values[:, 0])
        image, lo, hi = np.r_[image, c_image], np.r_[lo, c_lo], np.r_[hi, c_hi]
        slot, size = np.r_[slot, c_slot], np.r_[size, np.linalg.norm(values[:, 1], axis=1)]

        refining = np.unique(c_image)
        panels = np.bincount(image, minlength=n)[refining]
        estimate = scale * np.sqrt(np.bincount(image, weights=size**2, minlength=n)[refining])
        norm = np.linalg.norm(total[refining], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            error[refining] = np.where(estimate == 0, 0.0, estimate / norm)
        steps[refining] = panels * k - (panels - 1) * shared
        budget = np.zeros(n, dtype=np.int64)
        budget[refining] = (max_steps - steps[refining]) // (k - shared)  # a bisection adds k - shared points
        budget[error <= tolerance] = 0
        live = budget[image] > 0
        store.give(slot[~live])
        image, lo, hi, slot, size = image[live], lo[live], hi[live], slot[live], size[live]

        chosen = _to_bisect(image, lo, size, budget)
        _add_runs(total, image[chosen], -store.data[slot[chosen], k])  # a bisected panel's map leaves
        middle = 0.5 * (lo + hi)[chosen]
        c_image = np.repeat(image[chosen], 2)
        c_lo = np.stack([lo[chosen], middle], axis=1).ravel()
        c_hi = np.stack([middle, hi[chosen]], axis=1).ravel()
        c_parent, c_side = np.repeat(slot[chosen], 2), np.tile([0, 1], len(chosen))
        live = np.ones(len(image), dtype=bool)
        live[chosen] = False
        image, lo, hi, slot, size = image[live], lo[live], hi[live], slot[live], size[live]
    return AdaptiveResult(total.reshape(images.shape).astype(np.float32), steps, evaluations, error, error <= tolerance)
