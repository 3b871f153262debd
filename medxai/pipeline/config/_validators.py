"""Validators shared by the config sections: scalars, small lists, paths, optional sub-sections.

Every check raises :func:`~medxai.pipeline.config._errors._error` with the message
the user reads ("expected a positive integer, got -3"); the caller's key is
added in front when the problems are collected.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from medxai.pipeline.config._errors import (
    _collect,
    _did_you_mean,
    _error,
    _errors,
    _show,
)

# ------------------------------------------------------------------------- scalars


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _int_where(expected: str, ok: Callable[[Any], bool]) -> Callable[[Any], int]:
    """A validator accepting an integer (not a bool) for which ``ok`` holds."""

    def check(value: Any) -> int:
        if not _is_int(value) or not ok(value):
            raise _error(f"expected {expected}, got {_show(value)}")
        return int(value)

    return check


def _number_where(expected: str, ok: Callable[[Any], bool] = lambda v: True) -> Callable[[Any], float]:
    """A validator accepting a finite real number (not a bool) for which ``ok`` holds."""

    def check(value: Any) -> float:
        if not _is_number(value) or not ok(value) or not math.isfinite(value):
            raise _error(f"expected {expected}, got {_show(value)}")
        return float(value)

    return check


def _int_tuple(expected: str, lengths: Collection[int], ok: Callable[[Any], bool]) -> Callable[[Any], tuple[int, ...]]:
    """A validator accepting a list of ``lengths`` integers, each one for which ``ok`` holds."""

    def check(value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or len(value) not in lengths or not all(_is_int(v) and ok(v) for v in value):
            raise _error(f"expected {expected}, got {_show(value)}")
        return tuple(int(v) for v in value)

    return check


_positive_int = _int_where("a positive integer", lambda v: v > 0)
_non_negative_int = _int_where("a non-negative integer", lambda v: v >= 0)
_number = _number_where("a number")
_positive_number = _number_where("a positive number", lambda v: v > 0)
_unit_interval = _number_where("a number between 0 and 1", lambda v: 0 <= v <= 1)


def _percent(value: Any) -> float:
    number = _number(value)
    if not 0 < number <= 100:
        raise _error(f"expected a percentage in (0, 100], got {_show(value)}")
    return number


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _error(f"expected true or false, got {_show(value)}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(f"expected a non-empty string, got {_show(value)}")
    return value.strip()


def _optional_name(value: Any) -> str | None:
    return None if value is None else _name(value)


def _is_word(value: Any, word: str) -> bool:
    """``value`` is the string ``word`` (any case, surrounding blanks ignored)."""
    return isinstance(value, str) and value.strip().lower() == word


def _choice(*options: str) -> Callable[[Any], str]:
    """A validator accepting one of ``options`` (case-insensitive)."""

    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in options:
            return value.strip().lower()
        message = f"expected one of {', '.join(options)}, got {_show(value)}"
        raise _error(message + _did_you_mean(value.lower() if isinstance(value, str) else value, options))

    return check


def _numbers(value: Any, check: Callable[[Any], float]) -> float | tuple[float, ...]:
    """A number, or a non-empty list of numbers (per channel), each checked by ``check``."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise _error("expected a number or a non-empty list of numbers, got []")
        out, problems = [], []
        for i, item in enumerate(value):
            try:
                out.append(check(item))
            except PydanticCustomError as exc:
                problems.extend(((i, *sub), msg) for sub, msg in exc.context["problems"])
        if problems:
            raise _errors(problems)
        return tuple(out)
    return check(value)


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]
StrictBool = Annotated[bool, BeforeValidator(_bool)]
Name = Annotated[str, BeforeValidator(_name)]
OptionalName = Annotated[str | None, BeforeValidator(_optional_name)]
Number = Annotated[float, BeforeValidator(_number)]
PositiveNumber = Annotated[float, BeforeValidator(_positive_number)]
Percent = Annotated[float, BeforeValidator(_percent)]
UnitInterval = Annotated[float, BeforeValidator(_unit_interval)]


# --------------------------------------------------------------------------- paths


def _base_dir(info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def _to_path(value: Any, info: ValidationInfo) -> Path:
    """A str/PathLike made absolute against the validation's base directory."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise _error(f"expected a path, got {_show(value)}")
    path = Path(str(value).strip() if isinstance(value, str) else value).expanduser()
    if not path.is_absolute():
        path = _base_dir(info) / path
    return path.resolve()


def _existing(value: Any, info: ValidationInfo, kind: Literal["file", "directory"]) -> Path:
    """:func:`_to_path`, which must name an existing ``kind``."""
    path = _to_path(value, info)
    if not path.exists():
        raise _error(f"{kind} not found: {path}")
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise _error(f"expected a {kind}, got a {'directory' if kind == 'file' else 'file'}: {path}")
    return path


# -------------------------------------------------------------------- sub-sections


def _sub_validate(model: type[BaseModel], value: Any, info: ValidationInfo) -> BaseModel:
    """Validate ``value`` as ``model``, re-raising problems with keys relative to the field."""
    try:
        return model.model_validate(value, context=info.context)
    except ValidationError as exc:
        raise _errors(_collect(exc, model)) from None


def _null_is_empty(value: Any) -> Any:
    """A section given as null (every key commented out) means its defaults."""
    return {} if value is None else value


def _optional_section(
    model: type[BaseModel], expected: str, *, switch: bool, none_word: bool = True
) -> Callable[[Any], Any]:
    """A before-validator for a section that may be off (None).

    Off: null, and the string 'none' if ``none_word``; with ``switch`` also false,
    and true means the section with every default. Anything else must be a
    mapping (or a ``model``); else the error says "expected <expected>".
    """

    def check(value: Any) -> Any:
        if value is None or (none_word and _is_word(value, "none")) or (switch and value is False):
            return None
        if switch and value is True:
            return {}
        if not isinstance(value, (Mapping, model)):
            raise _error(f"expected {expected}, got {_show(value)}")
        return value

    return check
