"""The method registry: names and aliases to classes, plus plug-ins.

Third-party packages add methods through the entry-point group
``medxai.methods``: in their ``pyproject.toml``::

    [project.entry-points."medxai.methods"]
    my_method = "my_package.module:MyMethod"

``MyMethod`` must subclass :class:`medxai.XAIMethod`; it is then available as
``my_method`` (and its ``aliases``) in Python and in YAML configs.
"""

from __future__ import annotations

import inspect
import pkgutil
import warnings
from collections.abc import Mapping, Sequence
from importlib import import_module, metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medxai.errors import SettingError
from medxai.methods._engine.uncertainty import Uncertainty
from medxai.methods.base import UNCERTAINTY, XAIMethod, normalize_name

if TYPE_CHECKING:
    import keras

ENTRY_POINT_GROUP = "medxai.methods"
#: Modules of ``medxai.methods`` that hold no method of their own.
_NOT_METHOD_MODULES = ("base", "registry")


def builtin_methods() -> tuple[type[XAIMethod], ...]:
    """The methods medxai ships: every class with a ``name`` defined in a public module of ``medxai.methods``.

    Adding a method is one module (``medxai/methods/<name>.py``): nothing else lists it. The
    modules import no TensorFlow, so this is cheap.
    """
    global _builtin
    if _builtin is None:
        found: list[type[XAIMethod]] = []
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):  # this module's own package
            if info.name.startswith("_") or info.name in _NOT_METHOD_MODULES:
                continue
            module = import_module(f"{__package__}.{info.name}")
            found.extend(
                value
                for value in vars(module).values()
                if inspect.isclass(value)
                and issubclass(value, XAIMethod)
                and value.__module__ == module.__name__
                and value.__dict__.get("name")
            )
        _builtin = tuple(found)
    return _builtin


_builtin: tuple[type[XAIMethod], ...] | None = None
_registered: dict[str, type[XAIMethod]] = {}
_plugins: dict[str, type[XAIMethod]] | None = None


def _names_of(cls: type[XAIMethod], name: str | None = None) -> list[str]:
    return [normalize_name(n) for n in (name or cls.name, *cls.aliases) if n]


def register_method(cls: type[XAIMethod], name: str | None = None) -> type[XAIMethod]:
    """Register a method class in this process under its ``name`` (or ``name``) and ``aliases``.

    Usable as a decorator. Raises ValueError if a name is taken by another class.
    """
    if not (inspect.isclass(cls) and issubclass(cls, XAIMethod)):
        raise ValueError(f"{cls!r} is not a subclass of medxai.XAIMethod")
    names = _names_of(cls, name)
    if not names:
        raise ValueError(f"{cls.__name__} needs a name")
    known = available_methods()
    for n in names:
        if n in known and known[n] is not cls:
            raise ValueError(f"method name {n!r} is already taken by {known[n].__name__}")
    for n in names:
        _registered[n] = cls
    return cls


def _load_plugins() -> dict[str, type[XAIMethod]]:
    plugins: dict[str, type[XAIMethod]] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except Exception as err:  # a broken plug-in must not break medxai
            warnings.warn(f"medxai plug-in {entry.name!r} ({entry.value}) failed to load: {err}", stacklevel=2)
            continue
        if not (inspect.isclass(cls) and issubclass(cls, XAIMethod)):
            warnings.warn(f"medxai plug-in {entry.name!r} ({entry.value}) is not an XAIMethod subclass", stacklevel=2)
            continue
        for n in _names_of(cls, entry.name):
            plugins.setdefault(n, cls)
    return plugins


def refresh_plugins() -> None:
    """Forget the cached plug-ins, so the next lookup reads the entry points again."""
    global _plugins
    _plugins = None


def available_methods() -> dict[str, type[XAIMethod]]:
    """Every accepted name (canonical names and aliases, lower case) mapped to its class."""
    global _plugins
    if _plugins is None:
        _plugins = _load_plugins()
    methods: dict[str, type[XAIMethod]] = {}
    for cls in builtin_methods():
        for n in _names_of(cls):
            methods[n] = cls
    for source in (_plugins, _registered):
        for n, cls in source.items():
            methods.setdefault(n, cls)
    return methods


def canonical_methods() -> dict[str, type[XAIMethod]]:
    """One entry per method class, under its canonical (first) name."""
    result: dict[str, type[XAIMethod]] = {}
    for n, cls in available_methods().items():
        if cls not in result.values():
            result[n] = cls
    return result


def method_parameters(cls: type[XAIMethod]) -> dict[str, Any]:
    """The method's own keyword parameters and their defaults (base options excluded)."""
    params = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in ("self", "model") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        params[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return params


def resolve_method(name: str) -> type[XAIMethod]:
    """The class registered under ``name``; ValueError listing the known names otherwise."""
    methods = available_methods()
    key = normalize_name(name)
    if key not in methods:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(sorted(methods))})")
    return methods[key]


def get_method(name: str, model: keras.Model, **params: Any) -> XAIMethod:
    """Build a method by name: ``get_method("ig", model, steps=16)``."""
    return resolve_method(name)(model, **params)


def build_methods(
    specs: Sequence[tuple[str, str | None, Mapping[str, Any]]],
    model: Any,
    *,
    output: Any,
    batch_size: int,
    heatmap: Any,
    jit: Any,
    precision: Any,
    seed: int | None,
) -> list[XAIMethod]:
    """Methods built on ``model``, sharing one gradient engine (and its compiled traces).

    Args:
        specs: ``(registered name, instance name or None, parameters)`` per method; an instance
            name (None: the class's own name) is what the index, the folders and the report show.
        model: The Keras model.
        output: The explained output (a :class:`medxai.methods._engine.spec.OutputSpec`).
        batch_size: The methods' batch size.
        heatmap: The heatmap policy.
        jit: Whether the engine compiles with XLA.
        precision: The engine's precision.
        seed: Given to each method that takes a ``seed`` and was not given one, and to the
            stability noise of each method with ``uncertainty`` that sets no seed of its own.

    Returns:
        The methods, in the order of ``specs``; dropping them frees the model.

    Raises:
        SettingError: two entries would write under the same name (its ``key`` is ``methods[i]``).
        ValueError: a name is unknown, or a method does not take its parameters.
    """
    from medxai.methods._engine.engine import GradientEngine  # deferred: TensorFlow starts here

    engine = GradientEngine(model, output, jit, precision)
    methods: list[XAIMethod] = []
    seen: dict[str, int] = {}
    for position, (registered, instance, params) in enumerate(specs):
        cls = resolve_method(registered)
        name = instance or cls.name
        if name in seen:
            raise SettingError(
                f"methods[{position}]",
                f"{name} is configured twice (also methods[{seen[name]}]); "
                "one run writes one map per method: give each entry its own name "
                "({name: <instance>, method: <method>, ...})",
            )
        seen[name] = position
        params = dict(params)
        if "seed" in method_parameters(cls) and "seed" not in params:
            params["seed"] = seed
        if params.get(UNCERTAINTY) not in (None, False):  # the stability noise is seeded by the run's seed too
            params[UNCERTAINTY] = Uncertainty.of(params[UNCERTAINTY], seed=seed)
        method = cls(
            model,
            output=output,
            batch_size=batch_size,
            heatmap=heatmap,
            jit=jit,
            precision=precision,
            engine=engine,
            **params,
        )
        method.name = name
        methods.append(method)
    return methods
