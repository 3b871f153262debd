"""medxai: gradient attribution maps for TensorFlow/Keras medical-image classifiers.

The public API::

    from medxai import IntegratedGradients
    heatmap = IntegratedGradients(model, steps=32).compute_heatmap(image, class_index=1)

The root exports what users use: every method class (found by the registry), ``get_method``,
``run``, ``explain`` (the notebook API), ``read_image``, the heatmap policy and the error types. The engines and other
internals stay under their packages (``medxai.methods._engine``).

Names are loaded on first use, so ``import medxai.pipeline.config`` (or ``medxai --help``)
does not start TensorFlow, nor do the method classes. ``explain`` and ``run``, which load models
themselves, start it on first use with its C++ start-up messages hidden, as the command line does
(``MEDXAI_TF_LOGS=1`` shows them); a TensorFlow the caller imported first is left as it is.
"""

from importlib import import_module
from typing import Any

from medxai._version import __version__ as __version__

_EXPORTS = {
    **{
        name: "medxai.errors"
        for name in (
            "ConfigError",
            "StudyError",
            "ManifestError",
            "ImageReadError",
            "CorruptPixelDataError",
            "PreprocessError",
            "ModelLoadError",
            "SettingError",
            "OutputSelectionError",
            "EvaluationError",
            "SanityCheckError",
            "ReportError",
        )
    },
    "ClipSpec": "medxai.heatmap",
    "HeatmapPolicy": "medxai.heatmap",
    "to_heatmap": "medxai.heatmap",
    "Explanation": "medxai.methods",
    "ExplainingMethod": "medxai.methods",
    "PathMethod": "medxai.methods",
    "XAIMethod": "medxai.methods",
    "available_methods": "medxai.methods.registry",
    "get_method": "medxai.methods.registry",
    "register_method": "medxai.methods.registry",
    "read_image": "medxai.io",
    "Region": "medxai.regions",
    "Config": "medxai.pipeline.config",
    "load_config": "medxai.pipeline.config",
    "RunSummary": "medxai.pipeline.decoder",
    "run": "medxai.pipeline.study",
    "explain": "medxai.pipeline.notebook",
}


def _method_classes() -> dict[str, Any]:
    """The built-in method classes (``IntegratedGradients``, ``GradCAM``, ...), from the registry."""
    return import_module("medxai.methods").method_classes()


#: The names whose use starts TensorFlow: they may load a model from a path themselves.
_COMPUTING = ("explain", "run")


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted([*_EXPORTS, *_method_classes(), "__version__"])
    if name in _COMPUTING:
        import_module("medxai.pipeline.quiet").import_tensorflow_quietly()
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
    else:
        value = _method_classes().get(name)
        if value is None:
            raise AttributeError(f"module 'medxai' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __getattr__("__all__")
