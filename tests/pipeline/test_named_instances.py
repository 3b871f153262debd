"""Named instances: one method twice in a run with different settings, each under its own name."""

import json

import numpy as np
import pytest
from study_helpers import read_index, write_config

import medxai
from medxai.methods.registry import available_methods
from medxai.pipeline.config import Config, ConfigError


def config_of(study, methods):
    return Config.from_dict(
        {
            "model": {"path": "model.keras"},
            "data": {"manifest": "manifest.csv"},
            "output": {"dir": "o"},
            "methods": methods,
        },
        base_dir=study,
        method_registry=available_methods,
    )


def test_an_instance_names_its_method_and_keeps_its_parameters(study):
    config = config_of(study, [{"name": "ig_blur", "method": "ig", "baseline": "blur", "steps": 4}, "gradient"])
    spec = config.methods[0]
    assert (spec.name, spec.method, spec.registered, spec.params) == (
        "ig_blur",
        "ig",
        "ig",
        {"baseline": "blur", "steps": 4},
    )
    assert config.to_dict()["methods"] == [
        {"name": "ig_blur", "method": "ig", "baseline": "blur", "steps": 4},
        {"name": "gradient"},
    ]
    assert Config.from_dict(config.to_dict(), method_registry=available_methods).methods == config.methods


@pytest.mark.parametrize(
    "entry,problem",
    [
        (
            {"name": "ig_x", "method": "integrated_gradientz"},
            "methods[0].method: unknown method 'integrated_gradientz'",
        ),
        ({"name": "ig/x", "method": "ig"}, "methods[0].name: an instance name is a folder name"),
        ({"name": "ig_x", "method": "ig", "stepz": 3}, "methods[0].stepz: unknown parameter for ig"),
    ],
)
def test_bad_instances_name_the_key(study, entry, problem):
    with pytest.raises(ConfigError) as info:
        config_of(study, [entry])
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_two_instances_of_one_method_in_one_run(study):
    methods = [
        {"name": "ig_zero", "method": "integrated_gradients", "steps": 4},
        {"name": "ig_blur", "method": "integrated_gradients", "steps": 4, "baseline": "blur"},
    ]
    summary = medxai.run(write_config(study, "instances", methods=methods))
    rows = [r for r in read_index(summary.output_dir / "index.csv") if r["status"] == "ok"]
    assert {r["method"] for r in rows} == {"ig_zero", "ig_blur"}
    by_image = {}
    for row in rows:
        assert row["npy_path"].startswith(f"maps/{row['method']}/")
        by_image.setdefault((row["image_id"], row["class_index"]), {})[row["method"]] = np.load(
            summary.output_dir / row["npy_path"]
        )
    assert any(not np.allclose(maps["ig_zero"], maps["ig_blur"]) for maps in by_image.values())
    record = json.loads((summary.output_dir / "run.json").read_text())
    assert [(m["name"], m["method"], m["params"]["baseline"]) for m in record["methods"]] == [
        ("ig_zero", "integrated_gradients", "zeros"),
        ("ig_blur", "integrated_gradients", "blur"),
    ]
    assert medxai.run(write_config(study, "instances", methods=methods)).resumed == summary.images - summary.errors


def test_the_same_instance_name_twice_is_refused(study):
    methods = [{"name": "ig_a", "method": "ig", "steps": 4}, {"name": "ig_a", "method": "gradient"}]
    with pytest.raises(medxai.StudyError, match=r"methods\[1\]: ig_a is configured twice"):
        medxai.run(write_config(study, "twice", methods=methods))
