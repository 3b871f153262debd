"""The config's own validators: paths, made absolute against the config's base directory.

Every check raises :func:`~medxai._validation.validation_error` with the message the
user reads; the caller's key is added in front when the problems are collected. The
scalar, list and optional-section checks are shared with the library's settings and
live in :mod:`medxai._validation`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationInfo

from medxai._validation import show_value, validation_error

__all__ = ["existing_path", "to_path"]


def _base_dir(info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def to_path(value: Any, info: ValidationInfo) -> Path:
    """A str/PathLike made absolute against the validation's base directory."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise validation_error(f"expected a path, got {show_value(value)}")
    path = Path(str(value).strip() if isinstance(value, str) else value).expanduser()
    if not path.is_absolute():
        path = _base_dir(info) / path
    return path.resolve()


def existing_path(value: Any, info: ValidationInfo, kind: Literal["file", "directory"]) -> Path:
    """:func:`to_path`, which must name an existing ``kind``."""
    path = to_path(value, info)
    if not path.exists():
        raise validation_error(f"{kind} not found: {path}")
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise validation_error(f"expected a {kind}, got a {'directory' if kind == 'file' else 'file'}: {path}")
    return path
