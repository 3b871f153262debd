"""What each image of a batch explains: a class index, or a region of a dense output (no TensorFlow here).

:class:`Targets` is what :meth:`GradientEngine.check_inputs` hands every engine: per image a
channel (the class index for a classifier) and, for region targets, the region's weights
over the output grid (see :mod:`medxai.regions`). Engines index it by image like an array
(``targets[image]``) and pass :meth:`Targets.parts` into their compiled routines, where
:func:`medxai.methods._engine.engine.select` turns the model's output into one score per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medxai.regions import ResolvedRegion

#: What a method's ``targets`` takes: a class index or one per image (a classifier), a
#: :class:`~medxai.regions.Region` or one per image (a dense output), or checked :class:`Targets`.
#: Typed ``Any`` because methods rebind the argument to the :class:`Targets` it is checked into.
TargetLike = Any


@dataclass(frozen=True, eq=False)
class Targets:
    """Per-image targets of a batch.

    Attributes:
        channel: ``(N,)`` int32: the class (classifier) or the output channel (region).
        weights: ``(N, *output_spatial)`` float32 region weights (1 inside, ``1/voxels`` for a
            mean, 0 outside), or None for class targets.
        regions: The resolved regions (region targets), else None.
    """

    channel: np.ndarray
    weights: np.ndarray | None = None
    regions: tuple[ResolvedRegion, ...] | None = None

    @classmethod
    def of_regions(cls, regions: Sequence[ResolvedRegion]) -> Targets:
        """Targets from one resolved region per image (raises EmptyRegionError for an empty one)."""
        channel = np.array([r.channel for r in regions], dtype=np.int32)
        return cls(channel, np.stack([r.weights() for r in regions]), tuple(regions))

    def __len__(self) -> int:
        return len(self.channel)

    def __getitem__(self, index: Any) -> Targets:
        """The targets of some images (an int array, a slice or a bool mask over images)."""
        channel = self.channel[index]
        if channel.ndim == 0:
            raise TypeError("index Targets with an array or a slice of images, not one integer")
        if self.weights is None:
            return Targets(channel)
        picked = tuple(np.asarray(self.regions, dtype=object)[index]) if self.regions is not None else None
        return Targets(channel, self.weights[index], picked)

    @property
    def is_region(self) -> bool:
        return self.weights is not None

    def parts(self) -> tuple[np.ndarray, np.ndarray | None]:
        """``(channel, weights)`` for a compiled routine (``weights`` None for classes)."""
        return self.channel, self.weights

    def pick(self, outputs: np.ndarray) -> np.ndarray:
        """The explained score of each image from its explained output ``(N, classes)`` or ``(N, *spatial, C)``.

        Returns:
            ``(N,)`` float64: ``outputs[i, channel[i]]``, or the weighted region sum in float64.
        """
        outputs = np.asarray(outputs)
        rows = np.arange(len(outputs))
        if self.weights is None:
            return outputs[rows, self.channel].astype(np.float64)
        values = outputs[..., :].astype(np.float64)
        picked = np.take_along_axis(values, self.channel.reshape((-1,) + (1,) * (values.ndim - 1)), axis=-1)[..., 0]
        axes = tuple(range(1, picked.ndim))
        return np.sum(picked * self.weights.astype(np.float64), axis=axes)

    def repeat(self, count: int) -> Targets:
        """Each image's target ``count`` times in a row (for baselines or copies of an image)."""
        return self[np.repeat(np.arange(len(self)), count)]
