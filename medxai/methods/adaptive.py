"""Adaptive step counts for Integrated Gradients: refine each image until it is complete enough.

The completeness axiom (Sundararajan et al. 2017) gives every image an exact
error check for free: ``delta = sum(attributions) - (F(x) - F(baseline))``.
Each image starts with few path points; the images whose ``|delta| / |F(x) - F(b)|``
is above the tolerance get more points, the others are done.

* **Nested rules** (``trapezoid``, ``riemann_left``, ``riemann_right``) double
  their points: every earlier gradient is reused, only the new points are
  evaluated. A point's weight is ``h * c`` with ``c`` fixed across levels (1/2
  at the trapezoid's ends, 1 elsewhere), so one running sum ``V = sum(c * g)``
  per image is the whole state: ``estimate = h * V``. The trapezoid also offers
  two columns of Romberg's extrapolation at no cost (Simpson's rule
  ``S = T + (T - T_prev) / 3`` and Boole's rule ``S + (S - S_prev) / 15``); the
  estimate with the smallest completeness error is kept.
* **Gauss-Legendre** and ``riemann_middle`` are not nested under doubling: each
  level is computed afresh at twice the order, so an image that stops at order
  ``n`` cost at most ``2n`` evaluations.

Memory stays bounded by the engine's ``batch_size`` plus a few arrays per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medxai.engine import GradientEngine, PathPlan
from medxai.methods.quadrature import integration_points

NESTED_RULES = ("trapezoid", "riemann_left", "riemann_right")
RESTART_RULES = ("gauss_legendre", "riemann_middle")


@dataclass
class AdaptiveResult:
    """Per-image outcome of an adaptive integration."""

    attributions: np.ndarray  # (N, *spatial, C) float32
    delta: np.ndarray  # (N,) sum(attributions) - gap
    steps: np.ndarray  # (N,) path points evaluated per baseline (what the image cost)
    met: np.ndarray  # (N,) bool: tolerance reached


def first_points(rule: str) -> int:
    """Path points of the first level of an adaptive rule."""
    return {"trapezoid": 3, "riemann_left": 2, "riemann_right": 2}.get(rule, 4)


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


def _completeness(attributions: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    delta = attributions.reshape(len(attributions), -1).sum(axis=1, dtype=np.float64) - gap
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(delta == 0, 0.0, np.abs(delta) / np.abs(gap))
    return delta, relative


def adaptive_integrated_gradients(
    engine: GradientEngine,
    images: np.ndarray,
    targets: np.ndarray,
    baselines: np.ndarray,
    gap: np.ndarray,
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
        targets: ``(N,)`` classes.
        baselines: ``(N, B, *spatial, C)`` baselines (IG is averaged over B).
        gap: ``(N,)`` ``F(x) - mean_b F(b)``.
        rule: An integration rule name (see the module docstring).
        tolerance: Target ``|delta| / |F(x) - F(b)|``.
        max_steps: Most path points one image may cost (per baseline).
        batch_size: Rows per model call.

    Returns:
        An :class:`AdaptiveResult`; images that never met the tolerance keep the
        estimate with the smallest completeness error.
    """
    n = len(images)
    nested = rule in NESTED_RULES
    best = np.zeros(images.shape, dtype=np.float32)
    best_relative = np.full(n, np.inf)
    best_delta = np.zeros(n)
    steps = np.zeros(n, dtype=np.int64)
    running = np.zeros(images.shape, dtype=np.float64) if nested else None
    # The previous Romberg row (trapezoid, Simpson) per image: two columns of extrapolation.
    romberg = rule == "trapezoid"
    previous_t = np.zeros(images.shape, dtype=np.float32) if romberg else None
    previous_s = np.zeros(images.shape, dtype=np.float32) if romberg else None
    level = 0
    active = np.arange(n)
    done_alphas = np.zeros(0)
    level_points = first_points(rule)
    intervals = level_points - 1 if rule == "trapezoid" else level_points
    first = True
    while active.size:
        if nested:
            alphas, classes, h = _nested_level(rule, intervals)
            new = ~np.isin(np.round(alphas, 12), np.round(done_alphas, 12))
            cost = len(alphas)
            plan_alphas, plan_weights = alphas[new], classes[new]
        else:
            plan_alphas, plan_weights = integration_points(rule, level_points)
            cost = int(steps[active][0]) + level_points if active.size else level_points
        if cost > max_steps and not first:
            break
        plan = PathPlan(alphas=plan_alphas, weights=plan_weights, baselines=baselines[active])
        part = engine.integrate(images[active], targets[active], plan, batch_size)
        if nested:
            running[active] += part
            estimate = (h * running[active]).astype(np.float32)
            candidates = [estimate]
            if romberg:
                simpson = (estimate + (estimate - previous_t[active]) / 3.0) if level >= 1 else None
                if level >= 2:
                    candidates.append(simpson + (simpson - previous_s[active]) / 15.0)  # Boole's rule
                if simpson is not None:
                    candidates.append(simpson)
                    previous_s[active] = simpson
                previous_t[active] = estimate
            steps[active] = cost
            done_alphas = alphas
            intervals *= 2
        else:
            candidates = [part]
            steps[active] += level_points
            level_points *= 2
        for candidate in candidates:
            delta, relative = _completeness(candidate, gap[active])
            better = relative < best_relative[active]
            chosen = active[better]
            best[chosen] = candidate[better]
            best_relative[chosen] = relative[better]
            best_delta[chosen] = delta[better]
        active = active[best_relative[active] > tolerance]
        first = False
        level += 1
    return AdaptiveResult(best, best_delta, steps, best_relative <= tolerance)
