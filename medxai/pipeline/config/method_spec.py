"""One ``methods`` entry of a study config: a method name and its constructor's parameters.

Names and parameters are checked against the method registry given in the
validation context (``{"methods": {name: class}}``); the registry itself is
looked up lazily by ``schema.py``, so validating a config never imports TensorFlow.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from medxai.pipeline.config._errors import (
    Problems,
    _did_you_mean,
    _error,
    _errors,
    _show,
)
from medxai.pipeline.config._validators import _name

MethodRegistry = Callable[[], Mapping[str, Callable[..., Any]]]
"""Zero-argument callable returning ``{method name or alias (lower-case): class}``."""

DEFAULT_METHOD = "integrated_gradients"

# Constructor arguments of every method that a method entry may not set, and
# the config key that sets them instead.
RESERVED_METHOD_PARAMS = {
    "model": "model.path",
    "output": "model.output",
    "batch_size": "runtime.batch_size",
    "jit": "runtime.jit",
    "precision": "runtime.precision",
    "heatmap": "the heatmap section",
}


class MethodSpec(BaseModel):
    """One attribution method: its ``name`` and the keyword ``params`` for its constructor.

    In YAML an entry is ``{name: integrated_gradients, steps: 32}`` (or just the
    name as a string); every key but ``name`` goes into ``params``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, MethodSpec):
            return value
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, Mapping):
            if set(value) <= {"name", "params"} and isinstance(value.get("params"), Mapping):
                return {**value, "params": dict(value["params"])}
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise _error(f"parameter names must be strings, got {_show(bad)}")
            rest = dict(value)
            shaped: dict[str, Any] = {"params": rest}
            if "name" in rest:
                shaped["name"] = rest.pop("name")
            return shaped
        raise _error(f"expected a method name or a mapping {{name: .., <parameters>}}, got {_show(value)}")

    @field_validator("name", mode="before")
    @classmethod
    def _check_name(cls, value: Any) -> str:
        return _name(value).lower().replace("-", "_").replace(" ", "_")

    @model_validator(mode="after")
    def _check_against_registry(self, info: ValidationInfo) -> MethodSpec:
        registry = (info.context or {}).get("methods")
        if registry is None:
            return self
        if self.name not in registry:
            known = sorted(registry)
            hint = _did_you_mean(self.name, known, inside=True)
            raise _error("", (("name",), f"unknown method '{self.name}' (known: {', '.join(known)}{hint})"))
        accepted, required = _method_parameters(registry[self.name])
        problems: Problems = []
        for key in self.params:
            if key in RESERVED_METHOD_PARAMS or key == "name":
                problems.append(
                    ((key,), f"not allowed in a method entry; it is set by {RESERVED_METHOD_PARAMS[key]}")
                )
            elif key not in accepted:
                known = f"known: {', '.join(accepted)}" if accepted else "it takes no parameters"
                hint = _did_you_mean(key, accepted, inside=True)
                problems.append(((key,), f"unknown parameter for {self.name} ({known}{hint})"))
        problems.extend(
            ((), f"missing required parameter '{key}' for {self.name}")
            for key in required
            if key not in self.params
        )
        if problems:
            raise _errors(problems)
        return self

    @model_serializer(mode="wrap")
    def _flatten(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        data = handler(self)
        return {"name": data["name"], **data["params"]}


def _method_parameters(cls: Callable[..., Any]) -> tuple[list[str], list[str]]:
    """The keyword parameters a method entry may set, and those among them with no default."""
    init = cls.__init__ if isinstance(cls, type) else cls
    try:
        signature = inspect.signature(init)
    except (TypeError, ValueError):  # builtins without a signature: accept nothing
        return [], []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [
        p
        for p in signature.parameters.values()
        if p.kind in kinds and p.name != "self" and p.name not in RESERVED_METHOD_PARAMS
    ]
    return [p.name for p in params], [p.name for p in params if p.default is inspect.Parameter.empty]
