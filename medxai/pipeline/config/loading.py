"""Reading a study file: YAML (duplicate keys are errors), ``--set`` overrides, then validation."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from medxai.errors import ConfigError
from medxai.pipeline.config.method_spec import MethodRegistry
from medxai.pipeline.config.overrides import _apply
from medxai.pipeline.config.schema import (
    _REQUIRED_SECTIONS,
    _SECTIONS,
    Config,
    _not_sections,
    _validate,
)


class _Loader(yaml.SafeLoader):
    """A safe loader that records duplicate keys instead of silently keeping the last."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # unhashable key; let the constructor complain
            continue
        line = key_node.start_mark.line + 1
        if first is not None:
            loader.duplicates.append(f"line {line}: duplicate key '{key}' (first given on line {first})")
        else:
            seen[key] = line
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", path) from None
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{where}YAML syntax error: {what}", path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error: {exc}", path) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(loader.duplicates, path)
    return data


def load_config(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    method_registry: MethodRegistry | None = None,
) -> Config:
    """Read, override and validate a YAML config.

    Relative paths in the file resolve against the file's folder; relative
    paths in ``overrides`` resolve against the current directory.

    Args:
        path: The YAML file.
        overrides: ``--set`` strings such as ``"runtime.batch_size=8"`` or ``"methods.0.steps=16"``.
        method_registry: Callable returning ``{method name: class}``; None tries
            ``medxai.methods.registry.available_methods`` and skips method checks if it is missing.

    Raises:
        ConfigError: listing every problem (bad overrides and invalid settings together).
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    path = Path(path).expanduser().resolve()
    data = _read_yaml(path)
    if data is None:
        raise ConfigError(
            f"the file is empty; expected the sections {', '.join(_SECTIONS)} "
            f"({', '.join(_REQUIRED_SECTIONS)} are required)",
            path,
        )
    if not isinstance(data, Mapping):
        raise ConfigError(_not_sections(data), path)
    data, problems = _apply(data, overrides, Path.cwd())
    config, more = _validate(data, base_dir=path.parent, method_registry=method_registry)
    problems += more
    if problems:
        raise ConfigError(problems, path)
    assert config is not None
    return config
