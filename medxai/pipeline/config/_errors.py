"""Problems in our own words: pydantic errors -> ``"dotted.key: what is wrong"`` lines.

A validator raises :func:`_error` (one message) or :func:`_errors` (several, each
at a sub-key); :func:`_collect` turns a pydantic ``ValidationError`` into
``(location, message)`` pairs and :func:`_problem_lines` into the lines a
:class:`~medxai.errors.ConfigError` lists.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

Problems = list[tuple[tuple[str | int, ...], str]]
"""``(location relative to the value validated, message)`` pairs."""

_ERROR_TYPE = "medxai"


def _error(message: str, *problems: tuple[tuple[str | int, ...], str]) -> PydanticCustomError:
    """A pydantic error carrying our own message(s); sub-keys extend the error's location."""
    items = list(problems) if problems else [((), message)]
    return PydanticCustomError(
        _ERROR_TYPE, "{reason}", {"reason": "; ".join(m for _, m in items), "problems": items}
    )


def _errors(problems: Problems) -> PydanticCustomError:
    return _error("", *problems)


def _show(value: Any, limit: int = 60) -> str:
    """Render a value the way a YAML user wrote it (for error messages)."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, Mapping):
        text = "a mapping {" + ", ".join(f"{k}: {_show(v, 20)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v, 20) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(loc: Sequence[str | int]) -> str:
    """``("methods", 1, "name")`` -> ``"methods[1].name"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _suggest(word: Any, choices: Sequence[str]) -> str | None:
    if not isinstance(word, str):
        return None
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def _did_you_mean(word: Any, choices: Sequence[str], *, prefix: str = "", inside: bool = False) -> str:
    """`` (did you mean '<prefix><guess>'?)``, or ``; did you mean ..?`` to go ``inside`` brackets; "" if no guess."""
    guess = _suggest(word, choices)
    if guess is None:
        return ""
    return f"; did you mean '{prefix}{guess}'?" if inside else f" (did you mean '{prefix}{guess}'?)"


def _unknown_key_message(key: Any, known: Sequence[str], prefix: str = "") -> str:
    """``unknown key (did you mean '<prefix><guess>'?)``, else the known keys (each with ``prefix``)."""
    hint = _did_you_mean(key, known, prefix=prefix)
    return f"unknown key{hint}" if hint else f"unknown key (known keys: {', '.join(prefix + k for k in known)})"


def _find_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field annotation (``X``, ``X | None``, ``list[X]``...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (list indices skipped)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _find_model(model.model_fields[part].annotation)
    return model


def _collect(exc: ValidationError, root: type[BaseModel], sections: Collection[str] = ()) -> Problems:
    """Turn pydantic's errors into ``(location, message)`` pairs in our own words.

    Args:
        exc: The error raised validating ``root``.
        root: The model validated.
        sections: Top-level keys whose absence reads "required section missing" (not "key").
    """
    out: Problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == _ERROR_TYPE:
            out.extend((loc + tuple(sub), msg) for sub, msg in err["ctx"]["problems"])
            continue
        if kind == "missing":
            msg = "required section missing" if len(loc) == 1 and loc[0] in sections else "required key missing"
        elif kind == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            msg = _unknown_key_message(loc[-1], list(model.model_fields) if model is not None else [])
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"expected a mapping, got {_show(err.get('input'))}"
        else:
            text = err["msg"]
            msg = f"{text[:1].lower()}{text[1:]}, got {_show(err.get('input'))}"
        out.append((loc, msg))
    return out


def _problem_lines(exc: ValidationError, root: type[BaseModel], sections: Collection[str] = ()) -> list[str]:
    """The ``"dotted.key: message"`` lines of a :class:`~medxai.errors.ConfigError`."""
    return [f"{_dotted(loc) or '<top level>'}: {msg}" for loc, msg in _collect(exc, root, sections)]
