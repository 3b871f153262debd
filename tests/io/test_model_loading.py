"""``load_model(custom_objects=...)``: custom layers named as 'package.module:NAME', safe mode kept on."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from medxai.errors import ModelLoadError
from medxai.io.model import load_model, resolve_custom_objects

HERE = Path(__file__).resolve().parent
SPEC = "custom_layer_module:TimesFactor"


@pytest.fixture
def layer_module(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    import custom_layer_module

    return custom_layer_module


def custom_model(module, path: Path) -> Path:
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, kernel_initializer="ones")(module.TimesFactor(3.0)(inputs))
    keras.Model(inputs, outputs).save(path)
    return path


def test_unregistered_custom_layer_loads_only_with_custom_objects(tmp_path, layer_module):
    path = custom_model(layer_module, tmp_path / "custom.keras")
    # The layer's module is imported here, yet Keras does not find the class: it was never registered.
    assert "custom_layer_module" in sys.modules
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    message = str(info.value)
    assert "'TimesFactor'" in message and "Could not locate class" in message
    assert "model.custom_objects" in message and "'custom_layer_module:TimesFactor'" in message
    for custom in (SPEC, [SPEC], (SPEC,), {"TimesFactor": layer_module.TimesFactor}):
        model = load_model(path, custom_objects=custom)
        assert isinstance(model.layers[1], layer_module.TimesFactor) and model.layers[1].factor == 3.0
        np.testing.assert_allclose(model(np.ones((1, 4), np.float32)).numpy(), [[12.0, 12.0]])


def test_legacy_h5_with_a_custom_layer(tmp_path, layer_module):
    path = custom_model(layer_module, tmp_path / "custom.h5")
    with pytest.raises(ModelLoadError, match=r"model\.custom_objects.*Unknown layer: 'TimesFactor'"):
        load_model(path)
    assert isinstance(load_model(path, custom_objects=SPEC).layers[1], layer_module.TimesFactor)


def test_safe_mode_stays_on_with_custom_objects(tmp_path, layer_module):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match="(?i)unsafe|safe_mode"):
        load_model(tmp_path / "lambda.keras", custom_objects=SPEC)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            "custom_layer_module.TimesFactor",
            r"custom_objects: 'custom_layer_module\.TimesFactor' is not 'package\.module:NAME'",
        ),
        ("a:b:c", r"'a:b:c' is not 'package\.module:NAME'"),
        (":TimesFactor", r"':TimesFactor' is not"),
        (3, r"3 is not 'package\.module:NAME'"),
        (
            "no_such_module_for_medxai:Layer",
            r"cannot import module 'no_such_module_for_medxai' for 'no_such_module_for_medxai:Layer' "
            r"\(is it installed, or on PYTHONPATH\?\).*ModuleNotFoundError",
        ),
        (
            "custom_layer_module:Missing",
            r"module 'custom_layer_module' has no 'Missing' \(for 'custom_layer_module:Missing'\)",
        ),
    ],
)
def test_bad_specs_name_the_spec(layer_module, spec, match):
    with pytest.raises(ModelLoadError, match=match):
        resolve_custom_objects(spec)


def test_a_module_that_fails_on_import(tmp_path, monkeypatch):
    (tmp_path / "fails_on_import_for_medxai.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"'fails_on_import_for_medxai:X'.*RuntimeError: boom at import"):
        resolve_custom_objects(["fails_on_import_for_medxai:X"])


def test_bad_spec_is_reported_before_loading(tmp_path, layer_module):
    path = custom_model(layer_module, tmp_path / "custom.keras")
    with pytest.raises(ModelLoadError, match="custom_layer_module:Nope"):
        load_model(path, custom_objects=[SPEC, "custom_layer_module:Nope"])


def test_resolve_custom_objects_forms(layer_module):
    assert resolve_custom_objects(None) == {}
    assert resolve_custom_objects(SPEC) == {"TimesFactor": layer_module.TimesFactor}
    assert resolve_custom_objects({"X": int}) == {"X": int}
