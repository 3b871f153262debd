"""The one gradient engine every method runs on.

Every built-in method is a statistic over *samples* of a weighted *path sum* of
input gradients (a :class:`PathPlan`):

* plain gradient: one sample, one point (the input itself);
* Integrated Gradients: one sample per baseline, ``steps`` points on the straight
  path, each gradient weighted by the quadrature weight and ``(x - baseline)``;
* SmoothGrad: ``samples`` noisy copies of the input, each explained by its base
  method, then a mean, a mean of squares or a variance;
* an explicit, curved path (Blur IG): the plan's ``path`` makes each chunk's points
  and directions, and a row adds ``weight * grad * direction`` (its own compiled
  routine, so the straight-path methods above run exactly as before).

The engine flattens all (image, sample, baseline, point) rows into one stream and
pushes it through one compiled ``tf.function`` in chunks of at most
``batch_size`` rows, so several images and their path points share a chunk.
Partial sums are folded into per-image running moments as soon as a sample's
last point is done: memory is bounded by ``batch_size``, never by ``steps`` or
``samples``, and the result does not depend on ``batch_size``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from medxai.methods._engine import OUTPUT_LOGITS, OUTPUT_PROBABILITIES
from medxai.methods._engine.output import explained_output
from medxai.methods._engine.plan import PathPlan
from medxai.methods._engine.precision import PRECISIONS, computed_precision, mixed_precision_copy
from medxai.methods._engine.spec import OutputSpec, shape_words
from medxai.methods._engine.targets import Targets
from medxai.methods._engine.uncertainty import Welford
from medxai.regions import EmptyRegionError, Region

#: A target inside compiled code: ``(channel (R,) int32, region weights (R, *spatial) float32 or None)``.
TargetTensors = tuple[tf.Tensor, "tf.Tensor | None"]


def target_tensors(targets: Targets) -> TargetTensors:
    """The tensors of some rows' targets, for a compiled routine (see :func:`select`)."""
    channel, weights = targets.parts()
    return tf.constant(channel, tf.int32), None if weights is None else tf.constant(weights, tf.float32)


def select(out: tf.Tensor, target: TargetTensors) -> tf.Tensor:
    """The explained score of each row: the target class of ``(R, classes)``, or the region score.

    For a region, ``sum_p w_p * out[r, p, channel_r]`` over the output grid: the weights are
    constants, so gradients flow through the model's output only (the mask is held fixed).
    The one place any engine turns the model's output into the differentiated score.
    """
    channel, weights = target
    out = tf.cast(out, tf.float32)
    if weights is None:
        return tf.gather(out, channel, axis=1, batch_dims=1)
    picked = tf.gather(out, channel, axis=len(out.shape) - 1, batch_dims=1)
    return tf.reduce_sum(picked * weights, axis=list(range(1, len(picked.shape))))


def _regions(targets: Any, n: int) -> list[Region] | None:
    """One :class:`Region` per image when ``targets`` are regions (one, or one per image), else None."""
    if isinstance(targets, Region):
        return [targets] * n
    if isinstance(targets, np.ndarray) and targets.dtype == object:
        targets = list(targets.ravel())
    if isinstance(targets, (list, tuple)) and any(isinstance(t, Region) for t in targets):
        if not all(isinstance(t, Region) for t in targets):
            raise ValueError("targets mix Region objects and class indices; give one kind")
        if len(targets) != n:
            raise ValueError(f"targets must be one Region or {n} Regions (one per image), got {len(targets)}")
        return list(targets)
    return None


class _Moments:
    """The plan's statistic over each image's samples, from running moments (:class:`Welford`)."""

    def __init__(self, n: int, shape: tuple[int, ...], statistic: str, transform: str | None):
        self.statistic = statistic
        self.transform = transform
        self.moments = Welford(n, shape)

    def add(self, index: int, value: np.ndarray) -> None:
        if self.transform == "abs":
            value = np.abs(value)
        if self.statistic == "squared":
            value = value * value
        self.moments.add(index, value)

    def result(self) -> np.ndarray:
        if self.statistic == "variance":
            return self.moments.variance().astype(np.float32)
        return self.moments.mean.astype(np.float32)


class GradientEngine:
    """Batched, compiled gradients of one explained output of a Keras model.

    A method owns its engine; methods built on one model may share one engine
    (and its traces) when the caller passes it to each (the decoder does). No
    module-level cache holds a model: a dropped method frees its model.

    Args:
        model: A built Keras model with one input and one output.
        output: Which output is explained (see :func:`medxai.methods._engine.output.explained_output`).
        jit: Compile the gradient routine with XLA (one compilation per chunk shape).
        precision: ``"float32"`` or ``"mixed"`` (see :mod:`medxai.methods._engine.precision`).
    """

    def __init__(
        self,
        model: keras.Model,
        output: str | OutputSpec = OUTPUT_LOGITS,
        jit: bool = False,
        precision: str = "float32",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not isinstance(jit, bool):
            raise ValueError(f"jit must be true or false, got {jit!r}")
        self.source_model = model
        self.spec = OutputSpec.of(output)
        self.output = self.spec.explain
        self.jit = jit
        self.precision = precision
        # The half-precision copy holds copies of the weights: they are refreshed before every call.
        self._half = mixed_precision_copy(model) if precision == "mixed" else None
        view = explained_output(self.computing_model, self.spec)
        self.model = view.model
        self.explained = view.description
        self.removed_activation = view.removed
        self.head = view.head
        #: The precision the model really computes in (``precision`` asks; a model's own policy may differ).
        self.computes_in = computed_precision(self.model, precision)
        self.input_shape: tuple[int | None, ...] = tuple(self.model.inputs[0].shape[1:])
        #: The explained output per image: ``(classes,)``, or ``(*spatial, channels)`` for a dense output.
        self.output_shape: tuple[int | None, ...] = tuple(self.model.outputs[0].shape[1:])
        self.n_outputs = int(self.model.outputs[0].shape[-1])
        #: A dense (segmentation) output, explained through region targets.
        self.dense = len(self.output_shape) > 1
        self._compiled: dict[tuple[bool, bool] | str, Any] = {}
        self._predict_fn = tf.function(self._predict, reduce_retracing=not jit, jit_compile=jit)

    def matches(self, model: keras.Model, output: str | OutputSpec, jit: bool, precision: str) -> bool:
        """Whether this engine explains ``output`` of ``model`` with these settings."""
        spec = OutputSpec.of(output)
        return (self.source_model is model, self.spec, self.jit, self.precision) == (True, spec, jit, precision)

    @property
    def computing_model(self) -> keras.Model:
        """The model that computes: the user's, or its half-precision copy with ``precision: mixed``."""
        return self.source_model if self._half is None else self._half

    def sync_weights(self) -> None:
        """Copy the user's current weights into the half-precision copy (a no-op in float32).

        Every routine that runs :attr:`computing_model` calls this first, so a method
        explains the weights the model has now, also after ``set_weights`` or training.
        """
        if self._half is not None:
            self._half.set_weights(self.source_model.get_weights())

    # ------------------------------------------------------------------ checks
    def check_inputs(self, images: np.ndarray, targets: Any) -> tuple[np.ndarray, Targets]:
        """Validate a batch and its targets; return float32 images and their :class:`Targets`.

        ``targets`` is one class index or one per image (a classifier), or one
        :class:`~medxai.regions.Region` or one per image (a dense, segmentation output).
        Regions whose mask is a name (``predicted`` ...) are resolved on the model's
        prediction for each image.
        """
        images = np.asarray(images)
        if images.dtype == object or not np.issubdtype(images.dtype, np.number):
            raise ValueError(f"images must be a numeric array, got dtype {images.dtype}")
        images = images.astype(np.float32, copy=False)
        expected = (None, *self.input_shape)
        if images.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected, images.shape)):
            shown = tuple("N" if e is None else e for e in expected)
            raise ValueError(f"images must have shape {shown} for this model, got {images.shape}")
        if images.shape[0] == 0:
            raise ValueError("images is an empty batch")
        if not np.all(np.isfinite(images)):
            raise ValueError("images contain NaN or infinite values")
        if isinstance(targets, Targets):
            if len(targets) != len(images):
                raise ValueError(f"targets hold {len(targets)} images' targets for a batch of {len(images)}")
            return images, targets
        regions = _regions(targets, len(images))
        if regions is not None:
            return images, self.resolve_regions(images, regions)
        if self.dense:
            raise ValueError(
                f"this model's explained output is dense, {shape_words(self.output_shape)} per image (a segmentation "
                "model): a class index does not name a score. Explain a region: medxai.Region(channel), "
                "e.g. Region(1, mask='predicted'), or one Region per image"
            )
        targets = np.asarray(targets)
        if targets.ndim == 0:
            targets = np.full(images.shape[0], targets)
        if targets.shape != (images.shape[0],):
            raise ValueError(f"targets must be one int or {images.shape[0]} ints, got shape {targets.shape}")
        if targets.dtype == bool or not (
            np.issubdtype(targets.dtype, np.integer) or np.issubdtype(targets.dtype, np.floating)
        ):
            raise ValueError(f"targets must be integer class indices, got {targets.tolist()!r} ({targets.dtype})")
        if not np.issubdtype(targets.dtype, np.integer) and not np.all(np.equal(np.mod(targets, 1), 0)):
            raise ValueError(f"targets must be integers, got {targets.tolist()}")
        # the range is checked before any narrowing cast: 2**32 + 1 must not become class 1
        bad = [t for t in targets.tolist() if not 0 <= t < self.n_outputs]
        if bad:
            raise ValueError(
                f"target class {int(bad[0])} is out of range: the explained output has "
                f"{self.n_outputs} classes (0..{self.n_outputs - 1})"
            )
        return images, Targets(targets.astype(np.int32))

    def output_grid(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial shape for inputs of this spatial shape (a dense output)."""
        known = self.output_shape[:-1]
        if all(s is not None for s in known):
            return tuple(int(s) for s in known if s is not None)
        probe = np.zeros((1, *spatial, self.input_shape[-1] or 1), np.float32)
        return tuple(int(s) for s in self.predict(probe).shape[1:-1])

    def resolve_regions(self, images: np.ndarray, regions: Sequence[Region]) -> Targets:
        """The :class:`Targets` of one region per image, masks named by the model's prediction resolved.

        Raises:
            ValueError: the explained output is not dense, a channel is out of range, an array
                mask has another shape than the output grid, or a region is empty
                (:class:`~medxai.regions.EmptyRegionError`).
        """
        if not self.dense:
            raise ValueError(
                f"Region targets explain a dense (segmentation) output; this model's explained output is "
                f"{shape_words(self.output_shape)} per image (classes): give class indices"
            )
        named = [i for i, r in enumerate(regions) if isinstance(r.mask, str)]
        outputs = dict(zip(named, self.predict(images[named]))) if named else {}
        activation = self.head.activation if self.head is not None else "sigmoid"
        logits = self.spec.explain != OUTPUT_PROBABILITIES
        resolved = []
        grid: tuple[int, ...] | None = None
        for i, region in enumerate(regions):
            if i in outputs:
                resolved.append(region.resolve(outputs[i], activation, logits))
            else:  # an array mask: checked against the output grid of these inputs
                grid = self.output_grid(images.shape[1:-1]) if grid is None else grid
                resolved.append(region.resolve(np.zeros((*grid, self.n_outputs), np.float32), activation, logits))
        empty = [i for i, r in enumerate(resolved) if r.voxels == 0]
        if empty:
            shown = ", ".join(map(str, empty[:5])) + (" ..." if len(empty) > 5 else "")
            raise EmptyRegionError(
                f"{resolved[empty[0]].words} is empty for image(s) {shown} of the batch: there is nothing to "
                "explain there (the region score is a constant 0)"
            )
        return Targets.of_regions(resolved)

    # --------------------------------------------------------------- compiled
    def _predict(self, x: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.model(x, training=False), tf.float32)

    def _target_gradient(self, points: tf.Tensor, target: TargetTensors) -> tf.Tensor:
        """``d(explained score of target) / d(points)`` per row, float32 (compiled code only).

        The one place the engine differentiates the model: an engine that changes how
        gradients flow (guided backpropagation) overrides this method alone.
        """
        with tf.GradientTape() as tape:
            tape.watch(points)
            selected = select(self.model(points, training=False), target)
        return tf.cast(tape.gradient(selected, points), tf.float32)

    def _chunk(
        self,
        images: tf.Tensor,
        row_image: tf.Tensor,
        bases: tf.Tensor,
        row_base: tf.Tensor,
        noise_keys: tf.Tensor,
        row_noise: tf.Tensor,
        sigma: tf.Tensor,
        seed: tf.Tensor,
        alpha: tf.Tensor,
        weight: tf.Tensor,
        target: TargetTensors,
        segment: tf.Tensor,
        n_segments: tf.Tensor,
        has_base: bool,
        has_noise: bool,
    ) -> tf.Tensor:
        rank = len(images.shape) - 1
        per_row = lambda v: tf.reshape(v, [-1] + [1] * rank)  # noqa: E731
        source = tf.gather(images, row_image)
        if has_noise:
            shape = tf.shape(images)[1:]
            noise = tf.map_fn(
                lambda k: tf.random.stateless_normal(shape, tf.stack([seed, k]), alg="philox"),
                noise_keys,
                fn_output_signature=tf.float32,
            )
            source = source + per_row(sigma) * tf.gather(noise, row_noise)
        if has_base:
            base = tf.gather(bases, row_base)
            difference = source - base
            point = base + per_row(alpha) * difference
        else:
            point = source
        gradient = self._target_gradient(point, target)
        contribution = per_row(weight) * gradient
        if has_base:
            contribution = contribution * difference
        return tf.math.unsorted_segment_sum(contribution, segment, n_segments)

    def _path_chunk(
        self,
        points: tf.Tensor,
        directions: tf.Tensor,
        weight: tf.Tensor,
        target: TargetTensors,
        segment: tf.Tensor,
        n_segments: tf.Tensor,
    ) -> tf.Tensor:
        """An explicit path's rows: ``weight * grad F(point) * direction``, summed per segment."""
        rank = len(points.shape) - 1
        gradient = self._target_gradient(points, target)
        contribution = tf.reshape(weight, [-1] + [1] * rank) * gradient * directions
        return tf.math.unsorted_segment_sum(contribution, segment, n_segments)

    def _path_chunk_fn(self, *tensors: tf.Tensor) -> tf.Tensor:
        """The compiled routine of plans with an explicit ``path`` (its own traces)."""
        compiled = self._compiled.get("path")
        if compiled is None:
            compiled = tf.function(self._path_chunk, reduce_retracing=not self.jit, jit_compile=self.jit)
            self._compiled["path"] = compiled
        return compiled(*tensors)

    def _chunk_fn(self, *args: Any) -> tf.Tensor:
        """The compiled chunk routine; one ``tf.function`` per (baselines, noise) kind of plan.

        Methods sharing an engine plan differently (gradient, IG, SmoothGrad): separate
        functions keep each one's traces few instead of retracing one function per switch.
        """
        *tensors, has_base, has_noise = args
        compiled = self._compiled.get((has_base, has_noise))
        if compiled is None:
            compiled = tf.function(
                functools.partial(self._chunk, has_base=has_base, has_noise=has_noise),
                reduce_retracing=not self.jit,
                jit_compile=self.jit,
            )
            self._compiled[(has_base, has_noise)] = compiled
        return compiled(*tensors)

    # ------------------------------------------------------------------ public
    def predict(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Explained outputs ``(N, *output_shape)`` float32, in chunks of ``batch_size``."""
        self.sync_weights()
        images = np.asarray(images, dtype=np.float32)
        parts = [
            self._predict_fn(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def integrate(self, images: np.ndarray, targets: Targets, plan: PathPlan, batch_size: int = 32) -> np.ndarray:
        """Run a plan: the statistic over samples of the weighted path sums (see :meth:`integrate_with_sd`)."""
        return self.integrate_with_sd(images, targets, plan, batch_size)[0]

    def integrate_with_sd(
        self, images: np.ndarray, targets: Targets, plan: PathPlan, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run a plan: the statistic over samples of the weighted path sums, and their per-value spread.

        Each sample's path sums are first averaged over its baselines; the
        transform and the statistic apply to that mean (SmoothGrad-squared of IG
        over several baselines is ``E_k[(mean_b IG_b(x_k))^2]``).

        Args:
            images: ``(N, *spatial, C)`` float32, already checked.
            targets: The images' :class:`~medxai.methods._engine.targets.Targets`.
            plan: What to integrate.
            batch_size: Rows per model call (the memory bound).

        The spread is the population standard deviation (numpy's ``std``, ``ddof=0``), folded in
        the same pass (Welford) as the statistic: over the samples of the values the statistic
        averages (each sample's mean over baselines, transformed; squared for ``"squared"``; for
        ``"variance"``, the SD of the samples, the square root of the map) or, with one sample
        and several baselines (IG over random baselines), over the baselines. One sample of one
        baseline (a plain gradient, IG from one baseline): zeros.

        Returns:
            ``(N, *spatial, C)`` float32 attributions, and ``(N, *spatial, C)`` float32 standard deviations.
        """
        self.sync_weights()
        n = len(images)
        shape = images.shape[1:]
        n_points = len(plan.alphas)
        n_base = plan.n_baselines
        per_image = plan.samples * n_base
        total_rows = n * per_image * n_points
        bases = None if plan.baselines is None else plan.baselines.reshape((n * n_base, *shape)).astype(np.float32)
        sigma = None if plan.noise_sigma is None else np.asarray(plan.noise_sigma, dtype=np.float32)
        has_base, has_noise = bases is not None, sigma is not None
        alphas = np.asarray(plan.alphas, dtype=np.float32)
        weights = np.asarray(plan.weights, dtype=np.float32)
        seed = tf.constant(int(plan.seed), dtype=tf.int64)
        empty_keys = tf.zeros([0], dtype=tf.int64)

        moments = _Moments(n, shape, plan.statistic, plan.transform)
        over_baselines = Welford(n, shape) if plan.samples == 1 and n_base > 1 else None
        open_items: dict[int, np.ndarray] = {}
        open_samples: dict[int, tuple[np.ndarray, int]] = {}  # (image, sample) -> (sum over baselines, count)
        for start in range(0, total_rows, batch_size):
            rows = np.arange(start, min(start + batch_size, total_rows))
            item = rows // n_points
            point = rows % n_points
            image = item // per_image
            sample = (item // n_base) % plan.samples
            base = image * n_base + item % n_base
            if plan.path is not None:
                points, directions = plan.path(image, point)
                sums = self._path_chunk_fn(
                    tf.constant(np.asarray(points, dtype=np.float32)),
                    tf.constant(np.asarray(directions, dtype=np.float32)),
                    tf.constant(weights[point]),
                    target_tensors(targets[image]),
                    tf.constant(item - item[0], tf.int32),
                    tf.constant(int(item[-1] - item[0] + 1), tf.int32),
                ).numpy()
                self._fold(
                    sums, item, rows, n_points, n_base, plan.samples, open_items, open_samples, moments, over_baselines
                )
                continue
            image_u, row_image = np.unique(image, return_inverse=True)
            if bases is not None:
                base_u, row_base = np.unique(base, return_inverse=True)
                base_t = tf.constant(bases[base_u])
            else:
                row_base, base_t = row_image, None
            if sigma is not None:
                keys_u, row_noise = np.unique(sample, return_inverse=True)
                keys_t, sigma_t = tf.constant(keys_u, tf.int64), tf.constant(sigma[image])
            else:
                row_noise, keys_t, sigma_t = row_image, empty_keys, tf.zeros([len(rows)])
            images_t = tf.constant(images[image_u])
            sums = self._chunk_fn(
                images_t,
                tf.constant(row_image, tf.int32),
                images_t if base_t is None else base_t,
                tf.constant(row_base, tf.int32),
                keys_t,
                tf.constant(row_noise, tf.int32),
                sigma_t,
                seed,
                tf.constant(alphas[point]),
                tf.constant(weights[point]),
                target_tensors(targets[image]),
                tf.constant(item - item[0], tf.int32),
                tf.constant(int(item[-1] - item[0] + 1), tf.int32),
                has_base,
                has_noise,
            ).numpy()
            self._fold(
                sums, item, rows, n_points, n_base, plan.samples, open_items, open_samples, moments, over_baselines
            )
        spread = moments.moments if over_baselines is None else over_baselines
        return moments.result(), spread.sd()

    def path_terms(
        self,
        images: np.ndarray,
        targets: Targets,
        baselines: np.ndarray,
        image: np.ndarray,
        alpha: np.ndarray,
        batch_size: int = 32,
    ) -> np.ndarray:
        """Straight-path terms, each row at its own image and ``alpha``, for adaptive quadrature.

        Row ``r`` is ``mean_b (x - b) * grad F(b + alpha_r (x - b))`` of image ``image[r]``
        over its baselines ``b``: the integrand of Integrated Gradients at one point, which
        a rule then weights. Unlike :meth:`integrate`, every image may have its own points.
        The rows run through the same compiled routine as Integrated Gradients.

        Args:
            images: ``(N, *spatial, C)`` float32, already checked.
            targets: The images' :class:`~medxai.methods._engine.targets.Targets`.
            baselines: ``(N, B, *spatial, C)`` baselines per image.
            image: ``(R,)`` image index of each row.
            alpha: ``(R,)`` path position of each row.
            batch_size: Model rows per call (a row costs ``B`` model rows).

        Returns:
            ``(R, *spatial, C)`` float32 terms.
        """
        self.sync_weights()
        shape = images.shape[1:]
        n_base = baselines.shape[1]
        bases = baselines.reshape((-1, *shape)).astype(np.float32, copy=False)
        out = np.zeros((len(image), *shape), dtype=np.float32)
        # every row once per baseline: model row k is row k // B against baseline k % B
        model_image = np.repeat(image, n_base)
        model_base = model_image * n_base + np.tile(np.arange(n_base), len(image))
        model_alpha = np.repeat(np.asarray(alpha, dtype=np.float32), n_base)
        seed, empty_keys = tf.constant(0, dtype=tf.int64), tf.zeros([0], dtype=tf.int64)
        for start in range(0, len(model_image), batch_size):
            part = slice(start, start + batch_size)
            rows = np.arange(start, min(start + batch_size, len(model_image)))
            image_u, row_image = np.unique(model_image[part], return_inverse=True)
            base_u, row_base = np.unique(model_base[part], return_inverse=True)
            item = rows // n_base  # a chunk's rows of one path point are summed over their baselines
            out[item[0] : item[-1] + 1] += self._chunk_fn(
                tf.constant(images[image_u]),
                tf.constant(row_image, tf.int32),
                tf.constant(bases[base_u]),
                tf.constant(row_base, tf.int32),
                empty_keys,
                tf.constant(row_image, tf.int32),
                tf.zeros([len(rows)]),
                seed,
                tf.constant(model_alpha[part]),
                tf.fill([len(rows)], np.float32(1.0 / n_base)),
                target_tensors(targets[model_image[part]]),
                tf.constant(item - item[0], tf.int32),
                tf.constant(int(item[-1] - item[0] + 1), tf.int32),
                True,
                False,
            ).numpy()
        return out

    @staticmethod
    def _fold(
        sums: np.ndarray,
        item: np.ndarray,
        rows: np.ndarray,
        n_points: int,
        n_base: int,
        samples: int,
        open_items: dict[int, np.ndarray],
        open_samples: dict[int, tuple[np.ndarray, int]],
        moments: _Moments,
        over_baselines: Welford | None = None,
    ) -> None:
        """Add a chunk's per-item sums; fold finished items into their sample and image."""
        for offset, partial in enumerate(sums):
            key = int(item[0]) + offset
            if key in open_items:
                open_items[key] += partial
            else:
                open_items[key] = partial.astype(np.float64)
        finished_rows = rows[-1] + 1
        for key in sorted(open_items):
            if (key + 1) * n_points <= finished_rows:
                sample_key = key // n_base
                total, count = open_samples.pop(sample_key, (0.0, 0))
                finished = open_items.pop(key)
                if over_baselines is not None:
                    over_baselines.add(sample_key // samples, finished)
                total, count = total + finished, count + 1
                if count == n_base:
                    moments.add(sample_key // samples, total / n_base)
                else:
                    open_samples[sample_key] = (total, count)
