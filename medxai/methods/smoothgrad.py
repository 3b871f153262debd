"""SmoothGrad, SmoothGrad-squared and VarGrad over any path method.

Smilkov, Thorat, Kim, Viegas, Wattenberg (2017), "SmoothGrad: removing noise by
adding noise", arXiv:1706.03825; Hooker, Erhan, Kindermans, Kim (2019), "A
Benchmark for Interpretability Methods in Deep Neural Networks" (SmoothGrad-SQ,
VarGrad), arXiv:1806.10758.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from medxai.methods._engine.plan import STATISTICS, PathPlan
from medxai.methods.base import SHARED_OPTIONS, PathMethod, _check_positive_int, check_number
from medxai.methods.gradient import Gradient
from medxai.methods.integrated_gradients import IntegratedGradients

NOISE_MODES = ("relative", "absolute")
#: The registered methods SmoothGrad averages over noise (any of their names or aliases).
BASES: tuple[type[PathMethod], ...] = (Gradient, IntegratedGradients)


def _bases() -> dict[str, type[PathMethod]]:
    """Every registered name of a SmoothGrad base (``gradient``, ``saliency``, ``integrated_gradients``, ``ig``)."""
    from medxai.methods.registry import available_methods

    return {name: cls for name, cls in available_methods().items() if cls in BASES}


def _check_base_params(base: str, base_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``base_params`` at construction, with errors that name the key."""
    if base_params is not None and not isinstance(base_params, Mapping):
        raise ValueError(f"base_params must be a mapping of the base method's settings, got {base_params!r}")
    params = dict(base_params or {})
    shared = sorted(set(params) & {*SHARED_OPTIONS, "explained"})
    if shared:
        raise ValueError(
            f"base_params cannot set {', '.join(map(repr, shared))}: SmoothGrad passes its own "
            "to the base method; set them on SmoothGrad itself"
        )
    if params.get("steps") == "auto":
        raise ValueError(
            "base_params: steps 'auto' adapts the path per image and cannot be combined with "
            "noise samples; give SmoothGrad's integrated_gradients base a fixed number of steps"
        )
    if base in ("gradient", "saliency"):
        params.setdefault("absolute", False)
    return params


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
        samples = _check_positive_int("samples", samples)
        check_number("noise", noise)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        key, bases = str(base).lower().replace("-", "_"), _bases()
        if key not in bases:
            raise ValueError(f"base must be one of {', '.join(bases)}, got {base!r}")
        base_params = _check_base_params(key, base_params)
        try:
            self.base = bases[key](model, **{**self.shared_options(), "heatmap": None}, **base_params)
        except TypeError as err:
            raise ValueError(f"base_params: {err}") from err
        self.samples, self.noise, self.noise_mode = int(samples), float(noise), noise_mode
        self.statistic, self.seed = statistic, int(check_number("seed", seed))
        self._check_polarity()

    @classmethod
    def non_negative(cls, params: Mapping[str, Any]) -> bool:
        if params.get("statistic", "mean") in ("squared", "variance"):
            return True
        base = str(params.get("base", "gradient")).lower().replace("-", "_")
        return base in Gradient.names() and bool((params.get("base_params") or {}).get("absolute", False))

    def params(self) -> dict[str, Any]:
        base = {k: v for k, v in self.base.params().items() if k not in {*SHARED_OPTIONS, "explained"}}
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
