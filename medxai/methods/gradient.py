"""Plain input gradient (saliency).

Simonyan, Vedaldi, Zisserman (2014), "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", arXiv:1312.6034.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medxai.methods._engine.plan import PathPlan
from medxai.methods.base import PathMethod


class Gradient(PathMethod):
    """d(target output) / d(input), one gradient per image.

    Args:
        model: A built Keras model.
        absolute: Return ``|gradient|`` (the saliency map of Simonyan et al.);
            False returns the signed gradient.
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`XAIMethod`).

    Example:
        >>> Gradient(model).compute_heatmap(image, class_index=1)  # doctest: +SKIP
    """

    name = "gradient"
    aliases = ("saliency",)

    def __init__(self, model, *, absolute: bool = True, **kwargs: Any):
        super().__init__(model, **kwargs)
        if not isinstance(absolute, bool):
            raise ValueError(f"absolute must be true or false, got {absolute!r}")
        self.absolute = absolute
        self._check_polarity()

    @classmethod
    def non_negative(cls, params: Mapping[str, Any]) -> bool:
        return bool(params.get("absolute", True))

    def params(self) -> dict[str, Any]:
        return {**super().params(), "absolute": self.absolute}

    def plan(self, images: np.ndarray) -> PathPlan:
        return PathPlan(alphas=np.ones(1), weights=np.ones(1), transform="abs" if self.absolute else None)
