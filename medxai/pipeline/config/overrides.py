"""``--set KEY=VALUE`` overrides, applied to the raw config mapping before validation.

Keys are checked against the schema (not against the file), so a key the file
leaves out can still be set; a method entry takes any parameter (its class
checks them when the config is validated).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from medxai._validation import dotted_key, find_model, schema_fields, unknown_key_message
from medxai.errors import ConfigError
from medxai.pipeline.config.method_spec import MethodSpec
from medxai.pipeline.config.schema import Config

# Override values for these keys are paths: relative ones resolve against the current directory.
_PATH_KEYS = {("model", "path"), ("data", "manifest"), ("data", "root"), ("output", "dir")}


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """Parse one ``--set`` override, ``"KEY=VALUE"``.

    ``KEY`` is dotted; list indices are numbers (``methods.0.steps`` or
    ``methods[0].steps``). ``VALUE`` is read as a YAML scalar or flow
    collection, so ``8`` is an int, ``true`` a bool and ``[0, 2]`` a list.

    Returns:
        The key as a list of segments (str, or int for list indices) and the value.

    Raises:
        ConfigError: if the text is not ``KEY=VALUE`` or the value is not valid YAML.
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. runtime.batch_size=8")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.replace("[", ".").replace("]", "").split(".")
    if not key or any(not part.strip() for part in parts):
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted KEY, e.g. runtime.batch_size=8")
    path: list[str | int] = [int(p) if p.strip().isdigit() else p.strip() for p in parts]
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{key}: cannot read override value {raw!r} as YAML ({reason})") from None
    return path, value


class _AnyKeys:
    """Override-walk marker: a mapping that takes any key (a method entry's parameters)."""


def _default_list(model: type[BaseModel], key: str) -> list[Any] | None:
    field = model.model_fields[key]
    if field.is_required():
        return None
    default = field.get_default(call_default_factory=True)
    if not isinstance(default, (list, tuple)):
        return None
    return [d.model_dump() if isinstance(d, BaseModel) else d for d in default]


def _set_path(data: dict[str, Any], path: Sequence[str | int], value: Any) -> str | None:
    """Set ``value`` at ``path`` in ``data`` (in place); return a problem or None."""
    node: type[BaseModel | _AnyKeys] | None = Config
    container: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        here = dotted_key(path[: i + 1])
        parent = dotted_key(path[:i])
        if isinstance(part, int):
            if not isinstance(container, list):
                return f"{here}: {parent} is not a list"
            if not 0 <= part < len(container):
                return f"{here}: index out of range ({parent} has {len(container)} entries)"
            if last:
                container[part] = value
                return None
            child = container[part]
            child_node: Any = node
            if isinstance(child, str) and node is _AnyKeys:
                child = {"name": child}  # bare method name -> entry
            elif not isinstance(child, dict):  # an entry that is a value cannot take keys
                return f"{dotted_key(path[: i + 2])}: unknown key ({here} is a single value)"
            container[part] = child
        else:
            if node is None:
                return f"{here}: unknown key ({parent} is a single value)"
            if node is _AnyKeys:
                child_node = _AnyKeys
            else:
                fields = schema_fields(node)
                if part not in fields:
                    prefix = f"{parent}." if parent else ""
                    return f"{here}: {unknown_key_message(part, list(fields), prefix)}"
                child_node = find_model(fields[part])
                if child_node is MethodSpec:
                    child_node = _AnyKeys
            if last:
                container[part] = value
                return None
            child = container.get(part)
            if isinstance(path[i + 1], int):
                if child is None and isinstance(node, type) and issubclass(node, BaseModel):
                    child = _default_list(node, part)
                if isinstance(child, (str, dict)) and child_node is _AnyKeys and part == "methods":
                    child = [child]
                if not isinstance(child, list):
                    return f"{here}: not a list, cannot index it with {path[i + 1]}"
            elif not isinstance(child, dict):
                if child_node is None and node is not _AnyKeys:
                    return f"{dotted_key(path[: i + 2])}: unknown key ({here} is a single value)"
                child = {}
            container[part] = child
        container, node = child, child_node
    return None  # pragma: no cover - the loop always returns on the last part


def overrides_and_problems(
    data: Mapping[str, Any], overrides: Sequence[str], base_dir: Path | None
) -> tuple[dict[str, Any], list[str]]:
    """:func:`apply_overrides` that returns the problems (``"key: message"`` lines) instead of raising them.

    Returns:
        A copy of ``data`` with every good override applied, and the problems of the bad ones.
    """
    result = copy.deepcopy(dict(data))
    problems: list[str] = []
    for text in overrides:
        try:
            path, value = parse_override(text)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if base_dir is not None and tuple(path) in _PATH_KEYS and isinstance(value, str) and value.strip():
            candidate = Path(value.strip()).expanduser()
            value = str(candidate if candidate.is_absolute() else base_dir / candidate)
        problem = _set_path(result, path, value)
        if problem:
            problems.append(problem)
    return result, problems


def apply_overrides(
    data: Mapping[str, Any],
    overrides: Sequence[str],
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Return a copy of ``data`` with ``--set`` style overrides applied.

    Keys are checked against the schema (not against ``data``), so a key left
    out of the file can still be overridden; list indices must exist
    (``methods.0`` indexes the default method list when ``methods`` is absent).

    Args:
        data: The config mapping (as read from YAML); not modified.
        overrides: Strings like ``"runtime.batch_size=8"`` or ``"targets=[0,2]"``.
        base_dir: If given, relative values for path keys (model.path, data.manifest,
            data.root, output.dir) are made absolute against it.

    Raises:
        ConfigError: listing every bad override (unknown keys come with a suggestion).
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    result, problems = overrides_and_problems(data, overrides, Path(base_dir) if base_dir is not None else None)
    if problems:
        raise ConfigError(problems)
    return result
