"""One message per rule: a rule's error carries its setting as data; the explainer reads that key, not the text."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from analytic_models import linear_model

import medxai.io.model
from medxai.errors import ModelLoadError, SettingError, StudyError
from medxai.methods.registry import available_methods
from medxai.pipeline import explainer as explainer_module
from medxai.pipeline.config import Config
from medxai.pipeline.explainer import Explainer

PIPELINE = Path(explainer_module.__file__).resolve().parent


def config(tmp_path: Path) -> Config:
    (tmp_path / "model.keras").touch()  # never read: the model is given, or load_model is replaced
    (tmp_path / "manifest.csv").write_text("image_id,path\n")
    return Config.from_dict(
        {
            "model": {"path": "model.keras"},
            "data": {"manifest": "manifest.csv"},
            "output": {"dir": "o"},
            "preprocess": {"scale": None, "window": None},
            "methods": ["gradient"],
        },
        base_dir=tmp_path,
        method_registry=available_methods,
    )


def raising(error: Exception):
    def fail(*args, **kwargs):
        raise error

    return fail


def study_error(tmp_path: Path, model=None) -> str:
    with pytest.raises(StudyError) as caught:
        Explainer(config(tmp_path), model)
    return str(caught.value)


def test_a_setting_error_is_its_key_and_its_message_and_survives_a_pickle():
    error = SettingError("methods[1]", "ig is configured twice")
    assert (error.key, error.message, str(error)) == (
        "methods[1]",
        "ig is configured twice",
        "methods[1]: ig is configured twice",
    )
    assert str(SettingError("model.class_names", "has 2 names", sep=" ")) == "model.class_names has 2 names"
    assert isinstance(error, ValueError)
    back = pickle.loads(pickle.dumps(SettingError("model.class_names", "has 2 names", sep=" ")))
    assert (back.key, back.message, str(back)) == ("model.class_names", "has 2 names", "model.class_names has 2 names")
    keyed = pickle.loads(pickle.dumps(ModelLoadError("module 'x' has no 'Y'", key="custom_objects")))
    assert (keyed.key, str(keyed)) == ("custom_objects", "custom_objects: module 'x' has no 'Y'")
    assert str(ModelLoadError("model not found: m.keras")) == "model not found: m.keras"


def test_a_bad_custom_objects_spec_names_its_argument_as_data():
    with pytest.raises(ModelLoadError) as caught:
        medxai.io.model.resolve_custom_objects("no_colon")
    assert caught.value.key == "custom_objects"
    assert str(caught.value) == "custom_objects: 'no_colon' is not 'package.module:NAME'"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ModelLoadError("module 'x' has no 'Y'", key="custom_objects"), "model: custom_objects: module 'x' has no 'Y'"),
        # the text alone would have said custom_objects: the key (None: the file) decides
        (ModelLoadError("custom_objects: in the text only"), "model.path: custom_objects: in the text only"),
        (ModelLoadError("model not found: m.keras"), "model.path: model not found: m.keras"),
    ],
)
def test_a_model_load_error_is_mapped_to_its_config_key_by_its_key(tmp_path, monkeypatch, error, message):
    monkeypatch.setattr(medxai.io.model, "load_model", raising(error))
    assert study_error(tmp_path) == message


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (SettingError("methods[1]", "ig is configured twice"), "methods[1]: ig is configured twice"),
        (ValueError("methods in the text only"), "methods: methods in the text only"),
        (TypeError("unknown parameter"), "methods: unknown parameter"),
    ],
)
def test_a_method_error_is_mapped_to_its_config_key_by_its_key(tmp_path, monkeypatch, error, message):
    monkeypatch.setattr(explainer_module, "study_methods", raising(error))
    assert study_error(tmp_path, linear_model((4, 4, 1), activation="softmax")[0]) == message


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            SettingError("targets", "top_k is 6 but the model has 3 classes"),
            "targets: top_k is 6 but the model has 3 classes",
        ),
        (SettingError("model.class_names", "has 2 names", sep=" "), "model.class_names has 2 names"),
        (ValueError("model.class_names in the text only"), "targets: model.class_names in the text only"),
    ],
)
def test_a_targets_error_is_mapped_to_its_config_key_by_its_key(tmp_path, monkeypatch, error, message):
    monkeypatch.setattr(explainer_module, "target_rule", raising(error))
    assert study_error(tmp_path, linear_model((4, 4, 1), activation="softmax")[0]) == message


def test_no_pipeline_code_reads_a_key_back_from_a_message():
    """No ``str(...)`` (nor an error's ``message`` or ``args``) is asked what it starts or ends with."""
    found = []
    for path in sorted(PIPELINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if node.func.attr not in ("startswith", "endswith"):
                continue
            subject = node.func.value
            if (isinstance(subject, ast.Call) and getattr(subject.func, "id", None) == "str") or (
                isinstance(subject, ast.Attribute) and subject.attr in ("message", "args")
            ):
                found.append(f"{path.relative_to(PIPELINE)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found
