"""Guided Grad-CAM.

Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra (2017), "Grad-CAM: Visual
Explanations from Deep Networks via Gradient-based Localization", ICCV,
arXiv:1610.02391 (section 3.1, "Guided Grad-CAM").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from medxai.methods._engine.targets import TargetLike
from medxai.methods.base import ExplainingMethod, Explanation
from medxai.methods.gradcam import GradCAM
from medxai.methods.guided_backprop import GuidedBackprop

if TYPE_CHECKING:
    import keras


class GuidedGradCAM(ExplainingMethod):
    """Guided backpropagation times the (upsampled) Grad-CAM map, element by element.

    The paper fuses the two by pointwise multiplication after upsampling the Grad-CAM
    map to the input resolution (bilinear; here the pipeline's linear resizer, in 2D and
    3D). Both parts are the library's own methods (:class:`GradCAM` and
    :class:`GuidedBackprop`) built on the same model and settings; the result is signed
    like guided backprop (the Grad-CAM factor is non-negative).

    Args:
        model: A built Keras model.
        layer: The Grad-CAM layer (default: the last layer with spatial outputs).
        **kwargs: ``output``, ``batch_size``, ``heatmap``, ``jit``, ``precision``,
            ``engine`` (see :class:`~medxai.methods.base.XAIMethod`).

    Example:
        >>> GuidedGradCAM(model).compute_heatmap(image, class_index=1)  # doctest: +SKIP
    """

    name = "guided_gradcam"
    aliases = ("guided_grad_cam",)

    def __init__(self, model: keras.Model, *, layer: str | None = None, **kwargs: Any):
        super().__init__(model, **kwargs)
        shared = self.shared_options()
        self.gradcam = GradCAM(model, layer=layer, **shared)
        self.guided = GuidedBackprop(model, **shared)
        self.layer = self.gradcam.layer
        self._check_polarity()

    def params(self) -> dict[str, Any]:
        return {**super().params(), "layer": self.layer}

    def explain(self, images: np.ndarray, targets: TargetLike) -> Explanation:
        """Guided backprop times the upsampled Grad-CAM map (no completeness delta)."""
        images, targets = self.engine.check_inputs(images, targets)
        cam = self.gradcam.explain(images, targets)  # upsampled, on every channel
        guided = self.guided.explain(images, targets)
        product = (guided.attributions * cam.attributions).astype(np.float32)
        evaluations = (
            None if cam.evaluations is None or guided.evaluations is None else cam.evaluations + guided.evaluations
        )
        return Explanation(product, evaluations=evaluations)
