"""Integrated Gradients.

Sundararajan, Taly, Yan (2017), "Axiomatic Attribution for Deep Networks",
arXiv:1703.01365. ``IG_i(x) = (x_i - b_i) * integral_0^1 dF(b + a (x - b)) / dx_i da``,
computed with an explicit quadrature rule; completeness says the attributions
sum to ``F(x) - F(b)``, and the per-image delta reports how far they are from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medxai.engine import PathPlan
from medxai.methods.base import PathMethod
from medxai.methods.baselines import make_baselines, validate_baseline
from medxai.methods.quadrature import integration_points


class IntegratedGradients(PathMethod):
    """Integrated Gradients along the straight path from a baseline to the input.

    Args:
        model: A built Keras model.
        steps: Gradient evaluations per path (per baseline).
        rule: ``"gauss_legendre"`` (default), ``"trapezoid"``, ``"riemann_left"``,
            ``"riemann_right"`` or ``"riemann_middle"``.
        baseline: ``"zeros"``/``"black"``, ``"white"``, ``"uniform"`` (random),
            ``"blur"``, a float or an array, in the model's input space.
        n_baselines: Average the attributions over this many random baselines.
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
        steps: int = 32,
        rule: str = "gauss_legendre",
        baseline: str | float | np.ndarray = "zeros",
        n_baselines: int = 1,
        seed: int = 0,
        blur_sigma: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        self.alphas, self.weights = integration_points(rule, steps)
        validate_baseline(baseline, n_baselines)
        if blur_sigma is not None and not blur_sigma > 0:
            raise ValueError(f"blur_sigma must be positive, got {blur_sigma!r}")
        self.steps, self.rule = int(steps), rule
        self.baseline, self.n_baselines = baseline, int(n_baselines)
        self.seed, self.blur_sigma = int(seed), blur_sigma

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
        }

    def plan(self, images: np.ndarray) -> PathPlan:
        baselines = make_baselines(
            images, self.baseline, n_baselines=self.n_baselines, seed=self.seed, blur_sigma=self.blur_sigma
        )
        return PathPlan(alphas=self.alphas, weights=self.weights, baselines=baselines)
