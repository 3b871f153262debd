"""Attribution methods: one module per method, found by the registry, all on the shared engines.

``from medxai.methods import IntegratedGradients`` works for every built-in method: the
classes are looked up in :func:`medxai.methods.registry.builtin_methods` on first use, so no
list of them is kept here.
"""

from typing import Any

from medxai.methods.base import ExplainingMethod as ExplainingMethod
from medxai.methods.base import Explanation as Explanation
from medxai.methods.base import PathMethod as PathMethod
from medxai.methods.base import XAIMethod as XAIMethod

_BASE = ["ExplainingMethod", "Explanation", "PathMethod", "XAIMethod"]


def method_classes() -> dict[str, type[XAIMethod]]:
    """Every built-in method class by its Python name (``IntegratedGradients``, ``GradCAM``, ...)."""
    from medxai.methods.registry import builtin_methods

    return {cls.__name__: cls for cls in builtin_methods()}


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted([*_BASE, *method_classes()])
    classes = method_classes()
    if name in classes:
        globals()[name] = classes[name]
        return classes[name]
    raise AttributeError(f"module 'medxai.methods' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *method_classes()])
