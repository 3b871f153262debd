"""LayerCAM.

Jiang, Zhang, Hou, Cheng, Wei (2021), "LayerCAM: Exploring Hierarchical Class
Activation Maps for Localization", IEEE Transactions on Image Processing 30,
5875-5888.
"""

from __future__ import annotations

import numpy as np

from medxai.methods._cam import CAMMethod


class LayerCAM(CAMMethod):
    """``ReLU(sum_k ReLU(g_k) * A_k)``: only the positive gradients weight each location.

    Works on shallow layers too (the paper's point), e.g. ``layer="block2_conv"``.

    Args:
        model: A built Keras model.
        layer: The layer explained (default: the last layer with spatial outputs).
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`~medxai.methods._cam.CAMMethod`).
    """

    name = "layercam"
    aliases = ("layer_cam",)

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        return np.maximum((np.maximum(gradients, 0.0) * activations).sum(axis=-1), 0.0)
