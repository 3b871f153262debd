"""medxai: gradient attribution maps for TensorFlow/Keras medical-image classifiers.

The public API::

    from medxai import IntegratedGradients
    heatmap = IntegratedGradients(model, steps=32).compute_heatmap(image, class_index=1)

Names are loaded on first use, so ``import medxai.pipeline.config`` (or ``medxai --help``)
does not start TensorFlow.
"""

from importlib import import_module
from typing import Any

from medxai._version import __version__

_EXPORTS = {
    **{
        name: "medxai.errors"
        for name in (
            "ConfigError", "StudyError", "ManifestError", "ImageReadError", "PreprocessError", "ModelLoadError",
            "OutputSelectionError", "EvaluationError", "SanityCheckError", "ReportError",
        )
    },
    "ClipSpec": "medxai.heatmap",
    "HeatmapPolicy": "medxai.heatmap",
    "normalize": "medxai.heatmap",
    "to_heatmap": "medxai.heatmap",
    "GradientEngine": "medxai.methods._engine.engine",
    "PathPlan": "medxai.methods._engine.plan",
    "BlurIG": "medxai.methods",
    "Explanation": "medxai.methods",
    "ExplainingMethod": "medxai.methods",
    "GradCAM": "medxai.methods",
    "GradCAMPlusPlus": "medxai.methods",
    "Gradient": "medxai.methods",
    "GradientXInput": "medxai.methods",
    "GuidedBackprop": "medxai.methods",
    "GuidedGradCAM": "medxai.methods",
    "GuidedIG": "medxai.methods",
    "HiResCAM": "medxai.methods",
    "LayerCAM": "medxai.methods",
    "LIME": "medxai.methods",
    "IntegratedGradients": "medxai.methods",
    "Occlusion": "medxai.methods",
    "RISE": "medxai.methods",
    "ScoreCAM": "medxai.methods",
    "PathMethod": "medxai.methods",
    "SmoothGrad": "medxai.methods",
    "XAIMethod": "medxai.methods",
    "ExplainedOutput": "medxai.methods._engine.output",
    "explained_model": "medxai.methods._engine.output",
    "explained_output": "medxai.methods._engine.output",
    "available_methods": "medxai.methods.registry",
    "get_method": "medxai.methods.registry",
    "register_method": "medxai.methods.registry",
    "Config": "medxai.pipeline.config",
    "load_config": "medxai.pipeline.config",
    "RunSummary": "medxai.pipeline.decoder",
    "run": "medxai.pipeline.study",
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
