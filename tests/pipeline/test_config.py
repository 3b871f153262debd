"""Tests for medxai.pipeline.config: YAML -> validated, typed settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest

import medxai
from medxai.pipeline.config import (
    ClipSection,
    Config,
    ConfigError,
    DataSection,
    HeatmapSection,
    MethodSpec,
    ModelSection,
    OutputSection,
    PreprocessSection,
    RuntimeSection,
    ScaleStats,
    WindowSpec,
    apply_overrides,
    load_config,
    parse_override,
)

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------- fake registry


class FakeIG:
    def __init__(
        self,
        model,
        *,
        output="logits",
        batch_size=32,
        heatmap=None,
        steps=32,
        rule="gauss_legendre",
        baseline="zeros",
        n_baselines=1,
        seed=0,
    ): ...


class FakeBase:
    def __init__(self, model, *, output="logits", batch_size=32, heatmap=None): ...


class FakeSmoothGrad(FakeBase):
    def __init__(self, model, *, samples=25, noise=0.15, seed=0, **kwargs): ...


class FakeGradient(FakeBase):
    def __init__(self, model, *, absolute=True, **kwargs): ...


class FakeNeedsTarget(FakeBase):
    def __init__(self, model, *, layer, **kwargs): ...


def registry():
    return {
        "integrated_gradients": FakeIG,
        "ig": FakeIG,
        "smoothgrad": FakeSmoothGrad,
        "gradient": FakeGradient,
        "saliency": FakeGradient,
        "needs_layer": FakeNeedsTarget,
    }


KNOWN = "gradient, ig, integrated_gradients, needs_layer, saliency, smoothgrad"


# ----------------------------------------------------------------------- helpers


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A study folder with a model, a manifest and an image root; cwd is elsewhere."""
    root = tmp_path / "study"
    (root / "models").mkdir(parents=True)
    (root / "models" / "clf.keras").write_bytes(b"")
    (root / "data").mkdir()
    (root / "data" / "manifest.csv").write_text("path,label\na.png,0\n")
    (root / "images").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return root


MINIMAL = """
model:
  path: models/clf.keras
data:
  manifest: data/manifest.csv
output:
  dir: out
"""


def write(folder: Path, text: str, name: str = "study.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def minimal(**sections) -> dict:
    """The minimal config as a dict (relative paths), with sections replaced/added."""
    data = {
        "model": {"path": "models/clf.keras"},
        "data": {"manifest": "data/manifest.csv"},
        "output": {"dir": "out"},
    }
    data.update(sections)
    return data


def problems_of(data: dict, study: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, base_dir=study, method_registry=registry)
    return info.value.problems


def load(path, overrides=()):
    return load_config(path, overrides, method_registry=registry)


# -------------------------------------------------------------- valid configs


def test_full_config_round_trip(study):
    path = write(
        study,
        """
        model:
          path: models/clf.keras
          output: probabilities
        data:
          manifest: data/manifest.csv
          path_column: file
          id_column: image_id
          label_column: label
          mask_column: mask
          root: images
        preprocess:
          size: [256, 256]
          channels: 3
          window: {center: 40, width: 400}
          scale: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
        methods:
          - name: integrated_gradients
            steps: 16
            rule: riemann_trapezoid
          - name: smoothgrad
            samples: 10
        targets: [0, 2]
        heatmap:
          reduce: l2
          polarity: positive
          clip: {mode: mass, low: 1, high: 99}
        output:
          dir: runs/study
          formats: [npy, png]
          colormap: viridis
          alpha: 0.25
        runtime:
          batch_size: 8
          seed: 7
          resume: false
          progress: false
        """,
    )
    cfg = load(path)

    assert cfg.model == ModelSection(path=study / "models" / "clf.keras", output="probabilities")
    assert cfg.data == DataSection(
        manifest=study / "data" / "manifest.csv",
        path_column="file",
        id_column="image_id",
        label_column="label",
        mask_column="mask",
        root=study / "images",
    )
    assert cfg.preprocess.size == (256, 256)
    assert cfg.preprocess.channels == 3
    assert cfg.preprocess.window == WindowSpec(center=40.0, width=400.0)
    assert cfg.preprocess.scale == ScaleStats(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert cfg.methods == [
        MethodSpec(name="integrated_gradients", params={"steps": 16, "rule": "riemann_trapezoid"}),
        MethodSpec(name="smoothgrad", params={"samples": 10}),
    ]
    assert cfg.targets == (0, 2)
    assert cfg.heatmap == HeatmapSection(
        reduce="l2", polarity="positive", clip=ClipSection(mode="mass", low=1.0, high=99.0)
    )
    assert cfg.output == OutputSection(
        dir=study / "runs" / "study", formats=("npy", "png"), colormap="viridis", alpha=0.25
    )
    assert cfg.runtime == RuntimeSection(batch_size=8, seed=7, resume=False, progress=False)

    data = cfg.to_dict()
    text = json.dumps(data)  # JSON-able
    assert json.loads(text) == data
    assert data["model"]["path"] == str(study / "models" / "clf.keras")
    assert data["methods"] == [
        {"name": "integrated_gradients", "steps": 16, "rule": "riemann_trapezoid"},
        {"name": "smoothgrad", "samples": 10},
    ]
    assert data["preprocess"]["window"] == {"center": 40.0, "width": 400.0}
    assert data["targets"] == [0, 2]
    # The dict re-validates (from anywhere: its paths are absolute) to an equal config.
    assert Config.from_dict(json.loads(text), method_registry=registry) == cfg


def test_minimal_config_fills_every_default(study):
    cfg = load(write(study, MINIMAL))
    assert cfg.to_dict() == {
        "model": {
            "path": str(study / "models" / "clf.keras"),
            "output": "logits",
            "output_kind": "auto",
            "activation": None,
            "class_names": None,
            "custom_objects": None,
            "trust_saved_model": False,
        },
        "data": {
            "manifest": str(study / "data" / "manifest.csv"),
            "path_column": "path",
            "id_column": None,
            "label_column": None,
            "mask_column": None,
            "region_column": None,
            "series_column": None,
            "delimiter": None,
            "encoding": "utf-8",
            "max_pixels": 1 << 27,
            "on_corrupt": "error",
            "root": str(study / "data"),  # the manifest's folder
        },
        "preprocess": {"size": None, "channels": None, "window": "auto", "scale": "minmax", "preset": None},
        "methods": [{"name": "integrated_gradients"}],
        "targets": "predicted",
        "heatmap": {"reduce": "abs_sum", "polarity": "absolute", "clip": None},
        "output": {
            "dir": str(study / "out"),
            "formats": ["npy", "png", "overlay"],
            "colormap": "inferno",
            "alpha": 0.5,
            "max_size": 2048,
            "montage": {"slices": "top_mass", "n": 16},
            "display": {"transform": "gamma", "percentile": 99.0, "gamma": 0.5},
        },
        "runtime": {
            "batch_size": 32,
            "seed": 0,
            "resume": True,
            "progress": True,
            "overlap_io": True,
            "jit": False,
            "precision": "float32",
            "read_timeout": 120.0,
            "max_abandoned_reads": 2,
            "executor": "local",
            "dask": {"address": "local", "workers": 2, "partition_size": 32, "timeout": 30.0},
        },
        "evaluate": None,
    }
    assert Config.from_dict(cfg.to_dict(), method_registry=registry) == cfg


def test_paths_resolve_against_config_folder_not_cwd(study, tmp_path):
    # The cwd holds decoys with the same relative names; they must not be used.
    elsewhere = Path.cwd()
    (elsewhere / "models").mkdir()
    (elsewhere / "models" / "clf.keras").write_bytes(b"")
    config_dir = study / "configs"
    config_dir.mkdir()
    path = write(
        config_dir,
        """
        model: {path: ../models/clf.keras}
        data: {manifest: ../data/manifest.csv, root: ../images}
        output: {dir: ../out}
        """,
    )
    cfg = load(path)
    assert cfg.model.path == study / "models" / "clf.keras"
    assert cfg.data.manifest == study / "data" / "manifest.csv"
    assert cfg.data.root == study / "images"
    assert cfg.output.dir == study / "out"
    assert all(p.is_absolute() for p in (cfg.model.path, cfg.data.manifest, cfg.data.root, cfg.output.dir))


def test_from_dict_resolves_against_base_dir_or_cwd(study, monkeypatch):
    cfg = Config.from_dict(minimal(), base_dir=study, method_registry=registry)
    assert cfg.output.dir == study / "out"
    monkeypatch.chdir(study)
    cfg = Config.from_dict(minimal(), method_registry=registry)
    assert cfg.model.path == study / "models" / "clf.keras"
    assert cfg.output.dir == study / "out"


def test_saved_model_directory_and_h5_are_accepted(study):
    saved = study / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    (study / "models" / "old.h5").write_bytes(b"")
    assert problems_of(minimal(model={"path": "saved"}), study) == [
        f"model.path: {saved} is a TensorFlow SavedModel, and a SavedModel is code: its graph runs any TensorFlow "
        "op (it can write files) when medxai calls it, and Keras's safe mode does not cover it. Load only models "
        "you trust: set model.trust_saved_model: true (or save the model as .keras, which safe mode checks)"
    ]
    trusted = minimal(model={"path": "saved", "trust_saved_model": True})
    cfg = Config.from_dict(trusted, base_dir=study, method_registry=registry)
    assert cfg.model.path == saved
    cfg = Config.from_dict(minimal(model={"path": "models/old.h5"}), base_dir=study, method_registry=registry)
    assert cfg.model.path == study / "models" / "old.h5"


def test_empty_optional_sections_mean_defaults(study):
    cfg = load(write(study, MINIMAL + "preprocess:\nheatmap:\nruntime:\nmethods:\n"))
    assert cfg.preprocess == PreprocessSection()
    assert cfg.heatmap == HeatmapSection()
    assert cfg.runtime == RuntimeSection()
    assert cfg.methods == [MethodSpec(name="integrated_gradients")]


def test_bare_string_methods(study):
    cfg = load(write(study, MINIMAL + "methods: [ig, {name: smoothgrad, samples: 5}, Integrated-Gradients]\n"))
    assert cfg.methods == [
        MethodSpec(name="ig"),
        MethodSpec(name="smoothgrad", params={"samples": 5}),
        MethodSpec(name="integrated_gradients"),
    ]
    assert cfg.to_dict()["methods"] == [
        {"name": "ig"},
        {"name": "smoothgrad", "samples": 5},
        {"name": "integrated_gradients"},
    ]
    # A single bare name is a one-entry list.
    cfg = load(write(study, MINIMAL + "methods: gradient\n"))
    assert cfg.methods == [MethodSpec(name="gradient")]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("auto", "auto"),
        ("AUTO", "auto"),
        (None, None),
        ("none", None),
        ({"center": -600, "width": 1500.5}, WindowSpec(center=-600.0, width=1500.5)),
    ],
)
def test_window_forms(study, window, expected):
    cfg = Config.from_dict(minimal(preprocess={"window": window}), base_dir=study, method_registry=registry)
    assert cfg.preprocess.window == expected


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ("minmax", "minmax"),
        (None, None),
        ("none", None),
        ([0, 255], (0.0, 255.0)),
        ({"mean": 0.5, "std": 0.25}, ScaleStats(mean=0.5, std=0.25)),
        ({"mean": [1, 2, 3], "std": 2}, ScaleStats(mean=(1.0, 2.0, 3.0), std=2.0)),
    ],
)
def test_scale_forms(study, scale, expected):
    cfg = Config.from_dict(minimal(preprocess={"scale": scale}), base_dir=study, method_registry=registry)
    assert cfg.preprocess.scale == expected


@pytest.mark.parametrize(
    ("targets", "expected"), [("all", "all"), ("Predicted", "predicted"), ([3, 0], (3, 0)), (1, (1,))]
)
def test_target_forms(study, targets, expected):
    cfg = Config.from_dict(minimal(targets=targets), base_dir=study, method_registry=registry)
    assert cfg.targets == expected


def test_preprocess_spec_kwargs(study):
    section = PreprocessSection(size=(64, 64), channels=1, window=WindowSpec(center=40, width=400), scale=(-1.0, 1.0))
    assert section.spec_kwargs() == {
        "size": (64, 64),
        "channels": 1,
        "window": (40.0, 400.0),
        "scale": (-1.0, 1.0),
        "preset": None,
    }
    section = PreprocessSection(window=None, scale=ScaleStats(mean=(0.5, 0.4, 0.3), std=0.2))
    assert section.spec_kwargs() == {
        "size": None,
        "channels": None,
        "window": None,
        "scale": {"mean": (0.5, 0.4, 0.3), "std": 0.2},
        "preset": None,
    }
    assert PreprocessSection().spec_kwargs() == {
        "size": None,
        "channels": None,
        "window": "auto",
        "scale": "minmax",
        "preset": None,
    }


def test_targets_label_with_label_column(study):
    cfg = Config.from_dict(
        minimal(targets="label", data={"manifest": "data/manifest.csv", "label_column": "label"}),
        base_dir=study,
        method_registry=registry,
    )
    assert cfg.targets == "label"


def test_clip_defaults(study):
    cfg = Config.from_dict(minimal(heatmap={"clip": {}}), base_dir=study, method_registry=registry)
    assert cfg.heatmap.clip == ClipSection(mode="value", low=0.0, high=99.5)


# ------------------------------------------------------------------ overrides


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("runtime.batch_size=8", ["runtime", "batch_size"], 8),
        ("runtime.resume=false", ["runtime", "resume"], False),
        ("output.dir=/tmp/x", ["output", "dir"], "/tmp/x"),
        ("targets=[0,2]", ["targets"], [0, 2]),
        ("methods.0.steps=16", ["methods", 0, "steps"], 16),
        ("methods[1].noise = 0.2", ["methods", 1, "noise"], 0.2),
        ("heatmap.clip={mode: mass, high: 99}", ["heatmap", "clip"], {"mode": "mass", "high": 99}),
        ("data.id_column=", ["data", "id_column"], None),
        ("model.output=dense_1=x", ["model", "output"], "dense_1=x"),
    ],
)
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runtime.batch_size", "override 'runtime.batch_size': expected KEY=VALUE, e.g. runtime.batch_size=8"),
        (
            "runtime..seed=1",
            "override 'runtime..seed=1': expected KEY=VALUE with a dotted KEY, e.g. runtime.batch_size=8",
        ),
        (
            "targets=[0, 2",
            "targets: cannot read override value '[0, 2' as YAML (expected ',' or ']', but got '<stream end>')",
        ),
    ],
)
def test_parse_override_errors(text, message):
    with pytest.raises(ConfigError) as info:
        parse_override(text)
    assert info.value.problems == [message]


def test_apply_overrides_sets_values_without_touching_input():
    data = {"runtime": {"batch_size": 32}, "methods": ["ig", {"name": "smoothgrad", "samples": 5}]}
    out = apply_overrides(
        data,
        [
            "runtime.batch_size=8",
            "runtime.progress=false",
            "targets=[0,2]",
            "output.dir=/tmp/x",
            "methods.0.steps=16",
            "methods[1].samples=50",
            "heatmap.clip.high=99",
            "preprocess.window.center=40",
        ],
    )
    assert out == {
        "runtime": {"batch_size": 8, "progress": False},
        "methods": [{"name": "ig", "steps": 16}, {"name": "smoothgrad", "samples": 50}],
        "targets": [0, 2],
        "output": {"dir": "/tmp/x"},
        "heatmap": {"clip": {"high": 99}},
        "preprocess": {"window": {"center": 40}},
    }
    assert data == {"runtime": {"batch_size": 32}, "methods": ["ig", {"name": "smoothgrad", "samples": 5}]}


def test_apply_overrides_indexes_default_methods():
    assert apply_overrides({}, ["methods.0.steps=16"]) == {"methods": [{"name": "integrated_gradients", "steps": 16}]}


def test_apply_overrides_reports_every_bad_key():
    with pytest.raises(ConfigError) as info:
        apply_overrides(
            {"methods": ["ig"], "targets": [0]},
            [
                "runtime.batch_sise=8",
                "modle.path=x",
                "output.dir.sub=1",
                "methods.3.steps=1",
                "targets.0.x=1",
                "colormap=viridis",
            ],
        )
    assert info.value.problems == [
        "runtime.batch_sise: unknown key (did you mean 'runtime.batch_size'?)",
        "modle: unknown key (did you mean 'model'?)",
        "output.dir.sub: unknown key (output.dir is a single value)",
        "methods[3]: index out of range (methods has 1 entries)",
        "targets[0].x: unknown key (targets[0] is a single value)",
        "colormap: unknown key (known keys: model, data, preprocess, methods, targets, heatmap, output, runtime, "
        "evaluate)",
    ]


def test_load_config_with_overrides(study):
    path = write(study, MINIMAL + "methods: [ig]\n")
    cfg = load(
        path,
        ["runtime.batch_size=8", "runtime.resume=false", "targets=[0,2]", "methods.0.steps=16", "output.formats=[npy]"],
    )
    assert cfg.runtime.batch_size == 8
    assert cfg.runtime.resume is False
    assert cfg.targets == (0, 2)
    assert cfg.methods == [MethodSpec(name="ig", params={"steps": 16})]
    assert cfg.output.formats == ("npy",)


def test_override_paths_resolve_against_cwd(study):
    cfg = load(write(study, MINIMAL), ["output.dir=runs/try2", "model.path=" + str(study / "models" / "clf.keras")])
    assert cfg.output.dir == Path.cwd() / "runs" / "try2"
    assert cfg.model.path == study / "models" / "clf.keras"


def test_override_and_validation_problems_are_reported_together(study):
    with pytest.raises(ConfigError) as info:
        load(write(study, MINIMAL), ["runtime.batchsize=8", "runtime.seed=-1"])
    assert info.value.problems == [
        "runtime.batchsize: unknown key (did you mean 'runtime.batch_size'?)",
        "runtime.seed: expected a non-negative integer, got -1",
    ]


# --------------------------------------------------------------------- errors


def test_many_problems_reported_at_once(study):
    path = write(
        study,
        """
        model:
          pathh: models/clf.keras
        data:
          manifest: data/missing.csv
        preprocess:
          channels: 2
          window: {center: 40, width: 0}
        methods:
          - name: smoothgard
          - name: ig
            stepz: 3
        targets: label
        heatmap:
          reduce: mean
        output:
          dir: out
          alpha: 1.5
        runtime:
          batch_size: -3
          resume: maybe
        """,
    )
    with pytest.raises(ConfigError) as info:
        load(path)
    err = info.value
    assert err.problems == [
        "model.path: required key missing",
        "model.pathh: unknown key (did you mean 'path'?)",
        f"data.manifest: file not found: {study / 'data' / 'missing.csv'}",
        "preprocess.channels: expected 1, 3 or null, got 2",
        "preprocess.window.width: expected a positive number, got 0",
        f"methods[0].name: unknown method 'smoothgard' (known: {KNOWN}; did you mean 'smoothgrad'?)",
        "methods[1].stepz: unknown parameter for ig (known: steps, rule, baseline, n_baselines, seed; did you mean "
        "'steps'?)",
        "targets: 'label' needs data.label_column",
        "heatmap.reduce: expected one of abs_sum, sum, max_abs, l2, got 'mean'",
        "output.alpha: expected a number between 0 and 1, got 1.5",
        "runtime.batch_size: expected a positive integer, got -3",
        "runtime.resume: expected true or false, got 'maybe'",
    ]
    assert err.source == path
    assert str(err) == f"invalid config {path}:\n" + "\n".join(f"  - {p}" for p in err.problems)
    assert isinstance(err, ValueError)


def test_error_text_has_no_pydantic_noise(study):
    with pytest.raises(ConfigError) as info:
        Config.from_dict(minimal(runtime={"batch_size": "8", "seed": 1.5}, heatmap=[1]), base_dir=study)
    text = str(info.value)
    assert text == (
        "invalid config:\n"
        "  - heatmap: expected a mapping, got [1]\n"
        "  - runtime.batch_size: expected a positive integer, got '8'\n"
        "  - runtime.seed: expected a non-negative integer, got 1.5"
    )
    assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"modle": {}}, "modle: unknown key (did you mean 'model'?)"),
        (
            {"output": {"dir": "out", "where": "x"}},
            "output.where: unknown key (known keys: dir, formats, colormap, alpha, max_size, overlay_outline, "
            "montage, display)",
        ),
        ({"output": {"dir": "out", "colour_map": "x"}}, "output.colour_map: unknown key (did you mean 'colormap'?)"),
        (
            {"data": {"manifest": "data/manifest.csv", "label_col": "y"}},
            "data.label_col: unknown key (did you mean 'label_column'?)",
        ),
        ({"heatmap": {"clip": {"mode": "value", "hihg": 99}}}, "heatmap.clip.hihg: unknown key (did you mean 'high'?)"),
        ({"preprocess": {"scale": {"mean": 0, "sd": 1}}}, "preprocess.scale.std: required key missing"),
    ],
)
def test_unknown_key_suggestions(study, data, problem):
    assert problem in problems_of(minimal(**data), study)


def test_missing_required_sections_and_keys(study):
    assert problems_of({"data": {}, "output": None}, study) == [
        "model: required section missing",
        "data.manifest: required key missing",
        "output.dir: required key missing",
    ]


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ({"model": {"path": "models/clf.keras", "output": ""}}, "model.output: expected a non-empty string, got ''"),
        (
            {"data": {"manifest": "data/manifest.csv", "path_column": 3}},
            "data.path_column: expected a non-empty string, got 3",
        ),
        ({"data": {"manifest": 12}}, "data.manifest: expected a path, got 12"),
        (
            {"preprocess": {"size": [224]}},
            "preprocess.size: expected null or a list of 2 or 3 positive integers, got [224]",
        ),
        (
            {"preprocess": {"size": [224, 22.5]}},
            "preprocess.size: expected null or a list of 2 or 3 positive integers, got [224, 22.5]",
        ),
        ({"preprocess": {"channels": "3"}}, "preprocess.channels: expected 1, 3 or null, got '3'"),
        ({"methods": []}, "methods: expected at least one method"),
        ({"methods": 3}, "methods: expected a list of methods, got 3"),
        ({"methods": [5]}, "methods[0]: expected a method name or a mapping {name: .., <parameters>}, got 5"),
        ({"methods": [{"steps": 3}]}, "methods[0].name: required key missing"),
        ({"methods": [{"name": ""}]}, "methods[0].name: expected a non-empty string, got ''"),
        (
            {"output": {"dir": "out", "colormap": "infern"}},
            "output.colormap: unknown matplotlib colormap 'infern' (did you mean 'inferno'?)",
        ),
        ({"output": {"dir": "out", "alpha": True}}, "output.alpha: expected a number between 0 and 1, got true"),
        ({"output": {"dir": ["a"]}}, "output.dir: expected a path, got ['a']"),
        ({"runtime": {"batch_size": 0}}, "runtime.batch_size: expected a positive integer, got 0"),
        ({"runtime": {"batch_size": True}}, "runtime.batch_size: expected a positive integer, got true"),
        ({"runtime": {"seed": None}}, "runtime.seed: expected a non-negative integer, got null"),
        ({"runtime": {"progress": "yes"}}, "runtime.progress: expected true or false, got 'yes'"),
        (
            {"heatmap": {"polarity": "postive"}},
            "heatmap.polarity: expected one of absolute, positive, negative, got 'postive' (did you mean 'positive'?)",
        ),
        ({"runtime": 5}, "runtime: expected a mapping, got 5"),
    ],
)
def test_wrong_types(study, sections, problem):
    assert problems_of(minimal(**sections), study) == [problem]


def test_missing_files(study):
    (study / "models" / "clf.onnx").write_bytes(b"")
    (study / "empty_dir").mkdir()
    (study / "out_file").write_text("x")
    cases = [
        (
            {"model": {"path": "models/nope.keras"}},
            f"model.path: file or directory not found: {study / 'models' / 'nope.keras'}",
        ),
        (
            {"model": {"path": "models/clf.onnx"}},
            "model.path: expected a .keras or .h5 file or a SavedModel directory, got 'clf.onnx'",
        ),
        (
            {"model": {"path": "empty_dir"}},
            f"model.path: directory is not a SavedModel (no saved_model.pb): {study / 'empty_dir'}",
        ),
        ({"data": {"manifest": "data/nope.csv"}}, f"data.manifest: file not found: {study / 'data' / 'nope.csv'}"),
        ({"data": {"manifest": "data"}}, f"data.manifest: expected a file, got a directory: {study / 'data'}"),
        (
            {"data": {"manifest": "data/manifest.csv", "root": "imgs"}},
            f"data.root: directory not found: {study / 'imgs'}",
        ),
        (
            {"data": {"manifest": "data/manifest.csv", "root": "out_file"}},
            f"data.root: expected a directory, got a file: {study / 'out_file'}",
        ),
        ({"output": {"dir": "out_file"}}, f"output.dir: exists and is not a directory: {study / 'out_file'}"),
    ]
    for sections, problem in cases:
        assert problems_of(minimal(**sections), study) == [problem], sections


def test_unknown_method_lists_known_names_and_suggests(study):
    assert problems_of(minimal(methods=["smoothgard", "gradient", "lime"]), study) == [
        f"methods[0].name: unknown method 'smoothgard' (known: {KNOWN}; did you mean 'smoothgrad'?)",
        f"methods[2].name: unknown method 'lime' (known: {KNOWN})",
    ]


def test_unknown_method_parameters(study):
    methods = [
        {"name": "integrated_gradients", "stepz": 8, "colour": 1},
        {"name": "smoothgrad", "nosie": 0.1},
        {"name": "gradient", "absolute": False, "steps": 3},
        {"name": "needs_layer"},
    ]
    assert problems_of(minimal(methods=methods), study) == [
        "methods[0].stepz: unknown parameter for integrated_gradients (known: steps, rule, baseline, n_baselines, "
        "seed; did you mean 'steps'?)",
        "methods[0].colour: unknown parameter for integrated_gradients (known: steps, rule, baseline, n_baselines, "
        "seed)",
        "methods[1].nosie: unknown parameter for smoothgrad (known: samples, noise, seed; did you mean 'noise'?)",
        "methods[2].steps: unknown parameter for gradient (known: absolute)",
        "methods[3]: missing required parameter 'layer' for needs_layer",
    ]


def test_base_options_are_not_allowed_in_a_method_entry(study):
    methods = [{"name": "ig", "output": "probabilities", "batch_size": 4, "heatmap": {}, "model": "m"}]
    assert problems_of(minimal(methods=methods), study) == [
        "methods[0].output: not allowed in a method entry; it is set by model.output",
        "methods[0].batch_size: not allowed in a method entry; it is set by runtime.batch_size",
        "methods[0].heatmap: not allowed in a method entry; it is set by the heatmap section",
        "methods[0].model: not allowed in a method entry; it is set by model.path",
    ]


@pytest.mark.parametrize(
    ("sections", "problems"),
    [
        (
            {"preprocess": {"window": "soft"}},
            ["preprocess.window: expected 'auto', none or {center: .., width: ..}, got 'soft'"],
        ),
        ({"preprocess": {"window": {"center": 40}}}, ["preprocess.window.width: required key missing"]),
        (
            {"preprocess": {"window": {"center": "x", "width": -1, "level": 2}}},
            [
                "preprocess.window.center: expected a number, got 'x'",
                "preprocess.window.width: expected a positive number, got -1",
                "preprocess.window.level: unknown key (known keys: center, width)",
            ],
        ),
        (
            {"preprocess": {"scale": "zscore"}},
            [
                "preprocess.scale: expected 'minmax', 'stored_range', {mean: .., std: ..}, [low, high] or none, got "
                "'zscore'"
            ],
        ),
        ({"preprocess": {"scale": [1, 0]}}, ["preprocess.scale: expected [low, high] with low < high, got [1, 0]"]),
        ({"preprocess": {"scale": [0, 1, 2]}}, ["preprocess.scale: expected [low, high] (two numbers), got [0, 1, 2]"]),
        (
            {"preprocess": {"scale": {"mean": 0, "std": [1, 0, -1]}}},
            [
                "preprocess.scale.std[1]: expected a positive number, got 0",
                "preprocess.scale.std[2]: expected a positive number, got -1",
            ],
        ),
        (
            {"preprocess": {"scale": {"mean": [0, 0], "std": [1, 1, 1]}}},
            ["preprocess.scale: mean and std have different lengths (2 and 3)"],
        ),
        (
            {"preprocess": {"channels": 1, "scale": {"mean": [0, 0, 0], "std": 1}}},
            ["preprocess.scale.mean: expected 1 or 1 values (one per channel), got 3"],
        ),
        (
            {"heatmap": {"clip": "yes"}},
            ["heatmap.clip: expected null or {mode: value|mass, low: .., high: ..}, got 'yes'"],
        ),
        (
            {"heatmap": {"clip": {"mode": "mas"}}},
            ["heatmap.clip.mode: expected one of value, mass, got 'mas' (did you mean 'mass'?)"],
        ),
        (
            {"heatmap": {"clip": {"low": 50, "high": 10}}},
            ["heatmap.clip: expected 0 <= low < high <= 100, got low=50, high=10"],
        ),
        ({"heatmap": {"clip": {"high": 101}}}, ["heatmap.clip: expected 0 <= low < high <= 100, got low=0, high=101"]),
        (
            {"output": {"dir": "out", "formats": []}},
            ["output.formats: expected a non-empty list of npy, png, overlay, nifti, dicom, mask, got []"],
        ),
        (
            {"output": {"dir": "out", "formats": ["png", "jpg", "png"]}},
            [
                "output.formats[1]: unknown format 'jpg' (known: npy, png, overlay, nifti, dicom, mask; "
                "did you mean 'png'?)",
                "output.formats[2]: duplicate format 'png'",
            ],
        ),
        (
            {"targets": []},
            [
                "targets: expected 'predicted', 'label', 'all', {top_k: K}, {threshold: T} or a list of class "
                "indices or names, got []"
            ],
        ),
        (
            {"targets": {"top": 3}},
            ["targets: expected {top_k: K}, {threshold: T} or {region: ..., channels: [...]}, got a mapping {top: 3}"],
        ),
        ({"targets": {"top_k": 0}}, ["targets.top_k: expected a positive integer, got 0"]),
        ({"targets": {"threshold": 1.5}}, ["targets.threshold: expected a number between 0 and 1, got 1.5"]),
        (
            {"targets": [0, -1, "", 0, "Mass", "Mass"]},
            [
                "targets[1]: expected a non-negative class index or a class name, got -1",
                "targets[2]: expected a non-negative class index or a class name, got ''",
                "targets[3]: duplicate class 0",
                "targets[5]: duplicate class 'Mass'",
            ],
        ),
        ({"targets": "label"}, ["targets: 'label' needs data.label_column"]),
    ],
)
def test_bad_values(study, sections, problems):
    assert problems_of(minimal(**sections), study) == problems


def test_targets_label_checked_even_when_data_section_is_invalid(study):
    data = minimal(targets="label", data={"manifest": "data/missing.csv"})
    assert problems_of(data, study) == [
        f"data.manifest: file not found: {study / 'data' / 'missing.csv'}",
        "targets: 'label' needs data.label_column",
    ]
    data = minimal(targets="label", data={"manifest": "data/missing.csv", "label_column": "y"})
    assert problems_of(data, study) == [f"data.manifest: file not found: {study / 'data' / 'missing.csv'}"]


# ------------------------------------------------------------------ the file


def test_yaml_syntax_error_names_the_line(study):
    path = write(study, "model:\n  path: models/clf.keras\n output: logits\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [
        "line 3, column 2: YAML syntax error: while parsing a block mapping expected <block end>, but found '<block "
        "mapping start>'"
    ]
    assert str(info.value).startswith(f"invalid config {path}:\n  - line 3, column 2:")


def test_duplicate_keys_are_errors(study):
    path = write(study, MINIMAL + "runtime:\n  seed: 1\n  seed: 2\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == ["line 10: duplicate key 'seed' (first given on line 9)"]


def _alias_bomb(levels: int = 9) -> str:
    """A 'billion laughs' YAML: each level lists the one before ten times (10**levels leaves in 1 KB)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 10)}]" for n in range(1, levels)]
    return "\n".join(lines) + f"\n{MINIMAL}methods: *l{levels - 1}\nruntime: {{seed: *l{levels - 1}}}\n"


def test_an_alias_bomb_is_refused_by_validate_quickly(study):
    path = write(study, _alias_bomb())
    assert path.stat().st_size < 1100
    env = {**os.environ, "PYTHONPATH": str(Path(medxai.__file__).parents[1])}  # this medxai, whatever is installed
    # a hang guard, not a timing: before, validate was still busy after 300 s
    done = subprocess.run(
        [sys.executable, "-m", "medxai", "validate", str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 2
    assert f"invalid config {path}:\n  - the config holds more than 100,000 values once its YAML aliases" in done.stderr


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: &a [*a]\n" + MINIMAL, "line 1, column 4: YAML syntax error: found unconstructable recursive node"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n" + MINIMAL, "the YAML is nested too deeply to read"),
    ],
)
def test_endless_and_too_deep_yaml_is_refused(study, text, problem):
    with pytest.raises(ConfigError) as info:
        load(write(study, text))
    assert info.value.problems[0].startswith(problem)


def test_aliases_of_an_ordinary_size_are_fine(study):
    config = load(write(study, MINIMAL + "runtime: {seed: &three 3, batch_size: *three}\n"))
    assert config.runtime.seed == config.runtime.batch_size == 3


def test_error_values_are_rendered_within_their_limit_however_large():
    from medxai._validation import show_value

    leaf: list = ["lol"] * 10
    for _ in range(12):  # 10**13 leaves, shared
        leaf = [leaf] * 10
    shown: list[str] = []
    worker = threading.Thread(target=lambda: shown.append(show_value({"a": leaf})), daemon=True)
    worker.start()
    worker.join(timeout=120)  # a hang guard: rendering the whole value would never end
    assert shown == ["a mapping {a: [[[[[[[[[[[[['lol...}"]
    assert show_value(["x" * 10**7]) == "['xxxxxxxxxxxxxxxx...]" and show_value("x" * 10**7, 10) == "'xxxxxx..."
    assert show_value({"steps": [1, 2]}) == "a mapping {steps: [1, 2]}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "",
            "the file is empty; expected the sections model, data, preprocess, methods, targets, heatmap, output, "
            "runtime, evaluate (model, data, output are required)",
        ),
        (
            "# only comments\n",
            "the file is empty; expected the sections model, data, preprocess, methods, targets, heatmap, output, "
            "runtime, evaluate (model, data, output are required)",
        ),
        (
            "- model\n- data\n",
            "expected a mapping of sections (model, data, preprocess, methods, targets, heatmap, output, runtime, "
            "evaluate) at the top level, got ['model', 'data']",
        ),
    ],
)
def test_empty_or_non_mapping_file(study, text, problem):
    path = write(study, text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.problems == [problem]
    assert info.value.source == path


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.yaml")
    assert info.value.problems == [f"config file not found: {tmp_path / 'nope.yaml'}"]


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ConfigError) as info:
        Config.from_dict(["model"], method_registry=registry)
    assert str(info.value) == (
        "invalid config:\n  - expected a mapping of sections (model, data, preprocess, methods, "
        "targets, heatmap, output, runtime, evaluate) at the top level, got ['model']"
    )


# ------------------------------------------------------------------ registry


def test_without_a_registry_method_names_are_not_checked(study, monkeypatch):
    monkeypatch.setitem(sys.modules, "medxai.methods.registry", None)  # import fails
    cfg = load_config(write(study, MINIMAL + "methods: [{name: anything, foo: 1}]\n"))
    assert cfg.methods == [MethodSpec(name="anything", params={"foo": 1})]


def test_default_registry_is_medxai_registry(study, monkeypatch):
    fake = types.ModuleType("medxai.methods.registry")
    fake.available_methods = lambda: {"Gradient": FakeGradient}
    monkeypatch.setitem(sys.modules, "medxai.methods.registry", fake)
    path = write(study, MINIMAL + "methods: [gradient, ig]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["methods[1].name: unknown method 'ig' (known: gradient)"]


# ------------------------------------------------------------------ example


def test_example_config_shows_the_defaults(tmp_path, monkeypatch):
    """configs/study.yaml is valid and (methods aside) states exactly the defaults."""
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "study.yaml", tmp_path / "configs" / "study.yaml")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "classifier.keras").write_bytes(b"")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.csv").write_text("path\n")
    monkeypatch.chdir(tmp_path)
    cfg = load(tmp_path / "configs" / "study.yaml")
    defaults = Config.from_dict(
        {
            "model": {"path": "models/classifier.keras"},
            "data": {"manifest": "data/manifest.csv"},
            "output": {"dir": "runs/study"},
        },
        base_dir=tmp_path,
        method_registry=registry,
    )
    assert cfg.model_copy(update={"methods": defaults.methods}) == defaults
    assert cfg.methods == [MethodSpec(name="integrated_gradients", params={"steps": 32})]


# ------------------------------------------------------------ overlay outlines


def test_overlay_outline_is_off_by_default_and_left_out_of_to_dict(study):
    cfg = load(write(study, MINIMAL))
    assert cfg.output.overlay_outline is None
    assert "overlay_outline" not in cfg.to_dict()["output"]  # unchanged dict, unchanged fingerprints


@pytest.mark.parametrize("value", [{}, True, None, False, "none"])
def test_overlay_outline_on_and_off_forms(study, value):
    cfg = Config.from_dict(minimal(output={"dir": "out", "overlay_outline": value}), base_dir=study)
    if value in ({}, True):
        assert cfg.output.overlay_outline == OutputSection.Outline()
    else:
        assert cfg.output.overlay_outline is None


def test_overlay_outline_defaults_match_render():
    from medxai.viz.render import OutlineSpec

    assert OutlineSpec(**OutputSection.Outline().model_dump()) == OutlineSpec()


def test_overlay_outline_keys_validate_and_round_trip(study):
    path = write(
        study,
        MINIMAL
        + """\
  overlay_outline:
    top_percent: 2.5
    cleanup: false
    radius: 0
    min_size: 8
    color: [255, 0, 128]
    only: true
""",
    )
    cfg = load(path)
    assert cfg.output.overlay_outline == OutputSection.Outline(
        top_percent=2.5, cleanup=False, radius=0, min_size=8, color=(255, 0, 128), only=True
    )
    data = cfg.to_dict()
    assert data["output"]["overlay_outline"] == {
        "top_percent": 2.5,
        "cleanup": False,
        "radius": 0,
        "min_size": 8,
        "color": [255, 0, 128],
        "only": True,
    }
    assert json.loads(json.dumps(data)) == data
    assert Config.from_dict(data, method_registry=registry) == cfg


def test_overlay_outline_overrides(study):
    path = write(study, MINIMAL)
    cfg = load(path, ["output.overlay_outline={top_percent: 5}"])
    assert cfg.output.overlay_outline == OutputSection.Outline(top_percent=5)
    cfg = load(path, ["output.overlay_outline.min_size=4", "output.overlay_outline.color=[1, 2, 3]"])
    assert cfg.output.overlay_outline == OutputSection.Outline(min_size=4, color=(1, 2, 3))
    with pytest.raises(ConfigError) as info:
        load(path, ["output.overlay_outline.radus=2"])
    assert info.value.problems == [
        "output.overlay_outline.radus: unknown key (did you mean 'output.overlay_outline.radius'?)"
    ]


@pytest.mark.parametrize(
    ("outline", "problems"),
    [
        (
            {"top_percent": 0},
            ["output.overlay_outline.top_percent: expected a number greater than 0 and at most 100, got 0"],
        ),
        (
            {"top_percent": 150},
            ["output.overlay_outline.top_percent: expected a number greater than 0 and at most 100, got 150"],
        ),
        (
            {"top_percent": "5"},
            ["output.overlay_outline.top_percent: expected a number greater than 0 and at most 100, got '5'"],
        ),
        ({"top_pct": 5}, ["output.overlay_outline.top_pct: unknown key (did you mean 'top_percent'?)"]),
        ({"colour": [0, 0, 0]}, ["output.overlay_outline.colour: unknown key (did you mean 'color'?)"]),
        (
            {"radius": -1, "min_size": 2.5, "cleanup": "yes", "only": 1},
            [
                "output.overlay_outline.cleanup: expected true or false, got 'yes'",
                "output.overlay_outline.radius: expected a non-negative integer, got -1",
                "output.overlay_outline.min_size: expected a non-negative integer, got 2.5",
                "output.overlay_outline.only: expected true or false, got 1",
            ],
        ),
        (
            {"color": [0, 0, 300]},
            ["output.overlay_outline.color: expected [r, g, b], three integers from 0 to 255, got [0, 0, 300]"],
        ),
        (
            {"color": "green"},
            ["output.overlay_outline.color: expected [r, g, b], three integers from 0 to 255, got 'green'"],
        ),
        (
            5,
            [
                "output.overlay_outline: expected null, true or a mapping "
                "{top_percent: .., cleanup: .., radius: .., min_size: .., color: .., only: ..}, got 5"
            ],
        ),
    ],
)
def test_overlay_outline_bad_values(study, outline, problems):
    assert problems_of(minimal(output={"dir": "out", "overlay_outline": outline}), study) == problems


def test_evaluate_section(study):
    def build(**sections):
        return Config.from_dict(minimal(**sections), base_dir=study, method_registry=registry)

    assert build().evaluate is None
    on = build(evaluate=True).evaluate
    assert (on.faithfulness, on.baseline, on.step_percent, on.sanity_images, on.sanity_threshold) == (
        True,
        "blur",
        5.0,
        4,
        0.5,
    )
    custom = build(evaluate={"baseline": "zeros", "sanity_images": 0})
    assert Config.from_dict(custom.to_dict(), method_registry=registry) == custom
    with pytest.raises(ConfigError) as err:
        build(evaluate={"baseline": "noise", "step_pct": 3, "sanity_threshold": 2})
    text = "\n".join(err.value.problems)
    assert "evaluate.baseline: expected one of blur, zeros" in text
    assert "evaluate.step_pct: unknown key (did you mean 'step_percent'?)" in text
    assert "evaluate.sanity_threshold" in text


def test_polarity_that_means_nothing_for_a_method_is_a_config_error(study):
    from medxai.methods.registry import available_methods

    methods = [
        "gradient",
        {"name": "smoothgrad", "statistic": "variance"},
        "ig",
        {"name": "gradient", "absolute": False},
    ]
    with pytest.raises(ConfigError) as info:
        Config.from_dict(
            minimal(methods=methods, heatmap={"polarity": "negative"}),
            base_dir=study,
            method_registry=available_methods,
        )
    problems = info.value.problems
    assert len(problems) == 2
    assert (
        problems[0].startswith("methods[0]: heatmap polarity 'negative' with gradient") and "all zeros" in problems[0]
    )
    assert problems[1].startswith("methods[1]: heatmap polarity 'negative' with smoothgrad")
    signed = Config.from_dict(
        minimal(methods=methods[2:], heatmap={"polarity": "negative"}),
        base_dir=study,
        method_registry=available_methods,
    )
    assert signed.heatmap.polarity == "negative"


def test_method_parameters_are_checked_per_key_with_bounds_and_without_building_anything(study):
    import tracemalloc

    from medxai.methods.registry import available_methods

    data = minimal(
        methods=[
            {"name": "integrated_gradients", "steps": 1_000_000_000, "max_steps": 0},
            {"name": "smoothgrad", "samples": 0, "noise": -1},
            {"name": "ig_fine", "method": "integrated_gradients", "steps": "auto", "tolerance": 2},
            {"name": "rise", "samples": 10**9, "seed": -1},
        ]
    )
    tracemalloc.start()
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, base_dir=study, method_registry=available_methods)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert info.value.problems == [
        "methods[0].steps: steps must be at most 4096, got 1000000000",
        "methods[0].max_steps: max_steps must be a positive integer, got 0",
        "methods[1].samples: samples must be a positive integer, got 0",
        "methods[1].noise: noise must be a number >= 0, got -1",
        "methods[2].tolerance: tolerance must be a number in (0, 1), got 2",
        "methods[3].samples: samples must be at most 100000, got 1000000000",
        "methods[3].seed: seed must be an integer >= 0, got -1",
    ]
    assert peak < 50 * 2**20  # nothing in proportion to steps


def test_gauss_legendre_points_stay_cheap_up_to_the_limit():
    from medxai.methods._engine.quadrature import MAX_POINTS, integration_points

    alphas, weights = integration_points("gauss_legendre", MAX_POINTS)
    assert len(alphas) == MAX_POINTS and weights.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=f"steps must be at most {MAX_POINTS}"):
        integration_points("trapezoid", MAX_POINTS + 1)


def test_the_config_default_image_limit_is_the_readers():
    from medxai.io.limits import DEFAULT_MAX_PIXELS
    from medxai.pipeline.config.sections import MAX_PIXELS

    assert MAX_PIXELS == DEFAULT_MAX_PIXELS  # one number, kept in two places so the config imports no reader


def test_the_config_default_abandoned_read_cap_is_the_readers():
    from medxai.io.limits import DEFAULT_MAX_ABANDONED_READS
    from medxai.pipeline.config.sections import RuntimeSection

    assert RuntimeSection().max_abandoned_reads == DEFAULT_MAX_ABANDONED_READS


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("integrated_gradients", {"steps": "auto", "tolerance": 2}),
        ("smoothgrad", {"noise": -1}),
        ("guided_ig", {"max_dist": 2}),
        ("lime", {"ridge": 0}),
        ("rise", {"seed": -1}),
        ("occlusion", {"fill": "median"}),
    ],
)
def test_a_method_refuses_what_validate_refuses_with_the_same_message(study, method, params):
    from analytic_models import tiny_model

    from medxai.methods.registry import available_methods, resolve_method

    data = minimal(methods=[{"name": method, **params}])
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, base_dir=study, method_registry=available_methods)
    problems = [p.split(": ", 1)[1] for p in info.value.problems]
    with pytest.raises(ValueError) as built:
        resolve_method(method)(tiny_model(), **params)
    assert str(built.value) in problems
