"""Grad-CAM++.

Chattopadhay, Sarkar, Howlader, Balasubramanian (2018), "Grad-CAM++: Generalized
Gradient-based Visual Explanations for Deep Convolutional Networks", WACV,
arXiv:1710.11063.
"""

from __future__ import annotations

import numpy as np

from medxai.methods._cam import CAMMethod, spatial_axes


class GradCAMPlusPlus(CAMMethod):
    """Grad-CAM with pixel-wise weights: the closed-form alphas of the paper's eq. 19.

    With ``Y = exp(S)`` the second and third derivatives are powers of ``g = dS/dA``,
    so ``alpha_ij = g_ij^2 / (2 g_ij^2 + (sum_ab A_ab) g_ij^3)`` (0 where ``g_ij = 0``),
    ``w_k = sum_ij alpha_ij ReLU(g_ij)`` and the map is ``ReLU(sum_k w_k A_k)``
    (``exp(S)`` is a positive factor of every weight, so it is left out).

    Args:
        model: A built Keras model.
        layer: The layer explained (default: the last layer with spatial outputs).
        **kwargs: ``output``, ``batch_size``, ``heatmap`` (see :class:`~medxai.methods._cam.CAMMethod`).
    """

    name = "gradcam_plus_plus"
    aliases = ("gradcam++", "gradcampp", "grad_cam_plus_plus")

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        axes = spatial_axes(gradients)
        g2 = gradients**2
        denominator = 2.0 * g2 + activations.sum(axis=axes, keepdims=True) * gradients**3
        safe = np.where(denominator != 0.0, denominator, 1.0)
        alpha = np.where((gradients != 0.0) & (denominator != 0.0), g2 / safe, 0.0)
        weights = (alpha * np.maximum(gradients, 0.0)).sum(axis=axes, keepdims=True)
        return np.maximum((weights * activations).sum(axis=-1), 0.0)
