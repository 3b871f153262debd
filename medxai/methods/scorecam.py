"""Score-CAM: activation maps weighted by the score of the image they mask.

Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu (2020), "Score-CAM: Score-Weighted
Visual Explanations for Convolutional Neural Networks", CVPR workshops, arXiv:1910.01279.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from medxai.methods._cam import CAMMethod
from medxai.methods._engine.baselines import make_baselines, validate_baseline
from medxai.methods._engine.targets import TargetLike, Targets
from medxai.methods.base import Explanation

if TYPE_CHECKING:  # importing the class starts no TensorFlow
    import keras
    import tensorflow as tf

WEIGHTS = ("softmax", "increase")


class _ChannelMasks:
    """The Score-CAM perturbation for the forward engine: one row per (image, channel k).

    Per image: the layer's activations (low resolution) and the baseline; per row: the channel.
    Inside the compiled chunk, channel k is drawn on the input with the layer's placement
    matrices (:func:`~medxai.methods._engine.geometry.placement`: linear between the cells,
    pixels the model never sees copy the nearest seen one, so they change neither the min
    nor the max), min-max normalised to [0, 1] (a channel constant at the layer's resolution
    gives zeros) and the copy is ``b + M_k * (x - b)`` (``x * M_k`` for the zero baseline).
    """

    def __init__(self, activations: np.ndarray, baselines: np.ndarray, matrices: list[np.ndarray]):
        self.matrices = [np.ascontiguousarray(m, dtype=np.float32) for m in matrices]
        digest = hashlib.sha1(b"".join(m.tobytes() for m in self.matrices)).hexdigest()[:16]
        # the matrices are constants of the compiled routine, so they name it
        self.key = f"scorecam/{activations.shape[1:-1]}->{baselines.shape[1:-1]}/{digest}"
        self.rows_per_image = int(activations.shape[-1])
        self.activations, self.baselines = activations, baselines

    def per_image(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {"activations": self.activations, "baseline": self.baselines}

    def rows(self, copies: np.ndarray) -> dict[str, np.ndarray]:
        return {"channel": copies.astype(np.int32)}

    def apply(self, images: tf.Tensor, per_image: dict[str, tf.Tensor], rows: dict[str, tf.Tensor]):
        import tensorflow as tf

        rank = len(images.shape) - 2
        low = tf.gather(per_image["activations"], rows["channel"], axis=-1, batch_dims=1)  # (R, *feature)
        axes = list(range(1, rank + 1))
        constant = tf.reduce_max(low, axis=axes) <= tf.reduce_min(low, axis=axes)
        mask = low
        for matrix in self.matrices:  # contract the first spatial axis left; the result goes to the end
            mask = tf.tensordot(mask, tf.constant(matrix.T), axes=[[1], [0]])
        lo = tf.reduce_min(mask, axis=axes, keepdims=True)
        span = tf.reduce_max(mask, axis=axes, keepdims=True) - lo
        keep = tf.reshape(~constant, [-1] + [1] * rank) & (span > 0)
        mask = tf.where(keep, (mask - lo) / tf.where(keep, span, tf.ones_like(span)), tf.zeros_like(mask))
        baseline = per_image["baseline"]
        return baseline + mask[..., None] * (images - baseline), mask


class ScoreCAM(CAMMethod):
    """Score-CAM (Wang et al. 2020, arXiv:1910.01279): ``ReLU(sum_k w_k A_k)`` with gradient-free weights.

    For each image, the layer's activations ``A_k`` (one forward pass) are drawn on the input
    like the maps of every CAM (linear between the cells' receptive-field centres, see
    :mod:`medxai.methods._cam`), min-max normalised over the pixels the model sees to
    ``M_k`` in [0, 1] (a channel constant at the layer's resolution gives ``M_k = 0``), and the
    masked copies ``x_k = b + M_k (x - b)`` (``x * M_k`` with the paper's zero baseline) are
    scored with the explained output ``F`` for the target (the logit by default). With
    ``S_k = F(x_k) - F(b)``, the paper's channel-wise increase of confidence (eq. 8):

    * ``weights="softmax"`` (default): ``w_k = exp(S_k) / sum_j exp(S_j)``, the paper's
      Algorithm 1 (softmax over the channels of the logit increases). Softmax ignores a shift
      common to all k, so ``F(b)`` cancels and is not evaluated: ``w = softmax_k(F(x_k))``.
    * ``weights="increase"``: ``w_k = S_k``, eq. 8-9 as written (unnormalised; ``F(b)`` costs one
      more evaluation per image).

    The map ``ReLU(sum_k w_k A_k)`` is computed at the layer's resolution, drawn on the input like
    the other CAMs (0 where the model sees nothing) and repeated on every input channel; heatmap
    polarity must be ``absolute``.
    The masked copies (one per channel per image: ``K`` model rows per image) run on the forward
    engine in chunks of at most ``batch_size`` rows, several images per chunk; ``batch_size``
    never changes a result.

    Args:
        model: A built Keras model.
        layer: The layer explained (default: the last layer with spatial outputs).
        weights: ``"softmax"`` (default) or ``"increase"`` (see above).
        baseline: What a masked-out pixel becomes, in the model's input space (after
            preprocessing): ``"zeros"`` (default, the paper's), ``"black"``, ``"white"``,
            ``"blur"``, ``"uniform"`` (seed 0), a float or an array shaped like one image or the batch.
        blur_sigma: Sigma of the ``"blur"`` baseline (default 1/8 of the smallest side).
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``jit``, ``precision``, ``engine``
            (see :class:`~medxai.methods._cam.CAMMethod`).

    Example:
        >>> ScoreCAM(model).compute_heatmap(image, class_index=1)  # doctest: +SKIP
    """

    name = "scorecam"
    aliases = ("score_cam",)

    def __init__(
        self,
        model: keras.Model,
        *,
        layer: str | None = None,
        weights: str = "softmax",
        baseline: str | float | np.ndarray = "zeros",
        blur_sigma: float | None = None,
        **kwargs: Any,
    ):
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
        validate_baseline(baseline, 1)
        if blur_sigma is not None and (isinstance(blur_sigma, bool) or not blur_sigma > 0):
            raise ValueError(f"blur_sigma must be a positive number or null, got {blur_sigma!r}")
        self.weights, self.baseline, self.blur_sigma = weights, baseline, blur_sigma
        super().__init__(model, layer=layer, **kwargs)

    def params(self) -> dict[str, Any]:
        baseline = "array" if isinstance(self.baseline, np.ndarray) else self.baseline
        return {**super().params(), "weights": self.weights, "baseline": baseline, "blur_sigma": self.blur_sigma}

    def combine(self, activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``ReLU(sum_k w_k A_k)`` from ``(n, *spatial, K)`` activations and ``(n, K)`` channel weights."""
        weights = weights.reshape((len(weights),) + (1,) * (activations.ndim - 2) + (-1,))
        return np.maximum((weights * activations).sum(axis=-1), 0.0)

    def channel_weights(self, images: np.ndarray, targets: Targets, activations: np.ndarray) -> np.ndarray:
        """``(N, K)`` float64 weights ``w_k`` of checked images (see the class docstring)."""
        from medxai.methods._engine.forward import (
            forward_engine,  # deferred: TensorFlow starts here
        )

        baselines = make_baselines(images, self.baseline, blur_sigma=self.blur_sigma)[:, 0]
        matrices, _ = self.activations.placement(images.shape[1:-1])
        masks = _ChannelMasks(activations, baselines, matrices)
        scores = forward_engine(self.engine).scores(images, targets, masks, self.batch_size)
        if self.weights == "increase":
            at_base = targets.pick(self.engine.predict(baselines, self.batch_size))
            return scores - at_base.astype(np.float64)[:, None]
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """The maps and the model evaluations they cost per image.

        The cost counts the activations, ``K`` masked copies, and ``F(b)`` with ``increase``.
        """
        images, targets = self.engine.check_inputs(images, targets)
        self.engine.sync_weights()  # precision "mixed": copy the current weights into the half model
        activations = self.activations.activations(images, self.batch_size)
        weights = self.channel_weights(images, targets, activations)
        maps = self.combine(activations.astype(np.float64), weights)
        result = np.empty(images.shape, dtype=np.float32)
        result[...] = self.draw(maps, images.shape[1:-1])[..., None]  # every channel
        evaluations = 1 + activations.shape[-1] + (self.weights == "increase")  # A, the K copies, F(b)
        return Explanation(result, evaluations=np.full(len(images), evaluations))
