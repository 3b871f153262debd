"""HiResCAM.

Draelos, Carin (2020), "Use HiResCAM instead of Grad-CAM for faithful explanations
of convolutional neural networks", arXiv:2011.08891.
"""

from __future__ import annotations

import numpy as np

from medxai.methods._cam import CAMMethod


class HiResCAM(CAMMethod):
    """``ReLU(sum_k g_k * A_k)`` elementwise, without averaging the gradients.

    For a model whose head is global average pooling and a linear layer it equals
    Grad-CAM; elsewhere it shows the locations that raise the score.

    Args:
        model: A built Keras model.
        layer: The layer explained (default: the last layer with spatial outputs).
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`~medxai.methods._cam.CAMMethod`).
    """

    name = "hirescam"
    aliases = ("hires_cam",)

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        return np.maximum((gradients * activations).sum(axis=-1), 0.0)
