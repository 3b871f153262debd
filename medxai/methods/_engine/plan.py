"""What a path method asks the engine to integrate: the :class:`PathPlan` (numpy only).

A method says *what* to integrate (path points, weights, baselines, noise, the
statistic); :mod:`medxai.methods._engine.engine` says *how*. Keeping the plan
free of TensorFlow lets method classes be imported, listed and validated
without starting TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: An explicit path: ``path(image_index, point_index) -> (points, directions)`` for the rows of
#: one chunk (``(R,)`` int arrays in, two ``(R, *spatial, C)`` float32 arrays out).
PathFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

STATISTICS = ("mean", "squared", "variance")
TRANSFORMS = (None, "abs")


@dataclass(frozen=True)
class PathPlan:
    """What one attribution call integrates.

    Attributes:
        alphas: ``(P,)`` path positions in [0, 1] (``[1.0]`` for a plain gradient).
        weights: ``(P,)`` quadrature weights.
        baselines: ``(N, B, *spatial, C)`` baselines per image in the model's input
            space, or None for gradients at the (noisy) input itself. With
            baselines every gradient is multiplied by ``(x - baseline)``.
        noise_sigma: ``(N,)`` standard deviation of the Gaussian noise added to
            each image, or None for no noise.
        samples: Noisy copies per image (1 without noise).
        seed: Seed of the noise; copy ``k`` of every image uses the noise drawn
            from ``(seed, k)``, so results never depend on batching or order.
        transform: None or ``"abs"``, applied to each sample's attribution
            (its mean over the baselines) before the statistic.
        statistic: ``"mean"``, ``"squared"`` (mean of squares) or ``"variance"``.
        path: An explicit, possibly curved path instead of the straight one (Blur IG):
            called per chunk with the rows' image and point indices, it returns each
            row's point and direction, and the row adds ``weight * grad F(point) *
            direction``. Points are made chunk by chunk, so memory stays bounded by
            ``batch_size``. Needs ``baselines`` and ``noise_sigma`` None; ``alphas``
            then only count (and locate, in [0, 1]) the points.
    """

    alphas: np.ndarray
    weights: np.ndarray
    baselines: np.ndarray | None = None
    noise_sigma: np.ndarray | None = None
    samples: int = 1
    seed: int = 0
    transform: str | None = None
    statistic: str = "mean"
    path: PathFunction | None = None

    def __post_init__(self) -> None:
        if len(self.alphas) != len(self.weights) or len(self.alphas) == 0:
            raise ValueError("alphas and weights must be non-empty and of equal length")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {self.statistic!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.samples < 1:
            raise ValueError("samples must be at least 1")
        if self.path is not None and (self.baselines is not None or self.noise_sigma is not None):
            raise ValueError("an explicit path takes no baselines and no noise")

    @property
    def n_baselines(self) -> int:
        return 1 if self.baselines is None else int(self.baselines.shape[1])

    @property
    def evaluations_per_image(self) -> int:
        """Gradient evaluations (model forward+backward rows) per image."""
        return self.samples * self.n_baselines * len(self.alphas)
