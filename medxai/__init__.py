"""medxai: gradient attribution maps for TensorFlow/Keras medical-image classifiers.

The public API::

    from medxai import IntegratedGradients
    heatmap = IntegratedGradients(model, steps=32).compute_heatmap(image, class_index=1)

Names are loaded on first use, so ``import medxai.config`` (or ``medxai --help``)
does not start TensorFlow.
"""

from importlib import import_module
from typing import Any

from medxai._version import __version__

_EXPORTS = {
    "ClipSpec": "medxai.heatmap",
    "HeatmapPolicy": "medxai.heatmap",
    "normalize": "medxai.heatmap",
    "to_heatmap": "medxai.heatmap",
    "GradientEngine": "medxai.engine",
    "PathPlan": "medxai.engine",
    "Explanation": "medxai.methods",
    "Gradient": "medxai.methods",
    "IntegratedGradients": "medxai.methods",
    "PathMethod": "medxai.methods",
    "SmoothGrad": "medxai.methods",
    "XAIMethod": "medxai.methods",
    "ExplainedOutput": "medxai.model_output",
    "OutputSelectionError": "medxai.model_output",
    "explained_model": "medxai.model_output",
    "explained_output": "medxai.model_output",
    "available_methods": "medxai.registry",
    "get_method": "medxai.registry",
    "register_method": "medxai.registry",
    "Config": "medxai.config",
    "ConfigError": "medxai.config",
    "load_config": "medxai.config",
    "RunSummary": "medxai.decoder",
    "run": "medxai.decoder",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medxai' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
