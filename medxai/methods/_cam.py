"""The activation-map (CAM) family: maps made from one layer's activations and their gradients.

Zhou et al. (2016), "Learning Deep Features for Discriminative Localization" (CAM),
arXiv:1512.04150, weighted the last convolutional feature maps by the classifier
weights; the gradient-based members (Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM) take
the weights from ``dY/dA`` instead, so any architecture works. Each subclass only says
how to :meth:`CAMMethod.combine` the activations ``A`` and gradients ``g`` into a map;
the shared :class:`~medxai.methods._engine.activations.ActivationEngine` computes them
(chunked by ``batch_size``), and the map is drawn on the input where the layer's cells lie
on it (:mod:`medxai.methods._engine.geometry`): linear between the cells' receptive-field
centres, over the pixels the model sees, and exactly 0 on pixels a crop before the layer
removes (nothing is attributed to what the model never sees). Without crops, padding or
shifts on the way this is the linear resize of the whole map over the whole input.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from medxai.methods._engine.targets import TargetLike
from medxai.methods.base import ExplainingMethod, Explanation

if TYPE_CHECKING:
    import keras


class CAMMethod(ExplainingMethod):
    """Base of the activation-map methods (2D and 3D).

    Args:
        model: A built Keras model (one input, one output).
        layer: The layer whose activations are explained; default (None) is the last
            layer with spatial outputs (rank 4 for 2D, rank 5 for 3D), found from the
            graph by walking back from the output.
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``jit``, ``precision``,
            ``engine`` (see :class:`~medxai.methods.base.XAIMethod`).

    :meth:`attribute` returns float32 ``(N, *spatial, C)``: the non-negative map, drawn
    on the input (see the module docstring; 0 outside what the model sees) and repeated on
    every input channel (a CAM has no per-channel values). The maps are never negative, so
    heatmap polarity must be ``absolute``.

    Raises:
        ValueError: at construction, when the model has no such layer (the message
            names ``layer`` and lists the candidate layers), or when a layer of unknown
            geometry (a ``Lambda``, a custom layer) between the input and ``layer`` keeps the
            map from being placed on the input while the others crop, pad or shift the grid
            (the message names that layer and ``layer``).
    """

    def __init__(self, model: keras.Model, *, layer: str | None = None, **kwargs: Any):
        super().__init__(model, **kwargs)
        from medxai.methods._engine.activations import (
            ActivationEngine,  # deferred: TensorFlow starts here
        )

        computing = self.engine.computing_model  # the half-precision copy with precision: mixed
        self.activations = ActivationEngine(model, layer, self.output_spec, self.engine.jit, source=computing)
        self.layer = self.activations.layer
        self._check_polarity()

    @classmethod
    def non_negative(cls, params: Mapping[str, Any]) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        return {**super().params(), "layer": self.layer}

    @abc.abstractmethod
    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """The maps from a chunk's activations and gradients.

        Args:
            activations: ``(n, *spatial, K)`` float32 ``A``.
            gradients: ``(n, *spatial, K)`` float32 ``dY/dA``.

        Returns:
            ``(n, *spatial)`` non-negative maps at the layer's resolution.
        """

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """The upsampled maps, the same on every channel (no completeness delta)."""
        images, targets = self.engine.check_inputs(images, targets)
        self.engine.sync_weights()  # precision "mixed": copy the current weights into the half model
        result = np.empty(images.shape, dtype=np.float32)
        for start, activations, gradients in self.activations.chunks(images, targets, self.batch_size):
            maps = np.maximum(self.combine(activations.astype(np.float64), gradients.astype(np.float64)), 0.0)
            result[start : start + len(maps)] = self.draw(maps, images.shape[1:-1])[..., None]  # every channel
        return Explanation(result, evaluations=np.ones(len(images), dtype=np.int64))

    def draw(self, maps: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
        """``(n, *grid)`` maps at the layer's resolution on inputs of ``spatial`` shape: ``(n, *spatial)`` float32,
        linear between the cells (a non-negative map stays non-negative), 0 where the model sees nothing."""
        from medxai.methods._engine.geometry import upsample  # deferred: TensorFlow starts here

        matrices, seen = self.activations.placement(spatial)
        return np.where(seen, upsample(maps, matrices), 0.0).astype(np.float32)


def spatial_axes(x: np.ndarray) -> tuple[int, ...]:
    """The spatial axes of a ``(n, *spatial, K)`` array."""
    return tuple(range(1, x.ndim - 1))
