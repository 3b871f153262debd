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
(the embedded pairs: the kept points' terms of each image still refining).
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


@dataclass
class _Panel:
    """One sub-interval of one image's path: its fine map and its error vector (fine - coarse rule)."""

    lo: float
    hi: float
    fine: np.ndarray  # (pixels,) float64
    error: np.ndarray  # (pixels,) float64
    alphas: tuple[float, ...] = ()  # its rule's points on the path (rounded, as the cache keys them)
    size: float = 0.0  # ||error||, computed once


def _to_bisect(errors: np.ndarray, budget: int) -> np.ndarray:
    """The worst panels holding :data:`BISECTED_SHARE` of the squared error, at most ``budget`` of them."""
    order = np.argsort(-errors, kind="stable")
    mass = np.cumsum(errors[order] ** 2)
    count = int(np.searchsorted(mass, BISECTED_SHARE * mass[-1])) + 1
    return order[: min(count, budget)]


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
    them and ``steps`` counts the points of the kept panels). Memory: the kept points'
    terms per image being refined (at most ``max_steps`` maps each).
    """
    nodes, fine_w, coarse_w = embedded_pair(rule)

    def points(lo: float, hi: float) -> list[float]:  # rounded: a bisection's halves find their parent's points
        return [round(float(a), 12) for a in lo + (hi - lo) * nodes]

    pair = np.stack([fine_w, fine_w - coarse_w])
    scale = CALIBRATION.get(rule, 1.0)
    n = len(images)
    cache: list[dict[float, np.ndarray]] = [{} for _ in range(n)]  # per image: alpha -> path term
    panels: list[list[_Panel]] = [[] for _ in range(n)]
    error = np.full(n, np.inf)
    evaluations = np.zeros(n, dtype=np.int64)
    steps = np.zeros(n, dtype=np.int64)
    pending = [(i, 0.0, 1.0) for i in range(n)]
    while pending:
        wanted = {(i, a) for i, lo, hi in pending for a in points(lo, hi)}
        missing = sorted(key for key in wanted if key[1] not in cache[key[0]])
        if missing:
            image = np.array([i for i, _ in missing])
            terms = engine.path_terms(images, targets, baselines, image, np.array([a for _, a in missing]), batch_size)
            for (i, a), term in zip(missing, terms):
                cache[i][a] = term.ravel()
            evaluations += np.bincount(image, minlength=n)
        for i, lo, hi in pending:
            alphas = tuple(points(lo, hi))
            values = np.stack([cache[i][a] for a in alphas]).astype(np.float64)
            fine, difference = (hi - lo) * (pair @ values)
            panels[i].append(_Panel(lo, hi, fine, difference, alphas, float(np.linalg.norm(difference))))
        refined = sorted({i for i, _, _ in pending})
        pending = []
        for i in refined:
            own = sorted(panels[i], key=lambda p: p.lo)
            local = np.array([p.size for p in own])
            size = np.linalg.norm(np.sum([p.fine for p in own], axis=0))
            total = scale * float(np.sqrt(np.sum(local**2)))
            error[i] = 0.0 if total == 0 else (total / size if size > 0 else np.inf)
            used = {a for p in own for a in p.alphas}
            steps[i] = len(used)
            new_per_bisection = len(nodes) - 1 if rule == "adaptive_simpson" else len(nodes)
            budget = (max_steps - steps[i]) // new_per_bisection
            if error[i] <= tolerance or budget <= 0:
                panels[i], cache[i] = own, {}
                continue
            chosen = set(_to_bisect(local, budget).tolist())
            panels[i] = [p for j, p in enumerate(own) if j not in chosen]
            for j in sorted(chosen):
                middle = 0.5 * (own[j].lo + own[j].hi)
                pending += [(i, own[j].lo, middle), (i, middle, own[j].hi)]
            keep = used | {a for _, lo, hi in pending[-2 * len(chosen) :] for a in points(lo, hi)}
            cache[i] = {a: term for a, term in cache[i].items() if a in keep}
    attributions = np.stack([np.sum([p.fine for p in own], axis=0) for own in panels])
    return AdaptiveResult(
        attributions.reshape(images.shape).astype(np.float32), steps, evaluations, error, error <= tolerance
    )
