"""Validators of the config sections: the shared checks (from :mod:`medxai._validation`) and paths.

Every check raises :func:`~medxai._validation._error` with the message
the user reads ("expected a positive integer, got -3"); the caller's key is
added in front when the problems are collected. The scalar, list and
optional-section checks are shared with the library's settings and live in
:mod:`medxai._validation`; only the path checks, which need the config's base
directory, are the config's own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationInfo

from medxai._validation import (
    Name,
    NonNegativeInt,
    Number,
    OptionalName,
    Percent,
    PositiveInt,
    PositiveNumber,
    StrictBool,
    UnitInterval,
    _bool,
    _choice,
    _error,
    _int_tuple,
    _int_where,
    _is_int,
    _is_number,
    _is_word,
    _name,
    _non_negative_int,
    _null_is_empty,
    _number,
    _number_where,
    _numbers,
    _optional_name,
    _optional_section,
    _percent,
    _positive_int,
    _positive_number,
    _show,
    _sub_validate,
    _unit_interval,
)

__all__ = [
    "Name",
    "NonNegativeInt",
    "Number",
    "OptionalName",
    "Percent",
    "PositiveInt",
    "PositiveNumber",
    "StrictBool",
    "UnitInterval",
    "_bool",
    "_choice",
    "_existing",
    "_int_tuple",
    "_int_where",
    "_is_int",
    "_is_number",
    "_is_word",
    "_name",
    "_non_negative_int",
    "_null_is_empty",
    "_number",
    "_number_where",
    "_numbers",
    "_optional_name",
    "_optional_section",
    "_percent",
    "_positive_int",
    "_positive_number",
    "_sub_validate",
    "_to_path",
    "_unit_interval",
]

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
