"""The config layer: YAML -> validated, typed settings.

A study is described by one YAML file (see ``configs/study.yaml`` for every key
with its default). :func:`load_config` reads it, applies ``--set`` style
overrides and validates it into a :class:`Config`; :meth:`Config.from_dict`
builds the same object from a Python mapping.

Validation reports every problem at once: a :class:`ConfigError` whose
``problems`` are strings that each start with the dotted key they concern, e.g.
``"runtime.batch_size: expected a positive integer, got -3"``.

After validation every path is an absolute :class:`pathlib.Path`. Relative
paths in a config file resolve against the config file's folder (or
``base_dir`` for :meth:`Config.from_dict`), never against the current
directory. Relative paths given as command-line overrides resolve against the
current directory, as a shell user expects.

This module deliberately does not import TensorFlow: method names and
parameters are checked against a registry callable (by default
``medxai.methods.registry.available_methods``, skipped if it cannot be imported).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from medxai.errors import ConfigError

__all__ = [
    "ClipSection",
    "Config",
    "ConfigError",
    "DaskSection",
    "DataSection",
    "HeatmapSection",
    "MethodSpec",
    "MethodRegistry",
    "ModelSection",
    "OutputSection",
    "PreprocessSection",
    "RuntimeSection",
    "EvaluateSection",
    "ScaleStats",
    "WindowSpec",
    "apply_overrides",
    "load_config",
    "parse_override",
]

MethodRegistry = Callable[[], Mapping[str, Callable[..., Any]]]
"""Zero-argument callable returning ``{method name or alias (lower-case): class}``."""

DEFAULT_METHOD = "integrated_gradients"
FORMATS = ("npy", "png", "overlay")
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

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

_PATH_KEYS = {("model", "path"), ("data", "manifest"), ("data", "root"), ("output", "dir")}
_ERROR_TYPE = "medxai"


# --------------------------------------------------------------------------- errors


def _error(message: str, *problems: tuple[tuple[str | int, ...], str]) -> PydanticCustomError:
    """A pydantic error carrying our own message(s); sub-keys extend the error's location."""
    items = list(problems) if problems else [((), message)]
    return PydanticCustomError(
        _ERROR_TYPE, "{reason}", {"reason": "; ".join(m for _, m in items), "problems": items}
    )


def _errors(problems: list[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
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


def _unknown_key_message(key: Any, known: Sequence[str]) -> str:
    guess = _suggest(key, known)
    if guess:
        return f"unknown key (did you mean '{guess}'?)"
    return f"unknown key (known keys: {', '.join(known)})"


# ----------------------------------------------------------------- scalar validators


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_int(value: Any) -> int:
    if not _is_int(value) or value <= 0:
        raise _error(f"expected a positive integer, got {_show(value)}")
    return int(value)


def _non_negative_int(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise _error(f"expected a non-negative integer, got {_show(value)}")
    return int(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _error(f"expected true or false, got {_show(value)}")
    return value


def _number(value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise _error(f"expected a number, got {_show(value)}")
    return float(value)


def _positive_number(value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise _error(f"expected a positive number, got {_show(value)}")
    return float(value)


def _percent(value: Any) -> float:
    number = _number(value)
    if not 0 < number <= 100:
        raise _error(f"expected a percentage in (0, 100], got {_show(value)}")
    return number


def _unit_interval(value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise _error(f"expected a number between 0 and 1, got {_show(value)}")
    return float(value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(f"expected a non-empty string, got {_show(value)}")
    return value.strip()


def _optional_name(value: Any) -> str | None:
    return None if value is None else _name(value)


def _choice(*options: str) -> Callable[[Any], str]:
    """A validator accepting one of ``options`` (case-insensitive)."""

    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in options:
            return value.strip().lower()
        message = f"expected one of {', '.join(options)}, got {_show(value)}"
        guess = _suggest(value.lower() if isinstance(value, str) else value, options)
        raise _error(message + (f" (did you mean '{guess}'?)" if guess else ""))

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


# --------------------------------------------------------------------- path helpers


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


def _sub_validate(model: type[BaseModel], value: Any, info: ValidationInfo) -> BaseModel:
    """Validate ``value`` as ``model``, re-raising problems with keys relative to the field."""
    try:
        return model.model_validate(value, context=info.context)
    except ValidationError as exc:
        raise _errors(_collect(exc, model)) from None


# ------------------------------------------------------------------------- sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    """The classifier to explain."""

    path: Path = Field(description="A .keras or .h5 file, or a SavedModel directory.")
    output: Name = Field(
        default="logits", description="'logits', 'probabilities' or the name of a layer to explain."
    )

    @field_validator("path", mode="before")
    @classmethod
    def _check_path(cls, value: Any, info: ValidationInfo) -> Path:
        path = _to_path(value, info)
        if not path.exists():
            raise _error(f"file or directory not found: {path}")
        if path.is_dir():
            if not any((path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
                raise _error(f"directory is not a SavedModel (no saved_model.pb): {path}")
        elif path.suffix.lower() not in MODEL_SUFFIXES:
            raise _error(f"expected a .keras or .h5 file or a SavedModel directory, got {path.name!r}")
        return path


class DataSection(_Section):
    """The dataset manifest and the columns to read from it."""

    manifest: Path = Field(description="The manifest file listing one image per row.")
    path_column: Name = "path"
    id_column: OptionalName = Field(default=None, description="None: the row number is the id.")
    label_column: OptionalName = None
    mask_column: OptionalName = None
    root: Path | None = Field(
        default=None,
        validate_default=True,
        description="Folder that relative image paths resolve against; None: the manifest's folder.",
    )

    @field_validator("manifest", mode="before")
    @classmethod
    def _check_manifest(cls, value: Any, info: ValidationInfo) -> Path:
        path = _to_path(value, info)
        if not path.exists():
            raise _error(f"file not found: {path}")
        if not path.is_file():
            raise _error(f"expected a file, got a directory: {path}")
        return path

    @field_validator("root", mode="before")
    @classmethod
    def _check_root(cls, value: Any, info: ValidationInfo) -> Path | None:
        if value is None:
            manifest = info.data.get("manifest")
            return manifest.parent if manifest is not None else None
        path = _to_path(value, info)
        if not path.exists():
            raise _error(f"directory not found: {path}")
        if not path.is_dir():
            raise _error(f"expected a directory, got a file: {path}")
        return path


class WindowSpec(_Section):
    """An intensity window (e.g. CT Hounsfield units): ``center`` +/- ``width`` / 2."""

    center: Annotated[float, BeforeValidator(_number)]
    width: Annotated[float, BeforeValidator(_positive_number)]


class ScaleStats(_Section):
    """Standardisation ``(x - mean) / std``; each a number or one number per channel."""

    mean: Annotated[float | tuple[float, ...], BeforeValidator(lambda v: _numbers(v, _number))]
    std: Annotated[float | tuple[float, ...], BeforeValidator(lambda v: _numbers(v, _positive_number))]

    @model_validator(mode="after")
    def _same_length(self) -> ScaleStats:
        if isinstance(self.mean, tuple) and isinstance(self.std, tuple) and len(self.mean) != len(self.std):
            raise _error(
                f"mean and std have different lengths ({len(self.mean)} and {len(self.std)})"
            )
        return self


class PreprocessSection(_Section):
    """How a raw image becomes the model's input tensor."""

    size: tuple[int, ...] | None = Field(
        default=None, description="Spatial size (2 or 3 ints); None: the model's input size."
    )
    channels: Literal[1, 3] | None = Field(default=None, description="None: the model's input channels.")
    window: Literal["auto"] | WindowSpec | None = Field(
        default="auto", description="'auto' (from the file), {center, width}, or None (no windowing)."
    )
    scale: Literal["minmax"] | ScaleStats | tuple[float, float] | None = Field(
        default="minmax",
        description="'minmax' (per image to [0, 1]), {mean, std}, [low, high] (per image min-max "
        "to [low, high]), or None (no scaling).",
    )

    def spec_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``medxai.preprocess.PreprocessSpec``.

        The window becomes ``(center, width)`` and mean/std scaling ``{"mean": .., "std": ..}``.
        """
        window = self.window
        if isinstance(window, WindowSpec):
            window = (window.center, window.width)
        scale = self.scale
        if isinstance(scale, ScaleStats):
            scale = {"mean": scale.mean, "std": scale.std}
        return {"size": self.size, "channels": self.channels, "window": window, "scale": scale}

    @field_validator("size", mode="before")
    @classmethod
    def _check_size(cls, value: Any) -> tuple[int, ...] | None:
        if value is None:
            return None
        if (
            not isinstance(value, (list, tuple))
            or len(value) not in (2, 3)
            or not all(_is_int(v) and v > 0 for v in value)
        ):
            raise _error(f"expected null or a list of 2 or 3 positive integers, got {_show(value)}")
        return tuple(int(v) for v in value)

    @field_validator("channels", mode="before")
    @classmethod
    def _check_channels(cls, value: Any) -> int | None:
        if value is None:
            return None
        if not _is_int(value) or value not in (1, 3):
            raise _error(f"expected 1, 3 or null, got {_show(value)}")
        return int(value)

    @field_validator("window", mode="before")
    @classmethod
    def _check_window(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, WindowSpec):
            return value
        if isinstance(value, str) and value.strip().lower() in ("auto", "none"):
            return None if value.strip().lower() == "none" else "auto"
        if isinstance(value, Mapping):
            return _sub_validate(WindowSpec, value, info)
        raise _error(f"expected 'auto', none or {{center: .., width: ..}}, got {_show(value)}")

    @field_validator("scale", mode="before")
    @classmethod
    def _check_scale(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in ("minmax", "none"):
            return None if value.strip().lower() == "none" else "minmax"
        if isinstance(value, (list, tuple)):
            if len(value) == 2 and all(_is_number(v) and math.isfinite(v) for v in value):
                low, high = float(value[0]), float(value[1])
                if low >= high:
                    raise _error(f"expected [low, high] with low < high, got {_show(value)}")
                return (low, high)
            raise _error(f"expected [low, high] (two numbers), got {_show(value)}")
        if isinstance(value, (Mapping, ScaleStats)):
            stats = value if isinstance(value, ScaleStats) else _sub_validate(ScaleStats, value, info)
            channels = info.data.get("channels")
            problems = [
                ((key,), f"expected 1 or {channels} values (one per channel), got {len(v)}")
                for key in ("mean", "std")
                if isinstance(v := getattr(stats, key), tuple) and channels and len(v) not in (1, channels)
            ]
            if problems:
                raise _errors(problems)
            return stats
        raise _error(
            f"expected 'minmax', {{mean: .., std: ..}}, [low, high] or none, got {_show(value)}"
        )


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
            guess = _suggest(self.name, known)
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise _error("", (("name",), f"unknown method '{self.name}' (known: {', '.join(known)}{hint})"))
        accepted, required = _method_parameters(registry[self.name])
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for key in self.params:
            if key in RESERVED_METHOD_PARAMS or key == "name":
                problems.append(
                    ((key,), f"not allowed in a method entry; it is set by {RESERVED_METHOD_PARAMS[key]}")
                )
            elif key not in accepted:
                guess = _suggest(key, accepted)
                known = f"known: {', '.join(accepted)}" if accepted else "it takes no parameters"
                hint = f"; did you mean '{guess}'?" if guess else ""
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


class ClipSection(_Section):
    """Clipping before normalisation: by value percentile or by cumulative attribution mass."""

    mode: Annotated[Literal["value", "mass"], BeforeValidator(_choice("value", "mass"))] = "value"
    low: Annotated[float, BeforeValidator(_number)] = 0.0
    high: Annotated[float, BeforeValidator(_number)] = 99.5

    @model_validator(mode="after")
    def _check_range(self) -> ClipSection:
        if not 0 <= self.low < self.high <= 100:
            raise _error(
                f"expected 0 <= low < high <= 100, got low={self.low:g}, high={self.high:g}"
            )
        return self


class HeatmapSection(_Section):
    """The map policy: signed attributions -> a [0, 1] map."""

    reduce: Annotated[
        Literal["abs_sum", "sum", "max_abs", "l2"],
        BeforeValidator(_choice("abs_sum", "sum", "max_abs", "l2")),
    ] = "abs_sum"
    polarity: Annotated[
        Literal["absolute", "positive", "negative"],
        BeforeValidator(_choice("absolute", "positive", "negative")),
    ] = "absolute"
    clip: ClipSection | None = None

    @field_validator("clip", mode="before")
    @classmethod
    def _check_clip(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        if not isinstance(value, (Mapping, ClipSection)):
            raise _error(f"expected null or {{mode: value|mass, low: .., high: ..}}, got {_show(value)}")
        return value


class OutputSection(_Section):
    """Where and how maps are written."""

    class Outline(_Section):
        """Outlines of a map's strongest regions on the overlays (``medxai.viz.render.OutlineSpec``)."""

        top_percent: float = Field(default=10.0, description="Outline the top X% of map values, 0 < X <= 100.")
        cleanup: StrictBool = Field(default=True, description="Opening, closing, then drop small regions.")
        radius: NonNegativeInt = Field(default=2, description="Clean-up disk radius in pixels; 0: none.")
        min_size: NonNegativeInt = Field(default=32, description="Smallest region kept, in pixels.")
        color: tuple[int, int, int] = Field(default=(0, 255, 0), description="RGB, ints 0..255.")
        only: StrictBool = Field(default=False, description="Outlines on the plain image, no colour map.")

        @field_validator("top_percent", mode="before")
        @classmethod
        def _check_top_percent(cls, value: Any) -> float:
            if not _is_number(value) or not 0 < value <= 100:
                raise _error(f"expected a number greater than 0 and at most 100, got {_show(value)}")
            return float(value)

        @field_validator("color", mode="before")
        @classmethod
        def _check_color(cls, value: Any) -> tuple[int, int, int]:
            if (
                not isinstance(value, (list, tuple))
                or len(value) != 3
                or not all(_is_int(v) and 0 <= v <= 255 for v in value)
            ):
                raise _error(f"expected [r, g, b], three integers from 0 to 255, got {_show(value)}")
            return tuple(int(v) for v in value)  # type: ignore[return-value]

    dir: Path = Field(description="Output folder (created if missing).")
    formats: tuple[Literal["npy", "png", "overlay"], ...] = FORMATS
    colormap: Name = "inferno"
    alpha: Annotated[float, BeforeValidator(_unit_interval)] = 0.5
    overlay_outline: Outline | None = Field(
        default=None,
        description="None: no outlines; a mapping (true: all defaults) outlines the strongest regions.",
    )

    @field_validator("overlay_outline", mode="before")
    @classmethod
    def _check_overlay_outline(cls, value: Any) -> Any:
        if value is None or value is False or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        if value is True:
            return {}
        if not isinstance(value, (Mapping, OutputSection.Outline)):
            raise _error(
                "expected null, true or a mapping {top_percent: .., cleanup: .., radius: .., "
                f"min_size: .., color: .., only: ..}}, got {_show(value)}"
            )
        return value

    @model_serializer(mode="wrap")
    def _omit_no_outline(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        # Left out when off, so configs (and resume fingerprints) from before the key existed are unchanged.
        data = handler(self)
        if data.get("overlay_outline", ...) is None:
            del data["overlay_outline"]
        return data

    @field_validator("dir", mode="before")
    @classmethod
    def _check_dir(cls, value: Any, info: ValidationInfo) -> Path:
        path = _to_path(value, info)
        if path.exists() and not path.is_dir():
            raise _error(f"exists and is not a directory: {path}")
        return path

    @field_validator("formats", mode="before")
    @classmethod
    def _check_formats(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise _error(f"expected a non-empty list of {', '.join(FORMATS)}, got {_show(value)}")
        problems: list[tuple[tuple[str | int, ...], str]] = []
        seen: set[str] = set()
        for i, fmt in enumerate(value):
            key = fmt.strip().lower() if isinstance(fmt, str) else fmt
            if key not in FORMATS:
                guess = _suggest(key, FORMATS)
                hint = f"; did you mean '{guess}'?" if guess else ""
                problems.append(((i,), f"unknown format {_show(fmt)} (known: {', '.join(FORMATS)}{hint})"))
            elif key in seen:
                problems.append(((i,), f"duplicate format '{key}'"))
            seen.add(key)
        if problems:
            raise _errors(problems)
        return tuple(f.strip().lower() for f in value)

    @field_validator("colormap", mode="before")
    @classmethod
    def _check_colormap(cls, value: Any) -> str:
        name = _name(value)
        try:
            from matplotlib import colormaps
        except ImportError:  # pragma: no cover - matplotlib is a dependency
            return name
        if name not in colormaps:
            guess = _suggest(name, sorted(colormaps))
            hint = f" (did you mean '{guess}'?)" if guess else ""
            raise _error(f"unknown matplotlib colormap '{name}'{hint}")
        return name


_SCHEDULER_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(?::\d+)?$")


def _dask_address(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() == "local":
        return "local"
    if isinstance(value, str) and _SCHEDULER_ADDRESS.match(value.strip()):
        address = value.strip()
        return address if "://" in address else f"tcp://{address}"
    raise _error(f"expected 'local' or a Dask scheduler address such as tcp://host:8786, got {_show(value)}")


class DaskSection(_Section):
    """Where ``runtime.executor: dask`` computes (``medxai.pipeline.executors.DaskExecutor``)."""

    address: Annotated[str, BeforeValidator(_dask_address)] = "local"
    workers: PositiveInt = 2
    partition_size: PositiveInt = 32
    timeout: Annotated[float, BeforeValidator(_positive_number)] = 30.0


class RuntimeSection(_Section):
    """How the run is executed."""

    batch_size: PositiveInt = 32
    seed: NonNegativeInt = 0
    resume: StrictBool = True
    progress: StrictBool = True
    overlap_io: StrictBool = True
    jit: StrictBool = False
    precision: Annotated[Literal["float32", "mixed"], BeforeValidator(_choice("float32", "mixed"))] = "float32"
    executor: Annotated[Literal["local", "dask"], BeforeValidator(_choice("local", "dask"))] = "local"
    dask: DaskSection = Field(default_factory=DaskSection)

    @field_validator("dask", mode="before")
    @classmethod
    def _empty_dask(cls, value: Any) -> Any:
        return {} if value is None else value  # `dask:` with every key commented out: the defaults


class EvaluateSection(_Section):
    """Quality figures computed right after the run (see :class:`medxai.pipeline.evaluation.EvaluationSpec`)."""

    faithfulness: StrictBool = True
    baseline: Annotated[Literal["blur", "zeros"], BeforeValidator(_choice("blur", "zeros"))] = "blur"
    step_percent: Annotated[float, BeforeValidator(_percent)] = 5.0
    topk_percent: Annotated[float, BeforeValidator(_percent)] = 5.0
    sanity_images: NonNegativeInt = 4
    sanity_threshold: Annotated[float, BeforeValidator(_unit_interval)] = 0.5
    sanity_seeds: PositiveInt = 3


_SECTIONS = ("model", "data", "preprocess", "methods", "targets", "heatmap", "output", "runtime", "evaluate")
_REQUIRED_SECTIONS = ("model", "data", "output")


class Config(BaseModel):
    """A validated study config; every path is absolute.

    Build one with :func:`load_config` (from YAML) or :meth:`from_dict`.
    """

    model_config = ConfigDict(extra="forbid")

    model: ModelSection
    data: DataSection
    preprocess: PreprocessSection = Field(default_factory=PreprocessSection)
    methods: list[MethodSpec] = Field(default_factory=lambda: [MethodSpec(name=DEFAULT_METHOD)])
    targets: Literal["predicted", "label", "all"] | tuple[int, ...] = "predicted"
    heatmap: HeatmapSection = Field(default_factory=HeatmapSection)
    output: OutputSection
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    evaluate: EvaluateSection | None = Field(
        default=None, description="None: no evaluation; true or a mapping: run `medxai evaluate` after the run."
    )

    @field_validator("evaluate", mode="before")
    @classmethod
    def _check_evaluate(cls, value: Any) -> Any:
        if value is None or value is False:
            return None
        if value is True:
            return {}
        if not isinstance(value, (Mapping, EvaluateSection)):
            raise _error(f"expected null, true or a mapping of evaluation settings, got {_show(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, value: Any) -> Any:
        """An empty section (``heatmap:`` with every key commented out) means its defaults."""
        if isinstance(value, Mapping):
            value = dict(value)
            for key in ("model", "data", "preprocess", "heatmap", "output", "runtime"):
                if key in value and value[key] is None:
                    value[key] = {}
            if "methods" in value and value["methods"] is None:
                del value["methods"]
        return value

    @field_validator("methods", mode="before")
    @classmethod
    def _check_methods(cls, value: Any) -> Any:
        if isinstance(value, (str, Mapping)):
            return [value]
        if isinstance(value, (list, tuple)) and not value:
            raise _error("expected at least one method")
        if not isinstance(value, (list, tuple)):
            raise _error(f"expected a list of methods, got {_show(value)}")
        return list(value)

    @model_validator(mode="after")
    def _check_polarity(self, info: ValidationInfo) -> Config:
        """A heatmap polarity must mean something for every method (checked by the method class itself)."""
        registry = (info.context or {}).get("methods") or {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, spec in enumerate(self.methods):
            check = getattr(registry.get(spec.name), "check_polarity", None)
            if check is None:
                continue
            try:
                check(spec.params, self.heatmap.polarity)
            except ValueError as err:
                problems.append((("methods", i), str(err)))
        if problems:
            raise _errors(problems)
        return self

    @field_validator("targets", mode="before")
    @classmethod
    def _check_targets(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("predicted", "label", "all"):
            value = value.strip().lower()
            if value == "label" and _label_column(info) is None:
                raise _error("'label' needs data.label_column")
            return value
        if _is_int(value):
            value = [value]
        if isinstance(value, (list, tuple)) and value:
            problems: list[tuple[tuple[str | int, ...], str]] = []
            for i, item in enumerate(value):
                if not _is_int(item) or item < 0:
                    problems.append(((i,), f"expected a non-negative class index, got {_show(item)}"))
                elif item in value[:i]:
                    problems.append(((i,), f"duplicate class index {item}"))
            if problems:
                raise _errors(problems)
            return tuple(int(v) for v in value)
        raise _error(
            f"expected 'predicted', 'label', 'all' or a list of class indices, got {_show(value)}"
        )

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
        method_registry: MethodRegistry | None = None,
    ) -> Config:
        """Validate a config given as a mapping (the YAML structure).

        Args:
            data: The config, shaped like the YAML file.
            base_dir: Folder that relative paths resolve against (default: the current directory).
            method_registry: Callable returning ``{method name: class}``; None tries
                ``medxai.methods.registry.available_methods`` and skips method checks if it is missing.

        Raises:
            ConfigError: listing every problem.
        """
        config, problems = _validate(data, base_dir=base_dir, method_registry=method_registry)
        if problems:
            raise ConfigError(problems)
        assert config is not None
        return config

    def to_dict(self) -> dict[str, Any]:
        """The validated config as plain JSON-able data, shaped like the YAML file."""
        return self.model_dump(mode="json", fallback=_json_fallback)


def _json_fallback(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    return tolist() if callable(tolist) else repr(value)


def _label_column(info: ValidationInfo) -> Any:
    data = info.data.get("data")
    if data is not None:
        return data.label_column
    raw = (info.context or {}).get("raw") or {}
    section = raw.get("data") if isinstance(raw, Mapping) else None
    return section.get("label_column") if isinstance(section, Mapping) else None


# -------------------------------------------------------------- validation driver


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


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _collect(exc: ValidationError, root: type[BaseModel]) -> list[tuple[tuple[str | int, ...], str]]:
    """Turn pydantic's errors into ``(location, message)`` pairs in our own words."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == _ERROR_TYPE:
            out.extend((loc + tuple(sub), msg) for sub, msg in err["ctx"]["problems"])
            continue
        if kind == "missing":
            is_section = root is Config and len(loc) == 1 and loc[0] in _SECTIONS
            msg = "required section missing" if is_section else "required key missing"
        elif kind == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            known = list(model.model_fields) if model is not None else []
            msg = _unknown_key_message(loc[-1], known)
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"expected a mapping, got {_show(err.get('input'))}"
        else:
            text = err["msg"]
            msg = f"{text[:1].lower()}{text[1:]}, got {_show(err.get('input'))}"
        out.append((loc, msg))
    return out


def _resolve_registry(method_registry: MethodRegistry | None) -> dict[str, Any] | None:
    if method_registry is None:
        try:
            from medxai.methods.registry import available_methods  # type: ignore[import-not-found]
        except ImportError:
            return None
        method_registry = available_methods
    return {str(name).strip().lower(): cls for name, cls in method_registry().items()}


def _validate(
    data: Any,
    *,
    base_dir: str | os.PathLike[str] | None,
    method_registry: MethodRegistry | None,
) -> tuple[Config | None, list[str]]:
    """Validate ``data``; return the config or the list of problems."""
    if not isinstance(data, Mapping):
        return None, [f"expected a mapping of sections ({', '.join(_SECTIONS)}) at the top level, got {_show(data)}"]
    base = Path(base_dir).expanduser().resolve() if base_dir is not None else Path.cwd()
    context = {"base_dir": base, "methods": _resolve_registry(method_registry), "raw": data}
    try:
        return Config.model_validate(dict(data), context=context), []
    except ValidationError as exc:
        return None, [f"{_dotted(loc) or '<top level>'}: {msg}" for loc, msg in _collect(exc, Config)]


# ------------------------------------------------------------------------ overrides


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
    node: type[BaseModel] | type[_AnyKeys] | None = Config
    container: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        here = _dotted(path[: i + 1])
        parent = _dotted(path[:i])
        if isinstance(part, int):
            if not isinstance(container, list):
                return f"{here}: {parent} is not a list"
            if not 0 <= part < len(container):
                return f"{here}: index out of range ({parent} has {len(container)} entries)"
            if last:
                container[part] = value
                return None
            child = container[part]
            child_node = node
            if isinstance(child, str) and node is _AnyKeys:
                child = {"name": child}  # bare method name -> entry
            elif not isinstance(child, dict):
                if node is None:
                    return f"{_dotted(path[: i + 2])}: unknown key ({here} is a single value)"
                child = {}
            container[part] = child
        else:
            if node is None:
                return f"{here}: unknown key ({parent} is a single value)"
            if node is _AnyKeys:
                child_node: Any = _AnyKeys
            else:
                assert isinstance(node, type) and issubclass(node, BaseModel)
                if part not in node.model_fields:
                    known = list(node.model_fields)
                    guess = _suggest(part, known)
                    prefix = f"{parent}." if parent else ""
                    if guess:
                        return f"{here}: unknown key (did you mean '{prefix}{guess}'?)"
                    return f"{here}: unknown key (known keys: {', '.join(prefix + k for k in known)})"
                child_node = _find_model(node.model_fields[part].annotation)
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
                    return f"{_dotted(path[: i + 2])}: unknown key ({here} is a single value)"
                child = {}
            container[part] = child
        container, node = child, child_node
    return None  # pragma: no cover - the loop always returns on the last part


def _apply(
    data: Mapping[str, Any], overrides: Sequence[str], base_dir: Path | None
) -> tuple[dict[str, Any], list[str]]:
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
    result, problems = _apply(data, overrides, Path(base_dir) if base_dir is not None else None)
    if problems:
        raise ConfigError(problems)
    return result


# ----------------------------------------------------------------------------- YAML


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
        raise ConfigError(
            f"expected a mapping of sections ({', '.join(_SECTIONS)}) at the top level, got {_show(data)}",
            path,
        )
    data, problems = _apply(data, overrides, Path.cwd())
    config, more = _validate(data, base_dir=path.parent, method_registry=method_registry)
    problems += more
    if problems:
        raise ConfigError(problems, path)
    assert config is not None
    return config
