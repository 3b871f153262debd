"""medxai: gradient attribution maps for TensorFlow/Keras medical-image classifiers.

The public API::

    from medxai import IntegratedGradients
    heatmap = IntegratedGradients(model, steps=32).compute_heatmap(image, class_index=1)

Names are loaded on first use, so ``import medxai.pipeline.config`` (or ``medxai --help``)
does not start TensorFlow.
"""

import importlib.abc
import importlib.util
import sys
import warnings
from importlib import import_module
from typing import Any

from medxai._version import __version__

#: Modules that moved in 0.1.0 (the one-way layout): the old path still imports, for one
#: release, as the same module object under its new name, with a DeprecationWarning.
MOVED_MODULES = {
    "medxai.engine": "medxai.methods._engine.engine",
    "medxai.model_output": "medxai.methods._engine.output",
    "medxai.precision": "medxai.methods._engine.precision",
    "medxai.methods.adaptive": "medxai.methods._engine.adaptive",
    "medxai.methods.quadrature": "medxai.methods._engine.quadrature",
    "medxai.methods.baselines": "medxai.methods._engine.baselines",
    "medxai.registry": "medxai.methods.registry",
    "medxai.model_loader": "medxai.io.model",
    "medxai.evaluation": "medxai.metrics",
    "medxai.evaluation.metrics": "medxai.metrics.scores",
    "medxai.evaluation.faithfulness": "medxai.metrics.faithfulness",
    "medxai.sanity_check": "medxai.metrics.randomisation",
    "medxai.render": "medxai.viz.render",
    "medxai.report": "medxai.viz.report",
    "medxai.config": "medxai.pipeline.config",
    "medxai.decoder": "medxai.pipeline.decoder",
    "medxai.executors": "medxai.pipeline.executors",
    "medxai.evaluate": "medxai.pipeline.evaluation",
    "medxai.progress": "medxai.pipeline.progress",
    "medxai.quiet": "medxai.pipeline.quiet",
    "medxai.synthetic": "medxai.data.synthetic",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the moved module itself (so patches and ``isinstance`` agree)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(name, self) if name in MOVED_MODULES else None

    def create_module(self, spec: Any) -> Any:
        new = MOVED_MODULES[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old path will be removed in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        return import_module(new)

    def exec_module(self, module: Any) -> None:
        """The module is already executed under its new name."""


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())

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
