"""Occlusion: the score lost when a window of the image is covered.

Zeiler, Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medxai._validation import per_axis_ints
from medxai.methods._engine.targets import TargetLike
from medxai.methods.base import FILL_MEAN, ExplainingMethod, Explanation, check_fill

if TYPE_CHECKING:  # importing the class starts no TensorFlow
    import keras
    import tensorflow as tf


def default_window(spatial: Sequence[int]) -> tuple[int, ...]:
    """1/8 of each side, at least 1 pixel: 28 x 28 on a 224 x 224 image, 1 on an 8 x 8 one."""
    return tuple(max(1, int(side) // 8) for side in spatial)


def window_starts(size: int, window: int, stride: int) -> np.ndarray:
    """Start indices along one axis: ``0, stride, 2 stride, ...`` and a last window flush with the border.

    The last window is moved back to end at the border when the stride does not
    land there, so ``stride <= window`` covers every pixel.
    """
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window and stride <= window:
        starts.append(size - window)
    return np.asarray(starts, dtype=np.int32)


class _Windows:
    """The occlusion perturbation for the forward engine: a window start per row, a fill per image.

    The last row of each image is the image itself (an empty window), so ``F(x)`` is scored in
    the same model calls as the occluded copies.
    """

    key = "occlusion"

    def __init__(self, spatial: Sequence[int], window: Sequence[int], stride: Sequence[int], fill: float | str):
        self.window = np.asarray(window, dtype=np.int32)
        self.starts = [window_starts(s, w, t) for s, w, t in zip(spatial, window, stride)]
        self.grid = tuple(len(s) for s in self.starts)
        self.windows = int(np.prod(self.grid))
        self.rows_per_image = self.windows + 1
        self.fill = fill

    def per_image(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.fill == FILL_MEAN:  # each image's own mean, per channel
            axes = tuple(range(1, images.ndim - 1))
            fill = images.mean(axis=axes, dtype=np.float64)
        else:
            fill = np.full((len(images), images.shape[-1]), float(self.fill))
        return {"fill": fill.astype(np.float32)}

    def rows(self, copies: np.ndarray) -> dict[str, np.ndarray]:
        whole = copies == self.windows
        index = np.unravel_index(np.where(whole, 0, copies), self.grid)
        start = np.stack([s[i] for s, i in zip(self.starts, index)], axis=1).astype(np.int32)
        window = np.where(whole[:, None], 0, self.window[None, :]).astype(np.int32)
        return {"start": start, "window": window}

    @staticmethod
    def apply(images: tf.Tensor, per_image: dict[str, tf.Tensor], rows: dict[str, tf.Tensor]):
        import tensorflow as tf

        rank = len(images.shape) - 2
        shape = tf.shape(images)
        mask = None
        for axis in range(rank):
            index = tf.range(shape[axis + 1])[None, :]
            start, width = rows["start"][:, axis : axis + 1], rows["window"][:, axis : axis + 1]
            inside = tf.cast((index >= start) & (index < start + width), images.dtype)
            inside = tf.reshape(inside, [-1] + [1] * axis + [shape[axis + 1]] + [1] * (rank - axis - 1))
            mask = inside if mask is None else mask * inside
        if mask is None:
            raise ValueError("occlusion needs at least one spatial axis")
        fill = tf.reshape(per_image["fill"], [-1] + [1] * rank + [images.shape[-1]])
        return images + mask[..., None] * (fill - images), mask


class Occlusion(ExplainingMethod):
    """Occlusion (Zeiler & Fergus 2014, arXiv:1311.2901), batched on the forward engine.

    A window slides over the image (2D or 3D) and is filled with ``fill``; the
    attribution of a pixel is the mean, over the windows covering it, of
    ``F(x) - F(x with the window filled)`` for the target (the logit by default).
    Positive values are evidence for the class. Windows start at ``0, stride,
    2 stride, ...`` along each axis, plus one flush with the far border when the
    stride does not land there and ``stride <= window``, so such settings cover every
    pixel; with ``stride > window`` pixels no window covers get 0. The map has the
    same value on every channel (a window covers all channels).

    Args:
        model: A built Keras model.
        window: Window size in pixels: one int, or one per spatial axis. Default
            (None): 1/8 of each side, at least 1 (28 on a 224-pixel side).
        stride: Step between windows (int or one per axis). Default (None): the
            window, so windows tile the image without overlap.
        fill: The value a window is filled with, in the model's input space
            (after windowing and scaling): a float (default 0), or ``"mean"`` for
            each image's own mean per channel.
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``engine`` (see :class:`XAIMethod`).
            ``batch_size`` bounds the occluded copies per model call; the result depends neither on
            it nor on the other images of the batch (see :mod:`medxai.methods._engine.forward`).

    Example:
        >>> Occlusion(model, window=16, stride=8).compute_heatmap(image, class_index=1)  # doctest: +SKIP
    """

    name = "occlusion"

    def __init__(
        self,
        model: keras.Model,
        *,
        window: int | Sequence[int] | None = None,
        stride: int | Sequence[int] | None = None,
        fill: float | str = 0.0,
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        spatial = self.engine.input_shape[:-1]
        rank = len(spatial)
        self.window = per_axis_ints("window", window, rank)
        self.stride = per_axis_ints("stride", stride, rank)
        self.fill = check_fill(fill)
        if all(s is not None for s in spatial):
            self._geometry(tuple(int(s) for s in spatial if s is not None))
        self._check_polarity()

    def _geometry(self, spatial: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The window and stride for images of this spatial shape; ValueError when the window does not fit."""
        window = self.window or default_window(spatial)
        stride = self.stride or window
        if any(w > s for w, s in zip(window, spatial)):
            raise ValueError(
                f"window {window} is larger than the image {spatial}: each side must be at most the image's"
            )
        return window, stride

    def params(self) -> dict[str, Any]:
        return {**super().params(), "window": self.window, "stride": self.stride, "fill": self.fill}

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """Attributions and the model evaluations they cost per image (windows + the image itself)."""
        from medxai.methods._engine.forward import (
            forward_engine,  # deferred: TensorFlow starts here
        )

        images, targets = self.engine.check_inputs(images, targets)
        window, stride = self._geometry(images.shape[1:-1])
        windows = _Windows(images.shape[1:-1], window, stride, self.fill)
        scored, covered, scores = forward_engine(self.engine).run(images, targets, windows, self.batch_size)
        at_input = scores[:, -1].reshape((-1,) + (1,) * (images.ndim - 2))  # the empty window: F(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_drop = np.where(covered > 0, at_input - scored / covered, 0.0)
        attributions = np.repeat(mean_drop[..., None], images.shape[-1], axis=-1).astype(np.float32)
        return Explanation(attributions, evaluations=np.full(len(images), windows.rows_per_image))
