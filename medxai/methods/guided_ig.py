"""Guided Integrated Gradients: an adaptive path that avoids high-gradient regions.

Kapishnikov, Venugopalan, Avci, Wedin, Terry, Bolukbasi (2021), "Guided Integrated
Gradients: an Adaptive Path Method for Removing Noise", CVPR, arXiv:2106.09788.

Algorithm 1 of the paper: the path starts at the baseline ``b``; at step ``t`` of
``T`` it must come to L1 distance ``(1 - t/T) * ||x - b||_1`` from the input. To get
there it repeatedly moves the ``fraction`` of features with the smallest absolute
gradient (among those not yet at their bound) toward the input, and adds
``grad * (change of x)`` to the attributions. ``max_dist`` bounds how far a feature
may run ahead of (or lag behind) the straight line at ``alpha = t/T`` (the
authors' "anchored" variant; ``max_dist=1`` is the unbounded path). The path ends at
the input, so the attributions sum to ``F(x) - F(b)`` up to discretisation, and a
linear model gets exactly ``w * (x - b)`` (any monotone path does).

Discretisation: each step adds ``grad(x_t) . (x_{t+1} - x_t)`` (a left Riemann sum),
but a selected feature jumps up to ``2 * max_dist`` of its range at once, so the
completeness error is governed by ``max_dist`` as much as by ``steps``: on a small
ReLU CNN (logits) about 12 % with the defaults whatever ``steps``, 3 % with
``max_dist=0.005``, and shrinking like ``1/steps`` with ``max_dist = 2/steps``.
The delta is reported per image; check it.

All images of a batch advance together: one engine call per step for the whole
batch, the feature selection is vectorised over images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medxai.methods._engine.baselines import make_baselines, validate_baseline
from medxai.methods._engine.plan import PathPlan
from medxai.methods._engine.targets import TargetLike, Targets
from medxai.methods.base import Explanation, PathMethod, _check_positive_int, check_number

_EPSILON = 1e-9  # the authors' tolerance for "reached the step's L1 target"


def _is_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorised ``math.isclose(a, b, rel_tol=_EPSILON, abs_tol=_EPSILON)``."""
    return np.abs(a - b) <= np.maximum(_EPSILON * np.maximum(np.abs(a), np.abs(b)), _EPSILON)


class GuidedIG(PathMethod):
    """Guided Integrated Gradients (Kapishnikov et al. 2021, Algorithm 1).

    Args:
        model: A built Keras model.
        steps: Path steps ``T`` (one gradient per image and step).
        fraction: Share of the features moved per selection, those with the
            smallest absolute gradient (the paper's ``p = 0.1``).
        max_dist: Most a feature's position may differ from the straight line's
            ``alpha = t/T``, in (0, 1] (0.02 as in the authors' code; 1 = unbounded).
        baseline: ``"zeros"``/``"black"``, ``"white"``, ``"uniform"`` (random),
            ``"blur"``, a float or an array, in the model's input space.
        seed: Seed of the ``"uniform"`` baseline.
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`XAIMethod`).

    Example:
        >>> gig = GuidedIG(model, steps=128)  # doctest: +SKIP
        >>> attributions, delta = gig.attribute(images, [1, 0], return_delta=True)  # doctest: +SKIP
    """

    name = "guided_ig"
    aliases = ("guided_integrated_gradients", "guidedig")
    has_delta = True

    def __init__(
        self,
        model,
        *,
        steps: int = 128,
        fraction: float = 0.1,
        max_dist: float = 0.02,
        baseline: str | float | np.ndarray = "zeros",
        seed: int = 0,
        **kwargs: Any,
    ):
        steps = _check_positive_int("steps", steps)
        check_number("fraction", fraction)
        check_number("max_dist", max_dist)
        validate_baseline(baseline, 1)
        super().__init__(model, **kwargs)
        self.steps, self.fraction, self.max_dist = int(steps), float(fraction), float(max_dist)
        self.baseline, self.seed = baseline, int(check_number("seed", seed))

    def params(self) -> dict[str, Any]:
        baseline = "array" if isinstance(self.baseline, np.ndarray) else self.baseline
        return {
            **super().params(),
            "steps": self.steps,
            "fraction": self.fraction,
            "max_dist": self.max_dist,
            "baseline": baseline,
            "seed": self.seed,
        }

    def plan(self, images: np.ndarray) -> PathPlan:
        raise ValueError("guided_ig adapts its path to the gradients step by step and has no fixed plan")

    def _gradients(self, points: np.ndarray, targets: Targets, shape: tuple[int, ...]) -> np.ndarray:
        """Gradients at ``(n, D)`` points, one engine call for all of them."""
        plan = PathPlan(alphas=np.ones(1), weights=np.ones(1))
        batch = points.reshape((-1, *shape)).astype(np.float32)
        return self.engine.integrate(batch, targets, plan, batch_size=self.batch_size).reshape(len(points), -1)

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        images, targets = self.engine.check_inputs(images, targets)
        baselines = make_baselines(images, self.baseline, seed=self.seed)
        n, shape = len(images), images.shape[1:]
        x_in = images.reshape(n, -1).astype(np.float64)
        base = baselines.reshape(n, -1).astype(np.float64)
        diff = x_in - base
        l1_total = np.abs(diff).sum(axis=1)
        moving = l1_total > 0
        x = base.copy()
        attributions = np.zeros_like(x_in)
        evaluations = np.where(moving, self.steps, 0)
        rows = np.flatnonzero(moving)
        for step in range(self.steps if rows.size else 0):
            grad_actual = np.zeros_like(x_in)
            grad_actual[rows] = self._gradients(x[rows], targets[rows], shape)
            grad = grad_actual.copy()
            alpha = (step + 1.0) / self.steps
            alpha_min, alpha_max = max(alpha - self.max_dist, 0.0), min(alpha + self.max_dist, 1.0)
            x_min, x_max = base + diff * alpha_min, base + diff * alpha_max
            l1_target = l1_total * (1.0 - alpha)
            going = moving.copy()
            while going.any():
                x_old = x.copy()
                with np.errstate(divide="ignore", invalid="ignore"):
                    x_alpha = np.where(diff != 0, (x - base) / diff, alpha_max)
                lagging = (x_alpha < alpha_min) & going[:, None]
                x[lagging] = x_min[lagging]
                l1_current = np.abs(x - x_in).sum(axis=1)
                still = going & ~_is_close(l1_target, l1_current)
                grad[x == x_max] = np.inf
                threshold = np.quantile(np.abs(grad), self.fraction, axis=1, method="lower")
                selected = (np.abs(grad) <= threshold[:, None]) & (grad != np.inf) & still[:, None]
                l1_selected = (np.abs(x - x_max) * selected).sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    gamma = np.where(l1_selected > 0, (l1_current - l1_target) / l1_selected, np.inf)
                whole = selected & (gamma > 1)[:, None]
                x[whole] = x_max[whole]
                part = selected & (gamma <= 1)[:, None]
                step_share = np.where(gamma <= 1, gamma, 0.0)[:, None]  # no inf * 0 where unused
                x[part] = (x + (x_max - x) * step_share)[part]
                attributions += (x - x_old) * grad_actual
                # on to the next selection while the target is not reached; stop where nothing can move
                going = still & (gamma > 1) & (l1_selected > 0)
        result = attributions.reshape(images.shape).astype(np.float32)
        gap = self._gap(images, targets, baselines)
        delta = result.reshape(n, -1).sum(axis=1, dtype=np.float64) - gap
        return Explanation(result, delta, gap, evaluations, np.full(n, self.steps))
