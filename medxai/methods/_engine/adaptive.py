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

Memory stays bounded by the engine's ``batch_size`` plus a few arrays per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medxai.methods._engine.plan import PathPlan
from medxai.methods._engine.quadrature import integration_points
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
    change: np.ndarray  # (N,) relative L2 change between the last two levels (inf after one level)
    met: np.ndarray  # (N,) bool: change <= tolerance


def first_points(rule: str) -> int:
    """Path points of the first level of an adaptive rule."""
    return {"trapezoid": 3, "riemann_left": 2, "riemann_right": 2}.get(rule, 4)


def smallest_max_steps(rule: str) -> int:
    """The fewest points ``max_steps`` may allow: two levels are needed to measure a change."""
    first = first_points(rule)
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
