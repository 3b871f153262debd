"""Reading a study file: YAML (duplicate keys are errors) or a mapping, ``--set`` overrides, then validation."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from medxai.errors import ConfigError
from medxai.pipeline.config.method_spec import MethodRegistry
from medxai.pipeline.config.overrides import overrides_and_problems
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

#: The most values (mappings, lists and scalars) a config may hold once its YAML aliases are
#: expanded. A real config holds a few hundred; nested aliases ("billion laughs") hold millions.
MAX_CONFIG_VALUES = 100_000


def _expanded_size(data: Any, limit: int = MAX_CONFIG_VALUES) -> int:
    """The number of values in ``data`` with every shared (aliased) part counted each time it is used.

    Counts each distinct container once (memoised), so a bomb costs no more than its YAML text;
    stops counting past ``limit`` and returns ``limit + 1`` then, and for a recursive alias.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(item: Any) -> int:
        if not isinstance(item, (dict, list)):
            return 1
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in open_:
            return limit + 1  # a recursive alias (`&a [*a]`): endless once expanded
        open_.add(key)
        total = 1
        for child in (x for pair in item.items() for x in pair) if isinstance(item, dict) else item:
            total += size(child)
            if total > limit:
                break
        open_.discard(key)
        sizes[key] = min(total, limit + 1)
        return sizes[key]

    return size(data)


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
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply to read (hundreds of levels)", path) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(loader.duplicates, path)
    try:
        too_big = _expanded_size(data) > MAX_CONFIG_VALUES
    except RecursionError:
        too_big = True
    if too_big:
        raise ConfigError(
            f"the config holds more than {MAX_CONFIG_VALUES:,} values once its YAML aliases (*name) are "
            "expanded; a config this large is refused (nested aliases expand exponentially)",
            path,
        )
    return data


def load_config(
    path: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    method_registry: MethodRegistry | None = None,
) -> Config:
    """Read, override and validate a config: a YAML file, or a mapping in the YAML's shape.

    Relative paths in the file resolve against the file's folder (a mapping's against the
    current directory); relative paths in ``overrides`` resolve against the current directory.

    Args:
        path: The YAML file, or the config as a mapping (``data.manifest`` may be a pandas DataFrame).
        overrides: ``--set`` strings such as ``"runtime.batch_size=8"`` or ``"methods.0.steps=16"``.
        method_registry: Callable returning ``{method name: class}``; None tries
            ``medxai.methods.registry.available_methods`` and skips method checks if it is missing.

    Raises:
        ConfigError: listing every problem (bad overrides and invalid settings together).
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(path, Mapping):
        # no overrides: no deep copy (a method parameter may be an object that cannot be copied)
        data, problems = overrides_and_problems(path, overrides, Path.cwd()) if overrides else (dict(path), [])
        config, more = _validate(data, base_dir=None, method_registry=method_registry)
        if problems or more:
            raise ConfigError(problems + more)
        assert config is not None
        return config
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
    data, problems = overrides_and_problems(data, overrides, Path.cwd())
    config, more = _validate(data, base_dir=path.parent, method_registry=method_registry)
    problems += more
    if problems:
        raise ConfigError(problems, path)
    assert config is not None
    return config
