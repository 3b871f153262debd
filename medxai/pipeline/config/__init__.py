"""The config layer: YAML -> validated, typed settings.

A study is described by one YAML file (see ``configs/study.yaml`` for every key
with its default). :func:`load_config` reads it (or takes a Python mapping in its shape, whose
``data.manifest`` may be a pandas DataFrame), applies ``--set`` style overrides and
validates it into a :class:`Config`; :meth:`Config.from_dict` builds the same object
from a Python mapping without overrides.

Validation reports every problem at once: a :class:`ConfigError` whose
``problems`` are strings that each start with the dotted key they concern, e.g.
``"runtime.batch_size: expected a positive integer, got -3"``.

After validation every path is an absolute :class:`pathlib.Path`. Relative
paths in a config file resolve against the config file's folder (or
``base_dir`` for :meth:`Config.from_dict`), never against the current
directory. Relative paths given as command-line overrides resolve against the
current directory, as a shell user expects.

This package deliberately does not import TensorFlow: method names and
parameters are checked against a registry callable (by default
``medxai.methods.registry.available_methods``, imported only when a config is
validated, and skipped if it cannot be imported).

Modules, in import order (each imports only those above it):

* ``validators.py``: the config's own checks (paths against the config's folder); the
  shared checks and the problems in our own words (pydantic errors -> ``"key: message"``)
  are :mod:`medxai._validation`'s, shared with the library's settings;
* ``sections.py``: one model per section (model, data, preprocess, heatmap,
  output, runtime, evaluate) and :class:`EvaluationSpec`, what ``medxai evaluate`` takes;
* ``method_spec.py``: a ``methods`` entry, checked against the method registry;
* ``schema.py``: :class:`Config`, the whole file, and the validation driver;
* ``overrides.py``: ``--set KEY=VALUE``;
* ``loading.py``: :func:`load_config` (YAML, overrides, validation).
"""

from __future__ import annotations

from medxai.errors import ConfigError
from medxai.pipeline.config.loading import load_config
from medxai.pipeline.config.method_spec import MethodRegistry, MethodSpec
from medxai.pipeline.config.overrides import apply_overrides, parse_override
from medxai.pipeline.config.schema import Config
from medxai.pipeline.config.sections import (
    ClipSection,
    DaskSection,
    DataSection,
    EvaluateSection,
    HeatmapSection,
    ModelSection,
    OutputSection,
    PreprocessSection,
    RuntimeSection,
    ScaleStats,
    WindowSpec,
)

__all__ = [
    "ClipSection",
    "Config",
    "ConfigError",
    "DaskSection",
    "DataSection",
    "EvaluateSection",
    "HeatmapSection",
    "MethodRegistry",
    "MethodSpec",
    "ModelSection",
    "OutputSection",
    "PreprocessSection",
    "RuntimeSection",
    "ScaleStats",
    "WindowSpec",
    "apply_overrides",
    "load_config",
    "parse_override",
]
