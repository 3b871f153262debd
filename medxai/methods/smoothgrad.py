"""SmoothGrad, SmoothGrad-squared and VarGrad over any path method.

Smilkov, Thorat, Kim, Viegas, Wattenberg (2017), "SmoothGrad: removing noise by
adding noise", arXiv:1706.03825; Hooker, Erhan, Kindermans, Kim (2019), "A
Benchmark for Interpretability Methods in Deep Neural Networks" (SmoothGrad-SQ,
VarGrad), arXiv:1806.10758.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from medxai.engine import STATISTICS, PathPlan
from medxai.methods.base import PathMethod
from medxai.methods.gradient import Gradient
from medxai.methods.integrated_gradients import IntegratedGradients

NOISE_MODES = ("relative", "absolute")
_BASES: dict[str, type[PathMethod]] = {
    "gradient": Gradient,
    "saliency": Gradient,
    "integrated_gradients": IntegratedGradients,
    "ig": IntegratedGradients,
}


class SmoothGrad(PathMethod):
    """A statistic of a base method's attributions over noisy copies of the input.

    Args:
        model: A built Keras model.
        samples: Noisy copies per image.
        noise: Noise level: a fraction of each image's value range (max - min)
            with ``noise_mode="relative"`` (the paper's 0.1-0.2), or the Gaussian
            sigma itself with ``noise_mode="absolute"``.
        noise_mode: ``"relative"`` or ``"absolute"``.
        statistic: ``"mean"`` (SmoothGrad), ``"squared"`` (SmoothGrad-squared) or
            ``"variance"`` (VarGrad).
        base: The smoothed method, ``"gradient"`` or ``"integrated_gradients"``.
        base_params: Parameters of the base method (e.g. ``{"steps": 16}``); the
            gradient base is signed unless ``{"absolute": True}``.
        seed: Seed of the noise: copy ``k`` of every image uses the noise drawn
            from ``(seed, k)``.
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`XAIMethod`).
    """

    name = "smoothgrad"
    aliases = ("smooth_grad",)

    def __init__(
        self,
        model,
        *,
        samples: int = 25,
        noise: float = 0.15,
        noise_mode: str = "relative",
        statistic: str = "mean",
        base: str = "gradient",
        base_params: Mapping[str, Any] | None = None,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
            raise ValueError(f"noise must be a non-negative number, got {noise!r}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        key = str(base).lower().replace("-", "_")
        if key not in _BASES:
            raise ValueError(f"base must be one of {', '.join(_BASES)}, got {base!r}")
        base_params = dict(base_params or {})
        if key in ("gradient", "saliency"):
            base_params.setdefault("absolute", False)
        self.base = _BASES[key](
            model,
            output=self.output,
            batch_size=self.batch_size,
            jit=self.engine.jit,
            precision=self.engine.precision,
            **base_params,
        )
        self.samples, self.noise, self.noise_mode = int(samples), float(noise), noise_mode
        self.statistic, self.seed = statistic, int(seed)

    def params(self) -> dict[str, Any]:
        base = {k: v for k, v in self.base.params().items() if k not in ("output", "batch_size", "jit", "precision")}
        return {
            **super().params(),
            "samples": self.samples,
            "noise": self.noise,
            "noise_mode": self.noise_mode,
            "statistic": self.statistic,
            "base": self.base.name,
            "base_params": base,
            "seed": self.seed,
        }

    def plan(self, images: np.ndarray) -> PathPlan:
        if self.noise_mode == "relative":
            axes = tuple(range(1, images.ndim))
            sigma = self.noise * (images.max(axis=axes) - images.min(axis=axes))
        else:
            sigma = np.full(len(images), self.noise)
        return replace(
            self.base.plan(images),
            noise_sigma=sigma.astype(np.float32),
            samples=self.samples,
            seed=self.seed,
            statistic=self.statistic,
        )
