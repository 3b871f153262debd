"""The forward engine: the explained output for streams of perturbed copies (occlusion, RISE).

Perturbation methods never differentiate; they evaluate the model on many perturbed
copies of each image and weigh each copy's score by a map (the occluded window, the
random mask). The forward engine runs them the way the gradient engine runs paths:

* every (image, copy) pair is one *row*, described compactly (a window's start index,
  a mask's random key), never as a full image on the host;
* rows are cut into chunks of at most ``batch_size``, several images per chunk; one
  compiled ``tf.function`` per perturbation kind builds the copies inside the chunk,
  evaluates the explained output (logits by default: the same view as the gradient
  engine, :func:`~medxai.methods._engine.output.explained_output`) and returns, per
  image, ``sum_rows score(row) * weight_map(row)`` and ``sum_rows weight_map(row)``;
* the host adds the chunk sums in float64 as they come: memory is bounded by
  ``batch_size`` and the result does not depend on it (random masks are seeded
  statelessly by (seed, copy index), so a copy is the same in whichever chunk it lands).

:meth:`ForwardEngine.scores` runs the same chunks but returns every row's score instead of
the weighted sums, for methods whose weights need all the scores of an image first
(Score-CAM's softmax over channels); one ``(N, rows_per_image)`` array of floats comes back.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from medxai.methods._engine.engine import GradientEngine


class Perturbation(abc.ABC):
    """How one kind of perturbation turns compact row descriptions into copies and weight maps.

    Attributes:
        key: Names the compiled routine (one ``tf.function`` per key): everything ``apply``
            reads besides its tensors (e.g. the number of spatial axes) must be in it.
        rows_per_image: Copies evaluated per image.
    """

    key: str = ""
    rows_per_image: int = 0

    def per_image(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Host-side values per image (``(N, ...)``), gathered into the chunk by image."""
        return {}

    @abc.abstractmethod
    def rows(self, copies: np.ndarray) -> dict[str, np.ndarray]:
        """Compact descriptions of the copies with these indices (``0 .. rows_per_image - 1``)."""

    @abc.abstractmethod
    def apply(
        self, images: tf.Tensor, per_image: dict[str, tf.Tensor], rows: dict[str, tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Inside the compiled chunk: ``(copies (R, *spatial, C), weight maps (R, *spatial))``.

        ``images`` and ``per_image`` are already gathered to one entry per row.
        """


class ForwardEngine:
    """Compiled, chunked forward passes of a :class:`GradientEngine`'s explained output.

    It shares the gradient engine's explained view, precision and XLA setting, so a
    perturbation method and a gradient method built on one engine explain the same output.
    Use :func:`forward_engine` to get the one forward engine of a gradient engine.
    """

    def __init__(self, engine: GradientEngine):
        self.engine = engine
        self._compiled: dict[Any, Callable[..., Any]] = {}

    def _chunk(
        self,
        perturbation: Perturbation,
        images: tf.Tensor,
        per_image: dict[str, tf.Tensor],
        rows: dict[str, tf.Tensor],
        row_image: tf.Tensor,
        target: tf.Tensor,
        segment: tf.Tensor,
        n_segments: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        score, weight = self._score_copies(perturbation, images, per_image, rows, row_image, target)
        weight = tf.cast(weight, tf.float32)
        scored = tf.reshape(score, [-1] + [1] * (len(weight.shape) - 1)) * weight
        return (
            tf.math.unsorted_segment_sum(scored, segment, n_segments),
            tf.math.unsorted_segment_sum(weight, segment, n_segments),
        )

    def _score_chunk(
        self,
        perturbation: Perturbation,
        images: tf.Tensor,
        per_image: dict[str, tf.Tensor],
        rows: dict[str, tf.Tensor],
        row_image: tf.Tensor,
        target: tf.Tensor,
    ) -> tf.Tensor:
        return self._score_copies(perturbation, images, per_image, rows, row_image, target)[0]

    def _score_copies(
        self,
        perturbation: Perturbation,
        images: tf.Tensor,
        per_image: dict[str, tf.Tensor],
        rows: dict[str, tf.Tensor],
        row_image: tf.Tensor,
        target: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The explained output's target score of each row's perturbed copy, and the row's weight map."""
        source = tf.gather(images, row_image)
        gathered = {k: tf.gather(v, row_image) for k, v in per_image.items()}
        copies, weight = perturbation.apply(source, gathered, rows)
        out = tf.cast(self.engine.model(copies, training=False), tf.float32)
        return tf.gather(out, target, axis=1, batch_dims=1), weight

    def _function(self, perturbation: Perturbation, scores: bool = False) -> Callable[..., Any]:
        """The compiled chunk of this kind; ``key`` must name everything ``apply`` reads outside its tensors."""
        name = ("scores", perturbation.key) if scores else perturbation.key
        compiled = self._compiled.get(name)
        if compiled is None:
            jit = self.engine.jit
            compiled = tf.function(
                functools.partial(self._score_chunk if scores else self._chunk, perturbation),
                reduce_retracing=not jit,
                jit_compile=jit,
            )
            self._compiled[name] = compiled
        return compiled

    def run(
        self, images: np.ndarray, targets: np.ndarray, perturbation: Perturbation, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sum the weighted scores of every copy of every image.

        Args:
            images: ``(N, *spatial, C)`` float32, already checked.
            targets: ``(N,)`` int32 class per image.
            perturbation: What the copies are.
            batch_size: Rows per model call (the memory bound).

        Returns:
            ``(sum_k F(copy_k) * W_k, sum_k W_k)``, each ``(N, *spatial)`` float64.
        """
        self.engine._sync_weights()
        n = len(images)
        per_row = perturbation.rows_per_image
        total = n * per_row
        per_image = perturbation.per_image(images)
        spatial = images.shape[1:-1]
        scored = np.zeros((n, *spatial), dtype=np.float64)
        weights = np.zeros((n, *spatial), dtype=np.float64)
        fn = self._function(perturbation)
        for start in range(0, total, batch_size):
            rows = np.arange(start, min(start + batch_size, total))
            image = rows // per_row
            image_u, row_image = np.unique(image, return_inverse=True)
            described = {k: tf.constant(v) for k, v in perturbation.rows(rows % per_row).items()}
            s, w = fn(
                tf.constant(images[image_u]),
                {k: tf.constant(v[image_u]) for k, v in per_image.items()},
                described,
                tf.constant(row_image, tf.int32),
                tf.constant(targets[image], tf.int32),
                tf.constant(row_image, tf.int32),
                tf.constant(len(image_u), tf.int32),
            )
            scored[image_u] += s.numpy()
            weights[image_u] += w.numpy()
        return scored, weights

    def scores(
        self, images: np.ndarray, targets: np.ndarray, perturbation: Perturbation, batch_size: int = 32
    ) -> np.ndarray:
        """The explained output for the target of every copy of every image.

        The same chunks as :meth:`run` (at most ``batch_size`` rows, several images per chunk),
        but each row's score comes back instead of the weighted sums; ``apply``'s weight maps
        are not used.

        Returns:
            ``(N, rows_per_image)`` float64: ``F(copy_k of image i)`` for ``targets[i]``.
        """
        self.engine._sync_weights()
        n = len(images)
        per_row = perturbation.rows_per_image
        total = n * per_row
        per_image = perturbation.per_image(images)
        result = np.empty(total, dtype=np.float64)
        fn = self._function(perturbation, scores=True)
        for start in range(0, total, batch_size):
            rows = np.arange(start, min(start + batch_size, total))
            image = rows // per_row
            image_u, row_image = np.unique(image, return_inverse=True)
            described = {k: tf.constant(v) for k, v in perturbation.rows(rows % per_row).items()}
            result[rows] = fn(
                tf.constant(images[image_u]),
                {k: tf.constant(v[image_u]) for k, v in per_image.items()},
                described,
                tf.constant(row_image, tf.int32),
                tf.constant(targets[image], tf.int32),
            ).numpy()
        return result.reshape(n, per_row)


def forward_engine(engine: GradientEngine) -> ForwardEngine:
    """The forward engine of ``engine`` (made once and kept on it, so its traces are shared)."""
    existing = engine.__dict__.get("_forward_engine")
    if existing is None:
        existing = ForwardEngine(engine)
        engine.__dict__["_forward_engine"] = existing
    return existing
