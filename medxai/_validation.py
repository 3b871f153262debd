"""Validation shared by the library's settings and the study config: one rule, one message.

The library's settings (:class:`medxai.heatmap.HeatmapPolicy`, :class:`medxai.preprocess.PreprocessSpec`,
:class:`medxai.viz.render.OutlineSpec`, ...) are pydantic dataclasses, and the study config
(:mod:`medxai.pipeline.config`) uses them as its sections, so each setting has one schema.

A check raises :func:`validation_error` with its one message ("expected a positive integer,
got -3"). The config puts the dotted key in front ("preprocess.channels: expected ..."); a library
setting built directly (:func:`library_errors`) raises a plain ``ValueError`` with the field's name
in front ("channels: expected ..."): the same words either way. :func:`_collect` turns a pydantic
``ValidationError`` into ``(location, message)`` pairs and :func:`problem_lines` into the lines
of a :class:`~medxai.errors.ConfigError`.

This module imports nothing from ``medxai.pipeline`` (imports point down, never up).
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar, get_args

import numpy as np
from pydantic import BaseModel, BeforeValidator, TypeAdapter, ValidationError, ValidationInfo
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic_core import PydanticCustomError

Problems = list[tuple[tuple[str | int, ...], str]]
_T = TypeVar("_T")
"""``(location relative to the value validated, message)`` pairs."""

_ERROR_TYPE = "medxai"


def validation_error(message: str, *problems: tuple[tuple[str | int, ...], str]) -> PydanticCustomError:
    """A pydantic error carrying our own message(s); sub-keys extend the error's location."""
    items = list(problems) if problems else [((), message)]
    context: dict[str, Any] = {"reason": "; ".join(m for _, m in items), "problems": items}
    return PydanticCustomError(_ERROR_TYPE, "{reason}", context)


def validation_errors(problems: Problems) -> PydanticCustomError:
    """One pydantic error carrying several ``(sub-key, message)`` problems (see :func:`validation_error`)."""
    return validation_error("", *problems)


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame (pandas is not imported: a frame's module already is)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def describe_frame(frame: Any, limit: int = 200) -> str:
    """A DataFrame in words, never its cells: ``a DataFrame of 3 rows x 2 columns ('path', 'label')``."""
    rows, cols = frame.shape
    names = "(" + _joined((repr(str(c)) for c in frame.columns), limit) + ")"
    return f"a DataFrame of {rows} rows x {cols} columns {names}"


def show_value(value: Any, limit: int = 60) -> str:
    """Render a value the way a YAML user wrote it (for error messages), cut to ``limit`` characters.

    Containers are rendered only until the text passes ``limit``, so a huge value (a YAML
    alias bomb expands to millions of leaves) costs no more than a small one.
    """
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value[: limit + 1])  # longer than limit when cut: the cut below shows it
    elif isinstance(value, Mapping):
        text = "a mapping {" + _joined((f"{k}: {show_value(v, 20)}" for k, v in value.items()), limit) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + _joined((show_value(v, 20) for v in value), limit) + "]"
    elif is_frame(value):  # its shape and columns, in full: never its cells
        return describe_frame(value)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _joined(parts: Iterable[str], limit: int) -> str:
    """``", ".join(parts)``, taking parts only until the text is longer than ``limit``."""
    taken: list[str] = []
    size = 0
    for part in parts:
        taken.append(part)
        size += len(part) + 2
        if size > limit:
            break
    return ", ".join(taken)


def dotted_key(loc: Sequence[str | int]) -> str:
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


def did_you_mean(word: Any, choices: Sequence[str], *, prefix: str = "", inside: bool = False) -> str:
    """`` (did you mean '<prefix><guess>'?)``, or ``; did you mean ..?`` to go ``inside`` brackets; "" if no guess."""
    guess = _suggest(word, choices)
    if guess is None:
        return ""
    return f"; did you mean '{prefix}{guess}'?" if inside else f" (did you mean '{prefix}{guess}'?)"


def unknown_key_message(key: Any, known: Sequence[str], prefix: str = "") -> str:
    """``unknown key (did you mean '<prefix><guess>'?)``, else the known keys (each with ``prefix``)."""
    hint = did_you_mean(key, known, prefix=prefix)
    return f"unknown key{hint}" if hint else f"unknown key (known keys: {', '.join(prefix + k for k in known)})"


def _is_schema(annotation: Any) -> bool:
    """A pydantic model, a pydantic dataclass or a named tuple: something with named keys."""
    return isinstance(annotation, type) and (
        issubclass(annotation, BaseModel)
        or is_pydantic_dataclass(annotation)
        or (issubclass(annotation, tuple) and hasattr(annotation, "_fields"))
    )


def schema_fields(schema: type) -> dict[str, Any]:
    """``{key: annotation}`` of a :func:`_is_schema` type, in declaration order."""
    if issubclass(schema, BaseModel):
        return {name: f.annotation for name, f in schema.model_fields.items()}
    if is_pydantic_dataclass(schema):
        return {name: f.annotation for name, f in schema.__pydantic_fields__.items()}
    fields: tuple[str, ...] = getattr(schema, "_fields")  # a named tuple's; `type` does not declare it
    return {name: Any for name in fields}


def find_model(annotation: Any) -> type | None:
    """The schema (model, pydantic dataclass, named tuple) inside a field annotation
    (``X``, ``X | None``, ``list[X]``...), if any."""
    if _is_schema(annotation):
        return annotation
    for arg in get_args(annotation):
        found = find_model(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type, loc: Sequence[str | int]) -> type | None:
    """The schema that validates the mapping at ``loc`` (list indices skipped)."""
    model: type | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        fields = schema_fields(model) if model is not None else {}
        if part not in fields:
            return None
        model = find_model(fields[part])
    return model


def _collect(exc: ValidationError, root: type, sections: Collection[str] = ()) -> Problems:
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
        if kind in ("missing", "missing_argument"):
            msg = "required section missing" if len(loc) == 1 and loc[0] in sections else "required key missing"
        elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
            model = _model_at(root, loc[:-1])
            msg = unknown_key_message(loc[-1], list(schema_fields(model)) if model is not None else [])
        elif kind in ("model_type", "model_attributes_type", "dict_type", "dataclass_type", "dataclass_args_type"):
            msg = f"expected a mapping, got {show_value(err.get('input'))}"
        else:
            text = err["msg"]
            msg = f"{text[:1].lower()}{text[1:]}, got {show_value(err.get('input'))}"
        out.append((loc, msg))
    return out


def problem_lines(exc: ValidationError, root: type, sections: Collection[str] = ()) -> list[str]:
    """The ``"dotted.key: message"`` lines of a :class:`~medxai.errors.ConfigError`."""
    return [f"{dotted_key(loc) or '<top level>'}: {msg}" for loc, msg in _collect(exc, root, sections)]


# ------------------------------------------------------------------------- scalars


def is_int(value: Any) -> bool:
    """An integer (a NumPy one too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number (int, float or a NumPy one), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def int_where(expected: str, ok: Callable[[Any], bool]) -> Callable[[Any], int]:
    """A validator accepting an integer (not a bool) for which ``ok`` holds."""

    def check(value: Any) -> int:
        if not is_int(value) or not ok(value):
            raise validation_error(f"expected {expected}, got {show_value(value)}")
        return int(value)

    return check


def number_where(expected: str, ok: Callable[[Any], bool] = lambda v: True) -> Callable[[Any], float]:
    """A validator accepting a finite real number (not a bool) for which ``ok`` holds."""

    def check(value: Any) -> float:
        if not is_number(value) or not ok(value) or not math.isfinite(value):
            raise validation_error(f"expected {expected}, got {show_value(value)}")
        return float(value)

    return check


def int_tuple(expected: str, lengths: Collection[int], ok: Callable[[Any], bool]) -> Callable[[Any], tuple[int, ...]]:
    """A validator accepting a list of ``lengths`` integers, each one for which ``ok`` holds."""

    def check(value: Any) -> tuple[int, ...]:
        if (
            not isinstance(value, (list, tuple))
            or len(value) not in lengths
            or not all(is_int(v) and ok(v) for v in value)
        ):
            raise validation_error(f"expected {expected}, got {show_value(value)}")
        return tuple(int(v) for v in value)

    return check


positive_int = int_where("a positive integer", lambda v: v > 0)
non_negative_int = int_where("a non-negative integer", lambda v: v >= 0)
any_number = number_where("a number")
positive_number = number_where("a positive number", lambda v: v > 0)
_unit_interval = number_where("a number between 0 and 1", lambda v: 0 <= v <= 1)


def _percent(value: Any) -> float:
    number = any_number(value)
    if not 0 < number <= 100:
        raise validation_error(f"expected a percentage in (0, 100], got {show_value(value)}")
    return number


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise validation_error(f"expected true or false, got {show_value(value)}")
    return value


def non_empty_name(value: Any) -> str:
    """``value`` as a name: a string that is not blank, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise validation_error(f"expected a non-empty string, got {show_value(value)}")
    return value.strip()


def _optional_name(value: Any) -> str | None:
    return None if value is None else non_empty_name(value)


def is_word(value: Any, word: str) -> bool:
    """``value`` is the string ``word`` (any case, surrounding blanks ignored)."""
    return isinstance(value, str) and value.strip().lower() == word


def one_of(*options: str, none: bool = False) -> Callable[[Any], str | None]:
    """A validator accepting one of ``options`` (case-insensitive), and None (YAML null) when ``none``."""

    def check(value: Any) -> str | None:
        if none and value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in options:
            return value.strip().lower()
        message = f"expected one of {', '.join(options)}, got {show_value(value)}"
        raise validation_error(message + did_you_mean(value.lower() if isinstance(value, str) else value, options))

    return check


def number_or_numbers(value: Any, check: Callable[[Any], float]) -> float | tuple[float, ...]:
    """A number, or a non-empty list of numbers (per channel), each checked by ``check``."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise validation_error("expected a number or a non-empty list of numbers, got []")
        out: list[float] = []
        problems: Problems = []
        for i, item in enumerate(value):
            try:
                out.append(check(item))
            except PydanticCustomError as exc:
                if exc.context is None:  # not one of ours (they all carry "problems")
                    raise
                problems.extend(((i, *sub), msg) for sub, msg in exc.context["problems"])
        if problems:
            raise validation_errors(problems)
        return tuple(out)
    return check(value)


PositiveInt = Annotated[int, BeforeValidator(positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(non_negative_int)]
StrictBool = Annotated[bool, BeforeValidator(_bool)]
Name = Annotated[str, BeforeValidator(non_empty_name)]
OptionalName = Annotated[str | None, BeforeValidator(_optional_name)]
Number = Annotated[float, BeforeValidator(any_number)]
PositiveNumber = Annotated[float, BeforeValidator(positive_number)]
Percent = Annotated[float, BeforeValidator(_percent)]
UnitInterval = Annotated[float, BeforeValidator(_unit_interval)]


# -------------------------------------------------------------------- sub-sections


def sub_validate(model: type, value: Any, info: ValidationInfo) -> Any:
    """Validate ``value`` as ``model`` (a model or pydantic dataclass), re-raising problems with keys
    relative to the field."""
    try:
        if issubclass(model, BaseModel):
            return model.model_validate(value, context=info.context)
        return TypeAdapter(model).validate_python(value, context=info.context)
    except ValidationError as exc:
        raise validation_errors(_collect(exc, model)) from None


def null_is_empty(value: Any) -> Any:
    """A section given as null (every key commented out) means its defaults."""
    return {} if value is None else value


def optional_section(model: type, expected: str, *, switch: bool, none_word: bool = True) -> Callable[[Any], Any]:
    """A before-validator for a section that may be off (None).

    Off: null, and the string 'none' if ``none_word``; with ``switch`` also false,
    and true means the section with every default. Anything else must be a
    mapping (or a ``model``); else the error says "expected <expected>".
    """

    def check(value: Any) -> Any:
        if value is None or (none_word and is_word(value, "none")) or (switch and value is False):
            return None
        if switch and value is True:
            return {}
        if not isinstance(value, (Mapping, model)):
            raise validation_error(f"expected {expected}, got {show_value(value)}")
        return value

    return check


# ------------------------------------------------------------ library construction


def library_errors(cls: type[_T]) -> type[_T]:
    """Class decorator for a library setting (a pydantic dataclass): direct construction raises
    ``ValueError`` (``TypeError`` for an unknown or missing argument, as a plain dataclass does),
    not pydantic's ``ValidationError``.

    The ``ValueError`` reads ``"<field>: <message>"`` for each problem, ``"; "``-joined: the
    field's name (``size``, ``clip.low``) and the rule's one message, the words a config shows
    after its dotted key (``preprocess.size: ...``). A check of several fields has no name in front.
    """
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if any(
                e["type"] in ("unexpected_keyword_argument", "unexpected_positional_argument", "missing_argument")
                and len(e["loc"]) <= 1
                for e in errors
            ):
                raise TypeError(f"{cls.__name__}: {exc}") from None
            raise ValueError(
                "; ".join(f"{dotted_key(loc) + ': ' if loc else ''}{msg}" for loc, msg in _collect(exc, cls))
            ) from None

    setattr(cls, "__init__", __init__)  # mypy forbids assigning to a method
    return cls


class SpecMixin:
    """What the library's settings (pydantic dataclasses) share with the config's pydantic models."""

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """The fields as a dict (``mode="json"``: JSON-able), as ``BaseModel.model_dump`` gives them."""
        return TypeAdapter(type(self)).dump_python(self, **kwargs)


def per_axis_ints(name: str, value: Any, rank: int | None) -> tuple[int, ...] | None:
    """``value`` as one positive int per spatial axis (an int is repeated); None stays None.

    Example:
        >>> per_axis_ints("window", 4, 2), per_axis_ints("window", [2, 3], 2)
        ((4, 4), (2, 3))
    """
    if value is None:
        return None
    values = [value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        values = list(values)
    except TypeError:
        values = [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive integer or one positive integer per spatial axis, got {value!r}")
    if rank is not None and len(values) not in (1, rank):
        raise ValueError(f"{name} must be one integer or {rank} (one per spatial axis), got {value!r}")
    if rank is not None and len(values) == 1:
        values = values * rank
    return tuple(int(v) for v in values)
