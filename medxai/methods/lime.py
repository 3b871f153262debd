"""LIME: a weighted linear surrogate over superpixels switched on and off.

Ribeiro, Singh, Guestrin (2016), "Why Should I Trust You?": Explaining the
Predictions of Any Classifier", KDD, arXiv:1602.04938.

The maths follows the reference implementation (``lime_image``): sample 0 is the
image itself (every superpixel on), samples 1 .. ``samples - 1`` switch each
superpixel on with probability 1/2; a sample's weight is
``sqrt(exp(-d^2 / kernel_width^2))`` with ``d`` its cosine distance to the all-on
vector; a ridge regression with an (unpenalised) intercept, weighted by those
weights, of the explained score on the on/off bits gives one coefficient per
superpixel.

How it runs on the forward engine: the engine returns, per image and pixel,
``sum_k F(z_k) * W_k(pixel)``. With ``W_k(pixel) = pi_k (z_kj - zbar_j)`` (``j`` the
pixel's superpixel, ``zbar`` the weighted mean of the bits) that sum is ``Xc^T W y``,
the one part of the weighted ridge's normal equations that depends on the model's
scores (the intercept is the weighted centring). The rest, ``Xc^T W Xc + ridge I``,
depends only on the bits and is built on the host, so no per-sample score is ever
kept and memory is bounded by ``batch_size``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medxai._validation import per_axis_ints
from medxai.methods._engine.targets import TargetLike
from medxai.methods._engine.uncertainty import Welford, check_groups, seed_groups
from medxai.methods.base import FILL_MEAN, ExplainingMethod, Explanation, _check_positive_int, check_fill, check_number

if TYPE_CHECKING:  # importing the class starts no TensorFlow (nor scikit-image)
    import keras
    import tensorflow as tf

SEGMENTATIONS = ("slic", "quickshift", "felzenszwalb", "grid")
"""Named segmentations: scikit-image's three superpixel algorithms, and a regular grid."""

DEFAULT_SEGMENTATION_PARAMS: dict[str, dict[str, Any]] = {
    # on the image scaled to [0, 1]; tuned on 64 x 64 grey CT slices (about 50 superpixels)
    "slic": {"n_segments": 50, "compactness": 0.1, "sigma": 1.0, "convert2lab": False},
    "quickshift": {"kernel_size": 2, "max_dist": 4.0, "ratio": 0.5, "sigma": 0.0, "convert2lab": False, "rng": 0},
    "felzenszwalb": {"scale": 10.0, "sigma": 0.5, "min_size": 16},
    "grid": {"cell": None},  # None: 1/8 of each side, at least 1 pixel; 1: one superpixel per pixel
}
_SET_BY_MEDXAI = {"image", "channel_axis", "start_label", "return_tree"}
_2D_ONLY = ("quickshift", "felzenszwalb")


def grid_segments(spatial: Sequence[int], cell: Sequence[int] | None = None) -> np.ndarray:
    """Labels ``0 .. J - 1`` of a regular grid of ``cell``-sized boxes (the last ones may be smaller).

    ``cell`` defaults to 1/8 of each side (at least 1 pixel); ``cell = 1`` gives
    one superpixel per pixel.
    """
    cell = tuple(cell) if cell is not None else tuple(max(1, int(s) // 8) for s in spatial)
    index = [np.arange(s) // c for s, c in zip(spatial, cell)]
    counts = [int(i[-1]) + 1 for i in index]
    return np.ravel_multi_index(np.meshgrid(*index, indexing="ij"), counts).astype(np.int32)


def consecutive(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered ``0 .. J - 1`` in order of their first value, and ``J``."""
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32), len(values)


def sample_bits(samples: int, n_segments: int, seed: int) -> np.ndarray:
    """``(samples, n_segments)`` bool on/off vectors: row 0 all on, row ``k`` from ``(seed, k)`` alone.

    Each row is drawn by its own generator (``numpy.random.default_rng([seed, k])``),
    so sample ``k`` is the same whatever the batching, the number of samples or
    the number of superpixels (its first ``J`` bits do not depend on ``n_segments``).
    """
    bits = np.ones((samples, n_segments), dtype=bool)
    entropy = int(seed) % 2**64
    for k in range(1, samples):
        bits[k] = np.random.default_rng([entropy, k]).random(n_segments) < 0.5
    return bits


def kernel_weights(bits: np.ndarray, kernel_width: float) -> np.ndarray:
    """``sqrt(exp(-d^2 / kernel_width^2))``, ``d`` the cosine distance of each row to the all-on vector.

    As ``lime_image``: an all-off row has distance 1 (scikit-learn's convention).
    """
    on = bits.sum(axis=1, dtype=np.float64)
    distance = 1.0 - np.sqrt(on / bits.shape[1])
    return np.sqrt(np.exp(-(distance**2) / kernel_width**2))


def weighted_ridge(bits: np.ndarray, weights: np.ndarray, xty: np.ndarray, ridge: float) -> np.ndarray:
    """Coefficients of the weighted ridge with intercept, from ``xty = Xc^T W y``.

    ``Xc`` is ``bits`` centred by their weighted mean; solves
    ``(Xc^T W Xc + ridge I) beta = xty``, in its dual form (``samples x samples``)
    when there are more superpixels than samples.
    """
    x = bits.astype(np.float64)
    x -= weights @ x / weights.sum()
    xs = np.sqrt(weights)[:, None] * x
    n, j = xs.shape
    if j <= n:
        return np.linalg.solve(xs.T @ xs + ridge * np.eye(j), xty)
    # (Xs^T Xs + a I)^-1 b = (b - Xs^T (Xs Xs^T + a I)^-1 Xs b) / a
    return (xty - xs.T @ np.linalg.solve(xs @ xs.T + ridge * np.eye(n), xs @ xty)) / ridge


class _Superpixels:
    """The LIME perturbation for the forward engine: per row the sample index and its bits.

    Per image: the segment map, the fill, the weighted mean of the bits and the
    kernel weight of every sample (these depend on the image's number of superpixels).
    """

    key = "lime"

    def __init__(
        self, segments: np.ndarray, counts: np.ndarray, bits: np.ndarray, fill: float | str, kernel_width: float
    ):
        self.segments, self.counts, self.bits, self.fill = segments, counts, bits, fill
        self.rows_per_image = len(bits)
        width = bits.shape[1]
        self.weights = np.zeros((len(counts), len(bits)))
        self.centre = np.zeros((len(counts), width))
        for i, j in enumerate(counts):
            self.weights[i] = kernel_weights(bits[:, :j], kernel_width)
            self.centre[i, :j] = self.weights[i] @ bits[:, :j] / self.weights[i].sum()

    def per_image(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.fill == FILL_MEAN:  # each image's own mean, per channel
            fill = images.mean(axis=tuple(range(1, images.ndim - 1)), dtype=np.float64)
        else:
            fill = np.full((len(images), images.shape[-1]), float(self.fill))
        return {
            "segments": self.segments,
            "fill": fill.astype(np.float32),
            "centre": self.centre.astype(np.float32),
            "kernel": self.weights.astype(np.float32),
        }

    def rows(self, copies: np.ndarray) -> dict[str, np.ndarray]:
        return {"sample": copies.astype(np.int32), "bits": self.bits[copies].astype(np.float32)}

    @staticmethod
    def apply(images: tf.Tensor, per_image: dict[str, tf.Tensor], rows: dict[str, tf.Tensor]):
        import tensorflow as tf

        rank = len(images.shape) - 2
        segments = per_image["segments"]
        on = tf.gather(rows["bits"], segments, batch_dims=1)  # (R, *spatial): 1 where the pixel's superpixel is on
        fill = tf.reshape(per_image["fill"], [-1] + [1] * rank + [images.shape[-1]])
        copies = images + (1.0 - on)[..., None] * (fill - images)
        kernel = tf.gather(per_image["kernel"], rows["sample"], batch_dims=1)
        weight = tf.reshape(kernel, [-1] + [1] * rank) * (on - tf.gather(per_image["centre"], segments, batch_dims=1))
        return copies, weight


class LIME(ExplainingMethod):
    """LIME (Ribeiro et al. 2016, arXiv:1602.04938) over superpixels, batched on the forward engine.

    The image (2D or 3D) is cut into superpixels; ``samples`` on/off vectors over them
    (sample 0: all on; the others: each superpixel on with probability 1/2, drawn from
    ``seed`` and the sample index only) give perturbed copies in which the off
    superpixels are replaced by ``fill``. The explained output (the logit by default)
    of every copy is fitted by a ridge regression (``ridge``, with intercept) on the
    bits, each sample weighted by ``sqrt(exp(-d^2 / kernel_width^2))``, ``d`` its cosine
    distance to the all-on vector (the reference implementation's kernel). A pixel's
    attribution is its superpixel's coefficient, the same on every channel.

    The coefficients are signed: positive superpixels support the class, negative
    ones speak against it. AUCMEDI's LIME "pro" and "con" maps are heatmap polarity
    ``positive`` and ``negative``.

    Args:
        model: A built Keras model.
        samples: Perturbed copies per image, the image itself included (``lime_image``: 1000).
        segmentation: ``"slic"`` (default; 2D and 3D), ``"quickshift"`` or
            ``"felzenszwalb"`` (2D only) from scikit-image, run on each image scaled
            to [0, 1]; ``"grid"`` (boxes of ``cell`` pixels; ``cell: 1`` is one
            superpixel per pixel); or, in Python, a callable that takes one model
            input ``(*spatial, C)`` (and ``segmentation_params`` as keywords) and returns
            integer labels ``(*spatial)``, e.g. an atlas or organ segmentation.
        segmentation_params: Keyword arguments of the segmentation, over the defaults in
            :data:`DEFAULT_SEGMENTATION_PARAMS` (e.g. ``{"n_segments": 100}`` for slic,
            ``{"cell": 4}`` for the grid).
        kernel_width: Width of the exponential kernel on the cosine distance (``lime_image``: 0.25).
        ridge: The ridge penalty (alpha; ``lime``: 1), positive.
        fill: The value of switched-off superpixels in the model's input space (after
            windowing and scaling): a float (default 0) or ``"mean"`` (each image's mean, per channel).
        seed: Seed of the on/off vectors.
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``engine`` (see :class:`XAIMethod`).
            ``batch_size`` bounds the copies per model call; the result depends neither on it nor
            on the other images of the batch (see :mod:`medxai.methods._engine.forward`).

    Example:
        >>> LIME(model, samples=1000, heatmap={"polarity": "positive"}).compute_heatmap(image, 1)  # doctest: +SKIP
    """

    name = "lime"

    def __init__(
        self,
        model: keras.Model,
        *,
        samples: int = 1000,
        segmentation: str | Callable[[np.ndarray], np.ndarray] = "slic",
        segmentation_params: Mapping[str, Any] | None = None,
        kernel_width: float = 0.25,
        ridge: float = 1.0,
        fill: float | str = 0.0,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        self.samples = _check_positive_int("samples", samples)
        if self.samples < 2:
            raise ValueError(f"samples must be at least 2 (the image itself and one perturbed copy), got {samples!r}")
        rank = len(self.engine.input_shape) - 1
        self.segmentation = segmentation
        self.segmentation_params = self._check_segmentation(segmentation, segmentation_params, rank)
        self.kernel_width = float(check_number("kernel_width", kernel_width))
        self.ridge = float(check_number("ridge", ridge))
        self.fill = check_fill(fill)
        check_number("seed", seed)
        self.seed = int(seed)
        check_groups(self.samples, self.uncertainty is not None)
        self._check_polarity()

    @staticmethod
    def _check_segmentation(segmentation: Any, params: Any, rank: int) -> dict[str, Any]:
        """The segmentation's effective keyword arguments; ValueError naming what is wrong."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise ValueError(f"segmentation_params must be a mapping of keyword arguments, got {params!r}")
        if callable(segmentation):
            return dict(params)
        if segmentation not in SEGMENTATIONS:
            raise ValueError(
                f"segmentation must be one of {', '.join(SEGMENTATIONS)} or a callable, got {segmentation!r}"
            )
        if rank != 2 and segmentation in _2D_ONLY:
            raise ValueError(
                f"segmentation {segmentation!r} works on 2D images only; this model takes {rank}D inputs: "
                "use 'slic' (which segments volumes) or 'grid'"
            )
        merged = {**DEFAULT_SEGMENTATION_PARAMS[segmentation], **params}
        if segmentation == "grid":
            accepted = {"cell"}
            if set(params) - accepted:
                raise ValueError(
                    f"segmentation_params: unknown key(s) {sorted(set(params) - accepted)} for 'grid' (known: cell)"
                )
            per_axis_ints("segmentation_params: cell", merged["cell"], rank)
            return merged
        # deferred: only a built method needs scikit-image
        from skimage import segmentation as skseg

        accepted = set(inspect.signature(getattr(skseg, segmentation)).parameters) - _SET_BY_MEDXAI
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ValueError(
                f"segmentation_params: unknown key(s) {unknown} for {segmentation!r} (known: "
                f"{', '.join(sorted(accepted))})"
            )
        return merged

    def params(self) -> dict[str, Any]:
        segmentation = self.segmentation
        if callable(segmentation):
            segmentation = getattr(segmentation, "__qualname__", None) or repr(segmentation)
        return {
            **super().params(),
            "samples": self.samples,
            "segmentation": segmentation,
            "segmentation_params": dict(self.segmentation_params),
            "kernel_width": self.kernel_width,
            "ridge": self.ridge,
            "fill": self.fill,
            "seed": self.seed,
        }

    def segment(self, image: np.ndarray) -> np.ndarray:
        """The superpixels of one model input ``(*spatial, C)``: int32 labels ``0 .. J - 1``, shaped ``spatial``."""
        image = np.asarray(image)
        spatial = image.shape[:-1]
        if callable(self.segmentation):
            labels = np.asarray(self.segmentation(image, **self.segmentation_params))
            if labels.shape != spatial or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(
                    f"segmentation callable must return integer labels shaped {spatial}, got {labels.dtype} "
                    f"{labels.shape}"
                )
            return consecutive(labels)[0]
        if self.segmentation == "grid":
            return grid_segments(
                spatial, per_axis_ints("segmentation_params: cell", self.segmentation_params["cell"], len(spatial))
            )
        # deferred: only a built method needs scikit-image
        from skimage import segmentation as skseg

        scaled = image.astype(np.float64)
        low, high = scaled.min(), scaled.max()
        scaled = (scaled - low) / (high - low) if high > low else np.zeros_like(scaled)
        function = getattr(skseg, self.segmentation)
        extra = {"start_label": 0} if self.segmentation == "slic" else {}
        try:
            labels = function(scaled, channel_axis=-1, **extra, **self.segmentation_params)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"segmentation {self.segmentation!r} failed with segmentation_params {self.segmentation_params}: {err}"
            ) from err
        return consecutive(np.asarray(labels))[0]

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """The superpixel coefficients as attributions, and the model evaluations they cost (``samples`` per image)."""
        from medxai.methods._engine.forward import (
            forward_engine,  # deferred: TensorFlow starts here
        )

        images, targets = self.engine.check_inputs(images, targets)
        segments = np.stack([self.segment(image) for image in images])
        counts = segments.reshape(len(images), -1).max(axis=1) + 1
        bits = sample_bits(self.samples, int(counts.max()), self.seed)
        superpixels = _Superpixels(segments, counts, bits, self.fill, self.kernel_width)
        engine = forward_engine(self.engine)
        channels, sd = images.shape[-1], None
        groups = None if self.uncertainty is None else seed_groups(self.samples)
        scored, _, scores = engine.run(images, targets, superpixels, self.batch_size, groups=groups)
        attributions = np.empty(images.shape[:-1], dtype=np.float64)
        spread = Welford(len(images), images.shape[1:-1])
        for i, j in enumerate(counts):
            flat, kernel = segments[i].ravel(), superpixels.weights[i]
            sums = scored[i] if groups is None else scored[i].sum(axis=0)
            xty = np.bincount(flat, weights=sums.ravel(), minlength=j) / np.bincount(flat, minlength=j)
            attributions[i] = weighted_ridge(bits[:, :j], kernel, xty, self.ridge)[segments[i]]
            for g in range(groups or 0):  # each seed group's own regression on its own samples
                member = np.arange(self.samples) * int(groups or 0) // self.samples == g
                xty_g = np.bincount(flat, weights=scored[i, g].ravel(), minlength=j) / np.bincount(flat, minlength=j)
                # the engine centred every sample's bits on all samples' weighted mean; a group centres on its own
                own = kernel[member] @ bits[member, :j] / kernel[member].sum()
                xty_g += (superpixels.centre[i, :j] - own) * (kernel[member] @ scores[i, member])
                spread.add(i, weighted_ridge(bits[member, :j], kernel[member], xty_g, self.ridge)[segments[i]])
        if groups is not None:
            sd = np.repeat(spread.sd()[..., None], channels, axis=-1)
        attributions = np.repeat(attributions[..., None], channels, axis=-1).astype(np.float32)
        return Explanation(attributions, evaluations=np.full(len(images), self.samples), sd=sd)
