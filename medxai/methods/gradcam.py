"""Grad-CAM.

Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra (2017), "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization", ICCV,
arXiv:1610.02391.
"""

from __future__ import annotations

import numpy as np

from medxai.methods._cam import CAMMethod, spatial_axes


class GradCAM(CAMMethod):
    """``ReLU(sum_k w_k A_k)`` with ``w_k`` the spatial mean of ``dY/dA_k`` (the paper's eq. 1-2).

    Args:
        model: A built Keras model.
        layer: The layer explained (default: the last layer with spatial outputs).
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`~medxai.methods._cam.CAMMethod`).

    Example:
        >>> GradCAM(model).compute_heatmap(image, class_index=1)  # doctest: +SKIP
    """

    name = "gradcam"
    aliases = ("grad_cam",)

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        weights = gradients.mean(axis=spatial_axes(gradients), keepdims=True)
        return np.maximum((weights * activations).sum(axis=-1), 0.0)
