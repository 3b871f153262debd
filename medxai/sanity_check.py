"""The model-randomisation sanity check (Adebayo et al. 2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim (2018), "Sanity Checks for
Saliency Maps", NeurIPS, arXiv:1810.03292. Weights are randomised layer by layer
from the top (output) down ("cascading"); a method whose maps barely change
while the model loses everything it learned explains the input, not the model,
and fails the check.

The metric itself is :func:`medxai.evaluation.rank_correlation`; this module needs Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np

from medxai.evaluation.metrics import rank_correlation


@dataclass(frozen=True)
class SanityStep:
    """Mean Spearman correlation after randomising the layers down to ``layer``."""

    method: str
    step: int
    layer: str
    spearman: float


def weighted_layers(model: keras.Model) -> list[str]:
    """Names of the layers with weights, from the output down to the input."""
    return [layer.name for layer in reversed(model.layers) if layer.weights]


def randomised_copy(model: keras.Model, layers: Sequence[str], seed: int = 0) -> keras.Model:
    """A copy of ``model`` whose named layers get fresh random weights.

    Each weight tensor is redrawn from a normal distribution with the standard
    deviation of the trained tensor (0.05 for a constant one), so the scale of
    the activations stays plausible while everything learned is gone.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    for name in layers:
        layer = copy.get_layer(name)
        fresh = []
        for weight in layer.get_weights():
            std = float(weight.std()) or 0.05
            fresh.append(rng.normal(0.0, std, size=weight.shape).astype(weight.dtype))
        layer.set_weights(fresh)
    return copy


def cascading_randomisation(
    model: keras.Model,
    explain: Callable[[keras.Model], dict[str, list[np.ndarray]]],
    *,
    seed: int = 0,
) -> list[SanityStep]:
    """Rank correlations between the trained model's maps and those of ever more randomised copies.

    Args:
        model: The trained model.
        explain: Given a model, returns ``{method name: [map per image]}`` for a
            fixed set of images and classes (maps in the model's input geometry).
        seed: Seed of the random weights.

    Returns:
        One :class:`SanityStep` per method and randomised layer, top layer first.
    """
    import tensorflow as tf

    reference = explain(model)
    layers = weighted_layers(model)
    steps = []
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # every copy is a new model, so TF warns about retracing: expected here
    try:
        maps_per_step = [explain(randomised_copy(model, layers[:step], seed)) for step in range(1, len(layers) + 1)]
    finally:
        logger.setLevel(level)
    for step, maps in enumerate(maps_per_step, start=1):
        for method, originals in reference.items():
            rhos = [rank_correlation(a, b) for a, b in zip(originals, maps[method])]
            finite = [r for r in rhos if np.isfinite(r)]
            steps.append(SanityStep(method, step, layers[step - 1], float(np.mean(finite)) if finite else float("nan")))
    return steps
