"""Integrated Gradients.

Sundararajan, Taly, Yan (2017), "Axiomatic Attribution for Deep Networks",
arXiv:1703.01365. ``IG_i(x) = (x_i - b_i) * integral_0^1 dF(b + a (x - b)) / dx_i da``,
computed with an explicit quadrature rule; completeness says the attributions
sum to ``F(x) - F(b)``, and the per-image delta reports how far they are from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medxai.methods._engine.adaptive import (
    adaptive_integrated_gradients,
    smallest_max_steps,
)
from medxai.methods._engine.baselines import make_baselines, validate_baseline
from medxai.methods._engine.plan import PathPlan
from medxai.methods._engine.quadrature import ADAPTIVE_ONLY_RULES, MAX_POINTS, canonical_rule, integration_points
from medxai.methods.base import Explanation, PathMethod, check_number

AUTO = "auto"


class IntegratedGradients(PathMethod):
    """Integrated Gradients along the straight path from a baseline to the input.

    Args:
        model: A built Keras model.
        steps: Gradient evaluations per path (per baseline), or ``"auto"``: per
            image, refine the path until the map's relative L2 change between
            two levels (or, for a Gauss-Kronrod rule, its embedded error estimate)
            is at most ``tolerance`` (per-pixel accuracy, see
            :mod:`medxai.methods._engine.adaptive`; completeness is reported separately).
        rule: ``"gauss_legendre"``, ``"trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"`` or ``"riemann_middle"`` (Captum's ``"gausslegendre"`` and
            ``"riemann_trapezoid"`` are accepted too). Default: Gauss-Legendre
            for a fixed number of steps. ``steps="auto"`` also takes
            ``"adaptive_simpson"`` (its default), ``"gauss_kronrod_7"`` and
            ``"gauss_kronrod_15"``: adaptive subdivision of the path with an embedded
            pair (Simpson/trapezoid, Lyness 1969; Gauss-Kronrod, Kronrod 1965), whose
            per-pixel error estimate costs no extra gradient; Simpson's halves reuse
            every point, so it spends the fewest gradients on ReLU networks. The
            fixed rules refine by levels there (the trapezoid is nested: each level
            reuses every earlier gradient).
        tolerance: Target relative L2 error of the map with ``steps="auto"``.
        max_steps: Most path points per baseline of a map with ``steps="auto"``;
            an image that reaches it keeps its finest map and a warning.
        baseline: ``"zeros"``/``"black"``, ``"white"``, ``"uniform"`` (random),
            ``"blur"``, a float or an array, in the model's input space.
        n_baselines: Average the attributions over this many random baselines (with
            ``uncertainty``, the SD map is over them).
        seed: Seed of random baselines.
        blur_sigma: Sigma of the ``"blur"`` baseline (default 1/8 of the smallest side).
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`XAIMethod`).

    Example:
        >>> ig = IntegratedGradients(model, steps=32)  # doctest: +SKIP
        >>> heatmap = ig.compute_heatmap(image, class_index=1)  # doctest: +SKIP
        >>> attributions, delta = ig.attribute(images, [1, 0], return_delta=True)  # doctest: +SKIP
    """

    name = "integrated_gradients"
    aliases = ("ig",)
    has_delta = True

    def __init__(
        self,
        model,
        *,
        steps: int | str = 32,
        rule: str | None = None,
        baseline: str | float | np.ndarray = "zeros",
        n_baselines: int = 1,
        seed: int = 0,
        blur_sigma: float | None = None,
        tolerance: float = 0.01,
        max_steps: int = 257,
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        rule = ("adaptive_simpson" if steps == AUTO else "gauss_legendre") if rule is None else canonical_rule(rule)
        if steps == AUTO:
            check_number("tolerance", tolerance)
            least = smallest_max_steps(rule)
            if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < least:
                raise ValueError(f"max_steps must be an integer >= {least} for rule {rule!r}, got {max_steps!r}")
            if max_steps > MAX_POINTS:
                raise ValueError(f"max_steps must be at most {MAX_POINTS}, got {max_steps!r}")
            self.alphas: np.ndarray | None = None
            self.weights: np.ndarray | None = None
        else:
            self.alphas, self.weights = integration_points(rule, int(steps))
        self.tolerance, self.max_steps = float(tolerance), int(max_steps)
        validate_baseline(baseline, n_baselines)
        if steps == AUTO and n_baselines > 1 and self.uncertainty is not None:
            raise ValueError(
                "steps 'auto' with n_baselines > 1 has no per-map SD over baselines; give a fixed number of "
                "steps with uncertainty"
            )
        check_number("blur_sigma", blur_sigma)
        self.steps, self.rule = steps if steps == AUTO else int(steps), rule
        self.baseline, self.n_baselines = baseline, int(n_baselines)
        self.seed, self.blur_sigma = int(check_number("seed", seed)), blur_sigma

    def params(self) -> dict[str, Any]:
        baseline = "array" if isinstance(self.baseline, np.ndarray) else self.baseline
        return {
            **super().params(),
            "steps": self.steps,
            "rule": self.rule,
            "baseline": baseline,
            "n_baselines": self.n_baselines,
            "seed": self.seed,
            "blur_sigma": self.blur_sigma,
            **({"tolerance": self.tolerance, "max_steps": self.max_steps} if self.steps == AUTO else {}),
        }

    def _baselines(self, images: np.ndarray) -> np.ndarray:
        return make_baselines(
            images, self.baseline, n_baselines=self.n_baselines, seed=self.seed, blur_sigma=self.blur_sigma
        )

    def plan(self, images: np.ndarray) -> PathPlan:
        if self.alphas is None or self.weights is None:  # steps="auto"
            raise ValueError("steps='auto' adapts per image and has no fixed plan; give a number of steps here")
        return PathPlan(alphas=self.alphas, weights=self.weights, baselines=self._baselines(images))

    def explain(self, images: np.ndarray, targets) -> Explanation:
        if self.steps != AUTO:
            return super().explain(images, targets)
        images, targets = self.engine.check_inputs(images, targets)
        baselines = self._baselines(images)
        result = adaptive_integrated_gradients(
            self.engine,
            images,
            targets,
            baselines,
            rule=self.rule,
            tolerance=self.tolerance,
            max_steps=self.max_steps,
            batch_size=self.batch_size,
        )
        gap = self._gap(images, targets, baselines)
        delta = result.attributions.reshape(len(images), -1).sum(axis=1, dtype=np.float64) - gap
        measured = "estimated error" if self.rule in ADAPTIVE_ONLY_RULES else "last relative change"
        warnings = np.array(
            [
                ""
                if met
                else f"per-pixel tolerance {self.tolerance:g} not met within max_steps={self.max_steps} "
                f"({measured} {change:.3g}); kept the finest map"
                for met, change in zip(result.met, result.change)
            ],
            dtype=object,
        )
        return Explanation(
            result.attributions, delta, gap, result.evaluations * self.n_baselines, result.steps, warnings
        )
