"""Blur Integrated Gradients: integrate along a path of ever less blurred images.

Xu, Venugopalan, Sundararajan (2020), "Attribution in Scale and Space", CVPR,
arXiv:2004.03383. With ``x(s)`` the input Gaussian-blurred with sigma ``s``
(``x(0) = x``), Blur IG is
``BlurIG_i(x) = integral_{sigma_max}^{0} dF(x(s))/dx_i * dx_i(s)/ds ds``, so the
attributions sum to ``F(x) - F(x(sigma_max))`` (completeness; the baseline is the
most blurred image, which adds no feature the input lacks).

Discretisation (ours, documented): sigma runs over ``steps`` equal segments of
``[0, max_sigma]`` (linear in sigma, as the authors' code); on segment ``k`` the
gradient is taken at the blurred image of the segment's middle sigma (midpoint
rule) and multiplied by the exact change of the blurred image over the segment,
``x(s_k) - x(s_{k+1})``. The changes telescope to ``x - x(max_sigma)``, so a linear
model gets ``w * (x - x(max_sigma))`` exactly for any ``steps``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medxai.filters import gaussian_blur
from medxai.methods._engine.plan import PathPlan
from medxai.methods._engine.targets import TargetLike
from medxai.methods.base import Explanation, PathMethod, _check_positive_int, check_number

#: Default ``max_sigma`` as a fraction of the smallest spatial side (the authors use
#: sigma 50 on 299-pixel InceptionV3 inputs, about 1/6).
DEFAULT_MAX_SIGMA_FRACTION = 1.0 / 6.0


def default_max_sigma(spatial_shape: tuple[int, ...]) -> float:
    """Default ``max_sigma`` in pixels: 1/6 of the smallest spatial side, at least 1."""
    return max(1.0, min(spatial_shape) * DEFAULT_MAX_SIGMA_FRACTION)


class BlurIG(PathMethod):
    """Blur Integrated Gradients (Xu et al. 2020) on the shared gradient engine.

    Args:
        model: A built Keras model.
        steps: Gradient evaluations per image (segments of ``[0, max_sigma]``).
        max_sigma: Sigma of the most blurred image (the path's start), in pixels
            (voxels in 3D), in the model's input space; default 1/6 of the
            smallest spatial side (at least 1).
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`XAIMethod`).

    Example:
        >>> blur_ig = BlurIG(model, steps=32)  # doctest: +SKIP
        >>> attributions, delta = blur_ig.attribute(images, [1, 0], return_delta=True)  # doctest: +SKIP
    """

    name = "blur_ig"
    aliases = ("blur_integrated_gradients", "blurig")
    has_delta = True

    def __init__(self, model, *, steps: int = 32, max_sigma: float | None = None, **kwargs: Any):
        steps = _check_positive_int("steps", steps)
        check_number("max_sigma", max_sigma)
        super().__init__(model, **kwargs)
        self.steps = int(steps)
        self.max_sigma = None if max_sigma is None else float(max_sigma)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "steps": self.steps, "max_sigma": self.max_sigma}

    def sigma_max(self, images: np.ndarray) -> float:
        """The ``max_sigma`` used for this ``(N, *spatial, C)`` batch."""
        return default_max_sigma(images.shape[1:-1]) if self.max_sigma is None else self.max_sigma

    def sigmas(self, images: np.ndarray) -> np.ndarray:
        """The ``steps + 1`` segment ends ``0 = s_0 < ... < s_steps = max_sigma``."""
        return np.linspace(0.0, self.sigma_max(images), self.steps + 1)

    @staticmethod
    def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
        """The path point ``x(sigma)`` of a batch (``sigma=0``: the images themselves)."""
        images = np.asarray(images, dtype=np.float32)
        return images.copy() if sigma == 0 else gaussian_blur(images, sigma, batch=True)

    def plan(self, images: np.ndarray) -> PathPlan:
        ends = self.sigmas(images)
        middles = (ends[:-1] + ends[1:]) / 2

        def path(image_index: np.ndarray, point_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # one batched blur per sigma the chunk needs, over the chunk's images only
            image_u, row = np.unique(image_index, return_inverse=True)
            chunk = images[image_u]
            edge = {int(e): self.blurred(chunk, ends[e]) for e in np.unique(np.r_[point_index, point_index + 1])}
            points = np.empty((len(image_index), *images.shape[1:]), dtype=np.float32)
            directions = np.empty_like(points)
            for k in np.unique(point_index):
                rows = np.flatnonzero(point_index == k)
                points[rows] = self.blurred(chunk, middles[k])[row[rows]]
                directions[rows] = (edge[int(k)] - edge[int(k) + 1])[row[rows]]
            return points, directions

        return PathPlan(alphas=1.0 - middles / ends[-1], weights=np.ones(self.steps), path=path)

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        images, targets = self.engine.check_inputs(images, targets)
        attributions = self.engine.integrate(images, targets, self.plan(images), batch_size=self.batch_size)
        start = self.blurred(images, self.sigma_max(images))
        gap = self._gap(images, targets, start[:, None])
        delta = attributions.reshape(len(images), -1).sum(axis=1, dtype=np.float64) - gap
        n = len(images)
        return Explanation(attributions, delta, gap, np.full(n, self.steps), np.full(n, self.steps))
