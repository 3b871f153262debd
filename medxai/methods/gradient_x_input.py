"""Gradient times input.

Shrikumar, Greenside, Shcherbina, Kundaje (2016), "Not Just a Black Box: Learning
Important Features Through Propagating Activation Differences", arXiv:1605.01713;
compared with other methods by Ancona et al. (2018), arXiv:1711.06104, and Adebayo
et al. (2018), "Sanity Checks for Saliency Maps", arXiv:1810.03292.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medxai.methods._engine.baselines import make_baselines, validate_baseline
from medxai.methods._engine.plan import PathPlan
from medxai.methods.base import PathMethod, check_number


class GradientXInput(PathMethod):
    """``dY/dx * (x - baseline)``: the signed gradient at the input times its distance from a baseline.

    A path method with one point: the gradient at ``alpha = 1`` (the input itself),
    multiplied by ``x - baseline`` by the engine. With the default zero baseline that is
    exactly ``gradient * x``; on a linear model it is ``w * x``, whose sum is
    ``F(x) - F(0)`` (one-step Integrated Gradients).

    Args:
        model: A built Keras model.
        baseline: ``"zeros"`` (default; 0 in the model's input space, after
            preprocessing), ``"black"``, ``"white"``, ``"blur"``, ``"uniform"`` (seed 0),
            a float or an array shaped like one image or the batch.
        blur_sigma: Sigma of the ``"blur"`` baseline (default 1/8 of the smallest side).
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``jit``, ``precision``,
            ``engine`` (see :class:`~medxai.methods.base.XAIMethod`).

    Example:
        >>> GradientXInput(model).compute_heatmap(image, class_index=1)  # doctest: +SKIP
    """

    name = "gradient_x_input"
    aliases = ("gradient_times_input", "input_x_gradient", "grad_x_input")

    def __init__(
        self,
        model,
        *,
        baseline: str | float | np.ndarray = "zeros",
        blur_sigma: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        validate_baseline(baseline, 1)
        check_number("blur_sigma", blur_sigma)
        self.baseline, self.blur_sigma = baseline, blur_sigma
        self._check_polarity()

    def params(self) -> dict[str, Any]:
        baseline = "array" if isinstance(self.baseline, np.ndarray) else self.baseline
        return {**super().params(), "baseline": baseline, "blur_sigma": self.blur_sigma}

    def plan(self, images: np.ndarray) -> PathPlan:
        baselines = make_baselines(images, self.baseline, blur_sigma=self.blur_sigma)
        return PathPlan(alphas=np.ones(1), weights=np.ones(1), baselines=baselines)
