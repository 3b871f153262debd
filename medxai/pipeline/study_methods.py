"""The methods, the explained output and the manifest rows a study's config asks for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medxai.io import ManifestRow, read_manifest
from medxai.methods._engine.spec import OutputSpec
from medxai.methods.base import XAIMethod
from medxai.methods.registry import build_methods
from medxai.pipeline.config import Config, DataSection


def output_spec(config: Config, explain: str | None = None) -> OutputSpec:
    """The config's ``model.output`` (or ``explain``), ``model.output_kind`` and ``model.activation``."""
    model = config.model
    return OutputSpec(model.output if explain is None else explain, model.output_kind, model.activation)


def study_methods(config: Config, model: Any) -> list[XAIMethod]:
    """The configured methods, built on ``model`` with the run's output, batch size, policy and seed.

    They share one gradient engine (and its compiled traces), owned by the methods:
    dropping them frees the model.
    """
    runtime = config.runtime
    return build_methods(
        [(spec.registered, spec.name if spec.method is not None else None, spec.params) for spec in config.methods],
        model,
        output=output_spec(config),
        batch_size=runtime.batch_size,
        heatmap=config.heatmap,
        jit=runtime.jit,
        precision=runtime.precision,
        seed=runtime.seed,
    )


def study_rows(config: Config) -> list[ManifestRow]:
    """The manifest rows named by the config's ``data`` section."""
    return data_rows(config.data, config.model.class_names)


def data_rows(data: DataSection, class_names: Sequence[str] | None = None) -> list[ManifestRow]:
    """The rows of a ``data`` section's manifest (a file, or a DataFrame), its columns read as it names them."""
    return read_manifest(
        data.manifest,
        path_column=data.path_column,
        id_column=data.id_column,
        label_column=data.label_column,
        mask_column=data.mask_column,
        region_column=data.region_column,
        root=data.root,
        series_column=data.series_column,
        class_names=class_names,
        delimiter=data.delimiter,
        encoding=data.encoding,
    )
