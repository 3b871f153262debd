"""Every error a user catches lives in medxai.errors and is the same class wherever it is imported from."""

import importlib
import inspect
import subprocess
import sys

import pytest

import medxai
from medxai import errors

RAISED_IN = {
    "ConfigError": "medxai.pipeline.config",
    "StudyError": "medxai.pipeline.decoder",
    "ManifestError": "medxai.io.manifest",
    "ImageReadError": "medxai.io",
    "CorruptPixelDataError": "medxai.io",
    "PreprocessError": "medxai.preprocess",
    "ModelLoadError": "medxai.io.model",
    "SettingError": "medxai.methods.registry",
    "OutputSelectionError": "medxai.methods._engine.output",
    "EvaluationError": "medxai.pipeline.evaluation",
    "SanityCheckError": "medxai.metrics.randomisation",
    "ReportError": "medxai.viz.report",
}


def test_every_error_class_is_in_errors_and_exported():
    defined = {name for name, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, Exception)}
    assert defined == set(RAISED_IN)
    for name, module in RAISED_IN.items():
        assert getattr(importlib.import_module(module), name) is getattr(errors, name) is getattr(medxai, name)


def test_errors_module_imports_nothing_of_medxai():
    code = (
        "import sys, medxai.errors; print(sorted(m for m in sys.modules"
        " if m.startswith('medxai.') and m not in ('medxai.errors', 'medxai._version')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_config_error_lists_every_problem_with_its_source(tmp_path):
    error = errors.ConfigError(["a.b: bad", "c: worse"], tmp_path / "x.yaml")
    assert str(error).splitlines() == [f"invalid config {tmp_path / 'x.yaml'}:", "  - a.b: bad", "  - c: worse"]
    with pytest.raises(ValueError):
        raise error
