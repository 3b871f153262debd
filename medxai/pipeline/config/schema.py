"""The :class:`Config` model (the whole study file) and the validation driver behind it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUseDefault

from medxai._validation import (
    Problems,
    describe_frame,
    is_frame,
    is_int,
    null_is_empty,
    optional_section,
    problem_lines,
    show_value,
    sub_validate,
    validation_error,
    validation_errors,
)
from medxai.errors import ConfigError
from medxai.heatmap import HeatmapPolicy
from medxai.pipeline.config.method_spec import (
    DEFAULT_METHOD,
    MethodRegistry,
    MethodSpec,
)
from medxai.pipeline.config.sections import (
    DataSection,
    EvaluateSection,
    ModelSection,
    OutputSection,
    RegionTargets,
    RuntimeSection,
    ThresholdTargets,
    TopKTargets,
    class_list,
)
from medxai.preprocess import PreprocessSpec

_SECTIONS = ("model", "data", "preprocess", "methods", "targets", "heatmap", "output", "runtime", "evaluate")
_REQUIRED_SECTIONS = ("model", "data", "output")


class Config(BaseModel):
    """A validated study config; every path is absolute.

    Build one with :func:`load_config` (from YAML) or :meth:`from_dict`.
    """

    model_config = ConfigDict(extra="forbid")

    model: ModelSection
    data: DataSection
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    methods: list[MethodSpec] = Field(default_factory=lambda: [MethodSpec(name=DEFAULT_METHOD)])
    targets: (
        Literal["predicted", "label", "all"] | TopKTargets | ThresholdTargets | RegionTargets | tuple[int | str, ...]
    ) = Field(
        default="predicted",
        description="'predicted', 'label', 'all', {top_k: K}, {threshold: T}, a list of class indices or names; "
        "or for a segmentation model {region: predicted | connected | border | manifest | all, channels: [...], "
        "reduce: sum | mean}.",
    )
    heatmap: HeatmapPolicy = Field(default_factory=HeatmapPolicy)
    output: OutputSection
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    evaluate: EvaluateSection | None = Field(
        default=None, description="None: no evaluation; true or a mapping: run `medxai evaluate` after the run."
    )

    _check_evaluate = field_validator("evaluate", mode="before")(
        optional_section(
            EvaluateSection, "null, true or a mapping of evaluation settings", switch=True, none_word=False
        )
    )
    # An empty section (`heatmap:` with every key commented out) means its defaults.
    _empty_sections = field_validator("model", "data", "preprocess", "heatmap", "output", "runtime", mode="before")(
        null_is_empty
    )

    @field_validator("methods", mode="before")
    @classmethod
    def _check_methods(cls, value: Any) -> Any:
        if value is None:  # `methods:` with every entry commented out: the default method
            raise PydanticUseDefault()
        if isinstance(value, (str, Mapping)):
            return [value]
        if isinstance(value, (list, tuple)) and not value:
            raise validation_error("expected at least one method")
        if not isinstance(value, (list, tuple)):
            raise validation_error(f"expected a list of methods, got {show_value(value)}")
        return list(value)

    @model_validator(mode="after")
    def _check_polarity(self, info: ValidationInfo) -> Config:
        """A heatmap polarity must mean something for every method (checked by the method class itself)."""
        registry = (info.context or {}).get("methods") or {}
        problems: Problems = []
        for i, spec in enumerate(self.methods):
            check = getattr(registry.get(spec.registered), "check_polarity", None)
            if check is None:
                continue
            try:
                check(spec.params, self.heatmap.polarity)
            except ValueError as err:
                problems.append((("methods", i), str(err)))
        if problems:
            raise validation_errors(problems)
        return self

    @field_validator("targets", mode="before")
    @classmethod
    def _check_targets(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("predicted", "label", "all"):
            value = value.strip().lower()
            if value == "label" and _data_key(info, "label_column") is None:
                raise validation_error("'label' needs data.label_column")
            return value
        if isinstance(value, Mapping):
            keys = set(value)
            if keys == {"top_k"}:
                return sub_validate(TopKTargets, value, info)
            if keys == {"threshold"}:
                return sub_validate(ThresholdTargets, value, info)
            if "region" in keys:
                region = sub_validate(RegionTargets, value, info)
                if region.region == "manifest" and _data_key(info, "region_column") is None:
                    raise validation_error("region: manifest needs data.region_column (the column of mask files)")
                if region.components is not None and region.region != "connected":
                    raise validation_error(f"components applies to region: connected, not region: {region.region}")
                return region
            raise validation_error(
                f"expected {{top_k: K}}, {{threshold: T}} or {{region: ..., channels: [...]}}, got {show_value(value)}"
            )
        if is_int(value) or isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)) and value:
            return class_list(value)
        raise validation_error(
            "expected 'predicted', 'label', 'all', {top_k: K}, {threshold: T} or a list of class indices "
            f"or names, got {show_value(value)}"
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
    if is_frame(value):  # a DataFrame manifest: its shape, columns and a hash of its cells, never the cells
        import pandas as pd

        cells = hashlib.sha256(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()).hexdigest()
        return {"dataframe": describe_frame(value), "sha256": cells}
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    return tolist() if callable(tolist) else repr(value)


def _data_key(info: ValidationInfo, key: str) -> Any:
    """``data.<key>`` of the config being validated (validated if the data section was, else as written)."""
    data = info.data.get("data")
    if data is not None:
        return getattr(data, key)
    raw = (info.context or {}).get("raw") or {}
    section = raw.get("data") if isinstance(raw, Mapping) else None
    return section.get(key) if isinstance(section, Mapping) else None


# -------------------------------------------------------------- validation driver


def _not_sections(data: Any) -> str:
    """The problem with a file or mapping whose top level is not a mapping of sections."""
    return f"expected a mapping of sections ({', '.join(_SECTIONS)}) at the top level, got {show_value(data)}"


def _resolve_registry(method_registry: MethodRegistry | None) -> dict[str, Any] | None:
    """``{name: class}`` from ``method_registry``; None: the medxai registry, imported only now (or None)."""
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
        return None, [_not_sections(data)]
    base = Path(base_dir).expanduser().resolve() if base_dir is not None else Path.cwd()
    context = {"base_dir": base, "methods": _resolve_registry(method_registry), "raw": data}
    try:
        return Config.model_validate(dict(data), context=context), []
    except ValidationError as exc:
        return None, problem_lines(exc, Config, _SECTIONS)
