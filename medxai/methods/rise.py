"""RISE: randomised input sampling for explanation.

Petsiuk, Das, Saenko (2018), "RISE: Randomized Input Sampling for Explanation of
Black-box Models", arXiv:1806.07421.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np

from medxai.methods._engine.targets import TargetLike
from medxai.methods._engine.uncertainty import Welford, check_groups, seed_groups
from medxai.methods.base import ExplainingMethod, Explanation, _check_positive_int, check_number

if TYPE_CHECKING:  # importing the class starts no TensorFlow
    import keras
    import tensorflow as tf


def interpolation(size: int, cells: int, shift: Any, xp: Any = np) -> Any:
    """``(..., size, cells)`` weights that upsample a ``cells`` grid to ``(cells + 1) * ceil(size / cells)`` pixels
    linearly (half-pixel centres, edge values held) and crop ``size`` of them from ``shift``.

    ``xp`` is numpy or ``tf.experimental.numpy``; ``shift`` is an int array.
    """
    cell = -(-size // cells)
    i = xp.arange(size, dtype="float32")
    u = (i + xp.asarray(shift, dtype="float32")[..., None] + 0.5) * (cells / ((cells + 1) * cell)) - 0.5
    u = xp.clip(u, 0.0, cells - 1.0)
    lo = xp.floor(u)
    frac = u - lo
    grid = xp.arange(cells, dtype="float32")
    hi = xp.minimum(lo + 1.0, cells - 1.0)
    return (
        xp.asarray(grid == lo[..., None], "float32") * (1.0 - frac)[..., None]
        + xp.asarray(grid == hi[..., None], "float32") * frac[..., None]
    )


class _Masks:
    """The RISE perturbation for the forward engine: one random key per row; the same masks for every image."""

    def __init__(self, samples: int, cells: int, p: float, seed: int):
        self.key = f"rise/{cells}/{p!r}"
        self.rows_per_image = samples
        self.cells: int = cells
        self.p: float = p
        self.seed: int = seed

    def per_image(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def rows(self, copies: np.ndarray) -> dict[str, np.ndarray]:
        return {"key": copies.astype(np.int64), "seed": np.full(len(copies), self.seed, np.int64)}

    def apply(self, images: tf.Tensor, per_image: dict[str, tf.Tensor], rows: dict[str, tf.Tensor]):
        import tensorflow as tf
        import tensorflow.experimental.numpy as tnp

        spatial = [int(s) for s in images.shape[1:-1]]
        rank, cells = len(spatial), self.cells
        draws = tf.map_fn(
            lambda sk: tf.random.stateless_uniform([cells**rank + rank], tf.stack([sk[0], sk[1]]), alg="philox"),
            tf.stack([rows["seed"], rows["key"]], axis=1),
            fn_output_signature=tf.float32,
        )
        grid = tf.cast(draws[:, : cells**rank] < self.p, tf.float32)
        grid = tf.reshape(grid, [-1] + [cells] * rank)
        mask = grid
        letters = "abc"[:rank]
        for axis, size in enumerate(spatial):
            cell = -(-size // cells)
            shift = tf.floor(draws[:, cells**rank + axis] * cell)
            weights = interpolation(size, cells, shift, tnp)  # (R, size, cells)
            source = "".join("xyz"[a] if a < axis else letters[a] for a in range(rank))
            target = source.replace(letters[axis], "xyz"[axis])
            mask = tf.einsum(f"r{'xyz'[axis]}{letters[axis]},r{source}->r{target}", weights, mask)
        return images * mask[..., None], mask


class RISE(ExplainingMethod):
    """RISE (Petsiuk et al. 2018, arXiv:1806.07421), batched on the forward engine.

    ``samples`` random binary grids of ``cells`` per side (each cell kept with
    probability ``p``) are upsampled linearly to ``cells + 1`` cells of
    ``ceil(side / cells)`` pixels, shifted at random by less than a cell and cropped to the
    image; the image is multiplied by each mask (so "removed" means zero in the
    model's input space). The masks depend only on ``seed`` and their index (the same for
    every image and every ``batch_size``).

    The paper's saliency is the Monte Carlo estimate of ``E[F(x * M) M(u)] / p``; its
    estimator ``sum_i F(x * M_i) M_i(u) / (N p)`` adds, for a score ``F = c + f``,
    ``c sum_i M_i(u) / (N p)``: random mask-coverage noise that does not depend on the model
    and that dominates logits (``c`` is large next to how much masking moves the score).
    medxai uses the sample covariance of the score and the mask instead, with ``N = samples``
    and ``Fbar`` the mean score over the masks::

        S(u) = sum_i (F(x * M_i) - Fbar) M_i(u) / ((N - 1) p)

    Its expectation is exactly ``Cov(F(x * M), M(u)) / p = E[F(x * M) M(u)] / p - E[F(x * M)]``
    (every ``M(u)`` has mean ``p``: it interpolates cells kept with probability ``p``):
    the paper's saliency less one constant (so the heatmap is the paper's in the limit), and
    it is unbiased for every ``N`` because ``Fbar`` is the mean of the same draws (the
    ``N - 1``, as in the sample variance). Adding a constant to every score leaves ``S``
    unchanged, and the coverage noise, which ``Fbar`` removes, no longer drowns the signal.
    ``S`` is signed (positive where keeping the pixel raises the score). Same value on every channel.

    Args:
        model: A built Keras model.
        samples: Masks per image, at least 2 (the paper: 4000-8000 for ImageNet).
        cells: Grid cells per side of the low-resolution masks (the paper: 7).
        p: Probability that a cell is kept (the paper: 0.5).
        seed: Seed of the masks.
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``engine`` (see :class:`XAIMethod`).
            ``batch_size`` bounds the masked copies per model call; the result depends neither
            on it nor on the other images of the batch (see :mod:`medxai.methods._engine.forward`).

    Raises:
        ValueError: naming ``samples``, ``cells``, ``p`` or ``seed`` when out of range.
    """

    name = "rise"

    def __init__(
        self, model: keras.Model, *, samples: int = 2000, cells: int = 7, p: float = 0.5, seed: int = 0, **kwargs: Any
    ):
        super().__init__(model, **kwargs)
        self.samples = _check_positive_int("samples", samples)
        if self.samples < 2:
            raise ValueError(
                f"samples must be at least 2 (the estimator subtracts the masks' mean score), got {samples!r}"
            )
        self.cells = _check_positive_int("cells", cells)
        if isinstance(p, bool) or not isinstance(p, Real) or not (0.0 < p <= 1.0) or not math.isfinite(p):
            raise ValueError(f"p must be a probability in (0, 1], got {p!r}")
        self.p: float = float(p)
        self.seed: int = int(check_number("seed", seed))
        check_groups(self.samples, self.uncertainty is not None)
        self._check_polarity()

    def params(self) -> dict[str, Any]:
        return {**super().params(), "samples": self.samples, "cells": self.cells, "p": self.p, "seed": self.seed}

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """The saliency maps and the model evaluations they cost (``samples`` per image)."""
        from medxai.methods._engine.forward import (
            forward_engine,  # deferred: TensorFlow starts here
        )

        images, targets = self.engine.check_inputs(images, targets)
        masks = _Masks(self.samples, self.cells, self.p, self.seed)
        engine = forward_engine(self.engine)
        channels = images.shape[-1]
        sd = None
        if self.uncertainty is None:
            scored, covered, scores = engine.run(images, targets, masks, self.batch_size)
            saliency = self._saliency(scored, covered, scores)
        else:  # the same masks in seed groups: each group's own saliency, their SD
            groups = seed_groups(self.samples)
            scored_g, covered_g, scores = engine.run(images, targets, masks, self.batch_size, groups=groups)
            saliency = self._saliency(scored_g.sum(axis=1), covered_g.sum(axis=1), scores)
            member = np.arange(self.samples) * groups // self.samples
            spread = Welford(len(images), images.shape[1:-1])
            for g in range(groups):
                part = self._saliency(scored_g[:, g], covered_g[:, g], scores[:, member == g])
                for i in range(len(images)):
                    spread.add(i, part[i])
            sd = np.repeat(spread.sd()[..., None], channels, axis=-1)
        attributions = np.repeat(saliency[..., None], channels, axis=-1).astype(np.float32)
        return Explanation(attributions, evaluations=np.full(len(images), self.samples), sd=sd)

    def _saliency(self, scored: np.ndarray, covered: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The covariance estimator (class docstring) from the sums over some masks and their scores."""
        mean = scores.mean(axis=1).reshape((-1,) + (1,) * (scored.ndim - 1))
        # sum_i (F_i - Fbar) M_i = sum_i F_i M_i - Fbar sum_i M_i
        return (scored - mean * covered) / ((scores.shape[1] - 1) * self.p)
