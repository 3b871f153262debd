"""The forward engine: the explained output for streams of perturbed copies (occlusion, RISE).

Perturbation methods never differentiate; they evaluate the model on many perturbed
copies of each image and weigh each copy's score by a map (the occluded window, the
random mask). The forward engine runs them the way the gradient engine runs paths:

* every (image, copy) pair is one *row*, described compactly (a window's start index,
  a mask's random key), never as a full image on the host;
* rows are cut into chunks of exactly ``batch_size`` (the last one padded), several images
  per chunk; one compiled ``tf.function`` per perturbation kind builds the copies inside the
  chunk, evaluates the explained output (logits by default: the same view as the gradient
  engine, :func:`~medxai.methods._engine.output.explained_output`) and returns each row's
  score and weight map;
* the host adds ``score(row) * weight_map(row)`` and ``weight_map(row)`` to the row's image
  in float64, one row at a time in row order: memory is bounded by ``batch_size`` and the
  result depends neither on it nor on the other images of the batch (random masks are
  seeded statelessly by (seed, copy index), so a copy is the same in whichever chunk it
  lands). The one thing medxai does not control is the model itself: a backend may round a
  copy's score differently in a call of another size (oneDNN on CPU does for a batch of one
  row, by about 1e-7 relative), which is why every call has exactly ``batch_size`` rows.

:meth:`ForwardEngine.scores` runs the same chunks but returns every row's score instead of
the weighted sums, for methods whose weights need all the scores of an image first
(Score-CAM's softmax over channels); one ``(N, rows_per_image)`` array of floats comes back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from medxai.methods._engine.engine import GradientEngine, TargetTensors, select, target_tensors
from medxai.methods._engine.targets import Targets


class Perturbation(Protocol):
    """How one kind of perturbation turns compact row descriptions into copies and weight maps.

    A structural type: the methods' perturbation classes (occlusion's windows, RISE's masks,
    LIME's superpixels, Score-CAM's channel masks) have these members without importing
    TensorFlow to subclass anything.

    Attributes:
        key: Names the compiled routine (one ``tf.function`` per key): everything ``apply``
            reads besides its tensors (e.g. the number of spatial axes) must be in it.
        rows_per_image: Copies evaluated per image.
    """

    key: str
    rows_per_image: int

    def per_image(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Host-side values per image (``(N, ...)``), gathered into the chunk by image."""
        ...

    def rows(self, copies: np.ndarray) -> dict[str, np.ndarray]:
        """Compact descriptions of the copies with these indices (``0 .. rows_per_image - 1``)."""
        ...

    def apply(
        self, images: tf.Tensor, per_image: dict[str, tf.Tensor], rows: dict[str, tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Inside the compiled chunk: ``(copies (R, *spatial, C), weight maps (R, *spatial))``.

        ``images`` and ``per_image`` are already gathered to one entry per row.
        """
        ...


class ForwardEngine:
    """Compiled, chunked forward passes of a :class:`GradientEngine`'s explained output.

    It shares the gradient engine's explained view, precision and XLA setting, so a
    perturbation method and a gradient method built on one engine explain the same output.
    Use :func:`forward_engine` to get the one forward engine of a gradient engine.
    """

    def __init__(self, engine: GradientEngine):
        self.engine = engine
        self._compiled: dict[Any, Callable[..., Any]] = {}

    def _score_copies(
        self,
        perturbation: Perturbation,
        images: tf.Tensor,
        per_image: dict[str, tf.Tensor],
        rows: dict[str, tf.Tensor],
        row_image: tf.Tensor,
        target: TargetTensors,
        with_weights: bool,
    ) -> tuple[tf.Tensor, ...]:
        """The explained output's target score of each row's perturbed copy (and the row's weight map)."""
        source = tf.gather(images, row_image)
        gathered = {k: tf.gather(v, row_image) for k, v in per_image.items()}
        copies, weight = perturbation.apply(source, gathered, rows)
        score = select(self.engine.model(copies, training=False), target)
        return (score, tf.cast(weight, tf.float32)) if with_weights else (score,)

    def _function(self, perturbation: Perturbation, with_weights: bool) -> Callable[..., Any]:
        """The compiled chunk of this kind; ``key`` must name everything ``apply`` reads outside its tensors."""
        name = (perturbation.key, with_weights)
        compiled = self._compiled.get(name)
        if compiled is None:
            jit = self.engine.jit
            compiled = tf.function(
                functools.partial(self._score_copies, perturbation, with_weights=with_weights),
                reduce_retracing=not jit,
                jit_compile=jit,
            )
            self._compiled[name] = compiled
        return compiled

    def _chunks(
        self,
        images: np.ndarray,
        targets: Targets,
        perturbation: Perturbation,
        batch_size: int,
        with_weights: bool,
    ) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, ...]]]:
        """``(rows, (scores, weight maps))`` per model call, in row order (row ``r`` is copy ``r % rows_per_image``
        of image ``r // rows_per_image``).

        Every call holds exactly ``batch_size`` rows: the last chunk is padded with copies of its
        last row (their results dropped), so a row is scored in a batch of the same size whatever
        the images around it, and the routine is traced for one shape.
        """
        self.engine.sync_weights()
        per_row = perturbation.rows_per_image
        total = len(images) * per_row
        per_image = perturbation.per_image(images)
        fn = self._function(perturbation, with_weights)
        for start in range(0, total, batch_size):
            rows = np.arange(start, min(start + batch_size, total))
            padded = np.minimum(np.arange(start, start + batch_size), total - 1)
            image = padded // per_row
            image_u, row_image = np.unique(image, return_inverse=True)
            described = {k: tf.constant(v) for k, v in perturbation.rows(padded % per_row).items()}
            out = fn(
                tf.constant(images[image_u]),
                {k: tf.constant(v[image_u]) for k, v in per_image.items()},
                described,
                tf.constant(row_image, tf.int32),
                target_tensors(targets[image]),
            )
            yield rows, tuple(o.numpy()[: len(rows)] for o in out)

    def run(
        self,
        images: np.ndarray,
        targets: Targets,
        perturbation: Perturbation,
        batch_size: int = 32,
        groups: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sum the weighted scores of every copy of every image.

        Each product ``F(copy_k) * W_k`` of two float32 values is exact in float64, and the
        products are added to their image's sums one row at a time in row order, so the sums do
        not depend on ``batch_size`` or on the other images of the batch.

        Args:
            images: ``(N, *spatial, C)`` float32, already checked.
            targets: The images' :class:`~medxai.methods._engine.targets.Targets`.
            perturbation: What the copies are.
            batch_size: Rows per model call (the memory bound).
            groups: None, or the number of disjoint, contiguous groups of each image's copies
                (copy ``k`` in group ``k * groups // rows_per_image``) whose sums are kept apart
                (per-map uncertainty over seed groups; memory grows by ``groups``).

        Returns:
            ``(sum_k F(copy_k) * W_k, sum_k W_k)``, each ``(N, *spatial)`` float64 (with ``groups``:
            ``(N, groups, *spatial)``, one sum per group), and the scores ``F(copy_k)``
            ``(N, rows_per_image)`` float64.
        """
        n, per_row = len(images), perturbation.rows_per_image
        spatial = images.shape[1:-1]
        count = 1 if groups is None else groups
        scored = np.zeros((n, count, *spatial), dtype=np.float64)
        weights = np.zeros((n, count, *spatial), dtype=np.float64)
        scores = np.empty(n * per_row, dtype=np.float64)
        for rows, (score, weight) in self._chunks(images, targets, perturbation, batch_size, with_weights=True):
            scores[rows] = score
            score, weight = score.astype(np.float64), weight.astype(np.float64)
            group = (rows % per_row) * count // per_row
            for row, g, s, w in zip(rows // per_row, group, score, weight):  # a fixed order of additions per image
                scored[row, g] += s * w
                weights[row, g] += w
        if groups is None:
            return scored[:, 0], weights[:, 0], scores.reshape(n, per_row)
        return scored, weights, scores.reshape(n, per_row)

    def scores(
        self, images: np.ndarray, targets: Targets, perturbation: Perturbation, batch_size: int = 32
    ) -> np.ndarray:
        """The explained output for the target of every copy of every image.

        The same chunks as :meth:`run`, but only each row's score comes back (``apply``'s
        weight maps are not used).

        Returns:
            ``(N, rows_per_image)`` float64: ``F(copy_k of image i)`` for ``targets[i]``.
        """
        n, per_row = len(images), perturbation.rows_per_image
        result = np.empty(n * per_row, dtype=np.float64)
        for rows, (score,) in self._chunks(images, targets, perturbation, batch_size, with_weights=False):
            result[rows] = score
        return result.reshape(n, per_row)


def forward_engine(engine: GradientEngine) -> ForwardEngine:
    """The forward engine of ``engine`` (made once and kept on it, so its traces are shared)."""
    existing = engine.__dict__.get("_forward_engine")
    if existing is None:
        existing = ForwardEngine(engine)
        engine.__dict__["_forward_engine"] = existing
    return existing
