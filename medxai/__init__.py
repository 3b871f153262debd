"""medxai: gradient attribution maps for TensorFlow/Keras medical-image classifiers.

The public API::

    from medxai import IntegratedGradients
    heatmap = IntegratedGradients(model, steps=32).compute_heatmap(image, class_index=1)
"""

from medxai._version import __version__
from medxai.engine import GradientEngine, PathPlan
from medxai.heatmap import ClipSpec, HeatmapPolicy, normalize, to_heatmap
from medxai.methods import Explanation, Gradient, IntegratedGradients, PathMethod, SmoothGrad, XAIMethod
from medxai.model_output import explained_model
from medxai.registry import available_methods, get_method, register_method

__all__ = [
    "ClipSpec",
    "Explanation",
    "Gradient",
    "GradientEngine",
    "HeatmapPolicy",
    "IntegratedGradients",
    "PathMethod",
    "PathPlan",
    "SmoothGrad",
    "XAIMethod",
    "__version__",
    "available_methods",
    "explained_model",
    "get_method",
    "normalize",
    "register_method",
    "to_heatmap",
]
