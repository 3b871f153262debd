"""One ``methods`` entry of a study config: a method name and its constructor's parameters.

Names and parameters are checked against the method registry given in the
validation context (``{"methods": {name: class}}``); the registry itself is
looked up lazily by ``schema.py``, so validating a config never imports TensorFlow.
"""

from __future__ import annotations

import inspect
import re
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

from medxai._validation import (
    Problems,
    did_you_mean,
    non_empty_name,
    show_value,
    validation_error,
    validation_errors,
)
from medxai.methods._engine.uncertainty import uncertainty_problems
from medxai.methods.base import UNCERTAINTY

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


#: A named instance's name becomes a folder and an index value: letters, digits and ``_`` only.
_INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class MethodSpec(BaseModel):
    """One attribution method: its ``name`` and the keyword ``params`` for its constructor.

    In YAML an entry is ``{name: integrated_gradients, steps: 32}`` (or just the
    name as a string); every key but ``name`` and ``method`` goes into ``params``.
    A *named instance* gives the registered method in ``method`` and its own name
    in ``name`` (``{name: ig_blur, method: integrated_gradients, baseline: blur}``),
    so one method can run twice with different settings; the instance name is
    what the index, the map folders and the report show.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    method: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def registered(self) -> str:
        """The registered method name (``method`` for a named instance, else ``name``)."""
        return self.method or self.name

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, MethodSpec):
            return value
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, Mapping):
            if set(value) <= {"name", "method", "params"} and isinstance(value.get("params"), Mapping):
                return {**value, "params": dict(value["params"])}
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise validation_error(f"parameter names must be strings, got {show_value(bad)}")
            rest = dict(value)
            shaped: dict[str, Any] = {"params": rest}
            for key in ("name", "method"):
                if key in rest:
                    shaped[key] = rest.pop(key)
            return shaped
        raise validation_error(
            f"expected a method name or a mapping {{name: .., <parameters>}}, got {show_value(value)}"
        )

    @field_validator("name", "method", mode="before")
    @classmethod
    def _check_name(cls, value: Any) -> str | None:
        if value is None:
            return None
        return non_empty_name(value).lower().replace("-", "_").replace(" ", "_")

    @model_validator(mode="after")
    def _check_instance_name(self) -> MethodSpec:
        if self.method is not None and not _INSTANCE_NAME.match(self.name):
            raise validation_error(
                "",
                (("name",), f"an instance name is a folder name: letters, digits and '_' only, got {self.name!r}"),
            )
        return self

    @model_validator(mode="after")
    def _check_against_registry(self, info: ValidationInfo) -> MethodSpec:
        registry = (info.context or {}).get("methods")
        if registry is None:
            return self
        if self.registered not in registry:
            known = sorted(registry)
            hint = did_you_mean(self.registered, known, inside=True)
            key = "method" if self.method is not None else "name"
            raise validation_error(
                "", ((key,), f"unknown method '{self.registered}' (known: {', '.join(known)}{hint})")
            )
        accepted, required = _method_parameters(registry[self.registered])
        problems: Problems = []
        for key in self.params:
            if key == UNCERTAINTY:  # every method's option (medxai.methods.base.XAIMethod)
                problems.extend(
                    (tuple(where.split(".")), message) for where, message in uncertainty_problems(self.params[key])
                )
                continue
            if key in RESERVED_METHOD_PARAMS:
                problems.append(((key,), f"not allowed in a method entry; it is set by {RESERVED_METHOD_PARAMS[key]}"))
            elif key not in accepted:
                listed = f"known: {', '.join(accepted)}" if accepted else "it takes no parameters"
                hint = did_you_mean(key, accepted, inside=True)
                problems.append(((key,), f"unknown parameter for {self.registered} ({listed}{hint})"))
        problems.extend(
            ((), f"missing required parameter '{key}' for {self.registered}")
            for key in required
            if key not in self.params
        )
        check = getattr(registry[self.registered], "check_params", None)
        if check is not None and not problems:
            own = {k: v for k, v in self.params.items() if k != UNCERTAINTY}
            problems.extend(((key,), message) for key, message in check(own))
        if problems:
            raise validation_errors(problems)
        return self

    @model_serializer(mode="wrap")
    def _flatten(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        data = handler(self)
        method = {} if data.get("method") is None else {"method": data["method"]}
        return {"name": data["name"], **method, **data["params"]}


def _method_parameters(cls: Callable[..., Any]) -> tuple[list[str], list[str]]:
    """The keyword parameters a method entry may set, and those among them with no default."""
    init = getattr(cls, "__init__") if isinstance(cls, type) else cls  # the class's own, not an instance's
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
