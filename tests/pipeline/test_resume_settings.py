"""Resume never mixes maps computed two ways; ``medxai.run`` applies overrides to every kind of config."""

from __future__ import annotations

import json
import shutil
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from study_helpers import count_processed

import medxai
from medxai.pipeline.config import Config, ConfigError, apply_overrides
from medxai.pipeline.journal import fingerprint as _fingerprint

FAILING = ["fake", "gone", "nan"]  # the study's images that always fail, so are never resumed

# Every setting that changes a map's values or files, with a value other than base()'s.
MAP_SETTINGS = [
    "model.path={study}/copy.keras",
    "model.output=probabilities",
    "model.output_kind=logits",
    "model.activation=sigmoid",
    "model.class_names=[negative, positive]",
    "model.custom_objects=os.path:join",
    "data.manifest={study}/copy.csv",
    "data.path_column=file",
    "data.id_column=null",
    "data.label_column=null",
    "data.mask_column=label",
    "data.region_column=label",
    "data.series_column=label",
    "data.delimiter=';'",
    "data.encoding=latin-1",
    "data.max_pixels=1000",
    "data.on_corrupt=warn",
    "model.trust_saved_model=true",
    "output.max_size=64",
    "data.root={study}/sub",
    "preprocess.size=[8, 8]",
    "preprocess.channels=1",
    "preprocess.window={center: 40, width: 400}",
    "preprocess.scale=null",
    "preprocess.preset=densenet",
    "methods=[integrated_gradients]",
    "methods.0.absolute=true",
    "targets=all",
    "heatmap.reduce=sum",
    "heatmap.polarity=positive",
    "heatmap.clip={mode: mass}",
    "output.formats=[npy, png]",
    "output.colormap=viridis",
    "output.alpha=0.3",
    "output.montage.slices=even",
    "output.montage.n=4",
    "output.display.transform=percentile",
    "output.display.percentile=95",
    "output.display.gamma=0.7",
    "output.overlay_outline=true",
    "runtime.seed=1",
    "runtime.jit=true",
    "runtime.precision=mixed",
]
# Every setting that never changes a map: where or how the maps are computed, or what follows the run.
OTHER_SETTINGS = [
    "output.dir={study}/elsewhere",
    "runtime.batch_size=3",
    "runtime.resume=false",
    "runtime.progress=true",
    "runtime.overlap_io=false",
    "runtime.read_timeout=5",
    "runtime.max_abandoned_reads=1",
    "runtime.executor=dask",
    "runtime.dask.address=tcp://scheduler:8786",
    "runtime.dask.workers=5",
    "runtime.dask.partition_size=4",
    "runtime.dask.timeout=5",
    "evaluate=true",
    "evaluate.faithfulness=false",
    "evaluate.baseline=zeros",
    "evaluate.step_percent=10",
    "evaluate.topk_percent=10",
    "evaluate.sanity_images=2",
    "evaluate.sanity_threshold=0.9",
]


def base(study: Path, out: str) -> dict[str, Any]:
    """A fast study config (one method, .npy maps only) with absolute paths."""
    return {
        "model": {"path": str(study / "model.keras")},
        "data": {"manifest": str(study / "manifest.csv"), "id_column": "image_id", "label_column": "label"},
        "methods": [{"name": "gradient", "absolute": False}],  # signed, so every polarity is valid
        "output": {"dir": str(study / out), "formats": ["npy"]},
        "runtime": {"batch_size": 4, "progress": False},
    }


@pytest.fixture(scope="module")
def copies(study: Path) -> Path:
    """The study with a copy of its model and manifest, and an image folder, for the path keys."""
    shutil.copy(study / "model.keras", study / "copy.keras")
    shutil.copy(study / "manifest.csv", study / "copy.csv")
    (study / "sub").mkdir(exist_ok=True)
    return study


def fingerprint(study: Path, *overrides: str, checksum: str = "0" * 64) -> str:
    data = apply_overrides(base(study, "fingerprint"), [o.replace("{study}", str(study)) for o in overrides])
    return _fingerprint(Config.from_dict(data), checksum)


def _fields(section: type) -> dict:
    """The fields of a pydantic model or a pydantic dataclass (the library's specs are the latter)."""
    return getattr(section, "__pydantic_fields__", None) or section.model_fields


def schema_keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[str]:
    """Every leaf key of the config schema, dotted."""
    for name, field in _fields(model).items():
        options = (field.annotation, *typing.get_args(field.annotation))
        sections = [
            a
            for a in options
            if isinstance(a, type) and (issubclass(a, BaseModel) or hasattr(a, "__pydantic_fields__"))
        ]
        if sections:
            yield from schema_keys(sections[0], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_every_setting_is_classified():
    listed = [o.split("=", 1)[0] for o in MAP_SETTINGS + OTHER_SETTINGS]
    unlisted = [k for k in schema_keys() if not any(k == key or k.startswith(key + ".") for key in listed)]
    assert unlisted == []  # a new setting must be put in one of the two lists


@pytest.mark.parametrize("override", MAP_SETTINGS)
def test_a_setting_that_changes_maps_changes_the_fingerprint(copies, override):
    assert fingerprint(copies, override) != fingerprint(copies)


@pytest.mark.parametrize("override", OTHER_SETTINGS)
def test_a_setting_that_never_changes_maps_keeps_the_fingerprint(copies, override):
    assert fingerprint(copies, override) == fingerprint(copies)


def test_a_changed_model_file_changes_the_fingerprint(study):
    assert fingerprint(study, checksum="1" * 64) != fingerprint(study)


@pytest.mark.parametrize(("key", "value"), [("precision", "mixed"), ("jit", True)])
def test_resume_after_changing_precision_or_jit_recomputes_every_map(study, monkeypatch, capsys, key, value):
    config = base(study, f"resume_{key}")
    assert medxai.run(config).maps == 4
    processed = count_processed(monkeypatch)
    changed = medxai.run(config, overrides=[f"runtime.{key}={json.dumps(value)}"])
    assert "recomputing" in capsys.readouterr().err
    assert changed.resumed == 0 and changed.maps == 4 and len(processed) == 7
    assert json.loads((changed.output_dir / "run.json").read_text())["config"]["runtime"][key] == value
    processed.clear()
    again = medxai.run(config, overrides=[f"runtime.{key}={json.dumps(value)}"])
    assert again.resumed == 4 and sorted(processed) == FAILING  # the new setting resumes its own maps


def test_resume_with_a_smaller_batch_size_keeps_the_maps(study, monkeypatch):
    config = base(study, "resume_batch")
    medxai.run(config)
    processed = count_processed(monkeypatch)
    summary = medxai.run(config, overrides=["runtime.batch_size=1"])
    assert summary.resumed == 4 and sorted(processed) == FAILING


def run_json(summary: medxai.RunSummary) -> dict[str, Any]:
    return json.loads((summary.output_dir / "run.json").read_text())["config"]


def test_overrides_apply_to_a_dict(study):
    config = base(study, "dict_overrides")
    summary = medxai.run(config, overrides=["runtime.batch_size=3", "output.formats=[npy, png]"])
    recorded = run_json(summary)
    assert recorded["runtime"]["batch_size"] == 3 and recorded["output"]["formats"] == ["npy", "png"]
    assert list((summary.output_dir / "maps" / "gradient").glob("*.png"))
    assert config["runtime"]["batch_size"] == 4  # the caller's dict is not modified


def test_overrides_apply_to_a_config_and_keep_its_paths(study, tmp_path, monkeypatch):
    config = Config.from_dict(base(study, "unused"))
    monkeypatch.chdir(tmp_path)  # the config's paths are absolute: they do not move with the current directory
    summary = medxai.run(config, overrides=["runtime.batch_size=3", "output.dir=relative"])
    assert summary.output_dir == tmp_path / "relative"  # a relative override resolves against the current directory
    recorded, original = run_json(summary), config.to_dict()
    assert recorded["runtime"]["batch_size"] == 3 and config.runtime.batch_size == 4
    assert recorded["model"] == original["model"] and recorded["data"] == original["data"]
    assert recorded["data"]["root"] == str(study)
    assert not (study / "unused").exists()


@pytest.mark.parametrize("kind", ["dict", "config"])
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("runtime.batch_sise=3", "runtime.batch_sise: unknown key (did you mean 'runtime.batch_size'?)"),
        ("runtime.speed=3", "runtime.speed: unknown key"),
        ("runtime.batch_size=0", "runtime.batch_size: expected a positive integer, got 0"),
    ],
)
def test_bad_overrides_raise_config_error_naming_the_key(study, kind, override, message):
    config = base(study, "never_written")
    with pytest.raises(ConfigError) as caught:
        medxai.run(config if kind == "dict" else Config.from_dict(config), overrides=[override])
    assert message in str(caught.value)
    assert not (study / "never_written").exists()
