"""Per-map uncertainty in a run and in the notebook API: ``<stem>.sd.npy``, ``sd_path`` and ``stability``."""

import numpy as np
import pytest
from analytic_models import tiny_model
from study_helpers import read_index, write_config

import medxai
from medxai.io.index import index_columns
from medxai.pipeline.config import ConfigError

METHODS = [{"name": "smoothgrad", "samples": 4, "uncertainty": {"samples": 3}}, {"name": "gradient"}]


def _ok(rows, method):
    return [r for r in rows if r["status"] == "ok" and r["method"] == method]


def test_a_run_writes_the_sd_map_beside_the_map_and_fills_the_columns(study):
    summary = medxai.run(
        write_config(study, "uncertain", methods=METHODS, output={"dir": "uncertain", "formats": ["npy", "nifti"]})
    )
    assert {"sd_path", "stability", "stability_relative"} <= set(index_columns())
    rows = read_index(summary.output_dir / "index.csv")
    smooth = _ok(rows, "smoothgrad")
    assert smooth
    for row in smooth:
        assert row["sd_path"] == row["npy_path"][: -len(".npy")] + ".sd.npy"
        sd = np.load(summary.output_dir / row["sd_path"])
        heatmap = np.load(summary.output_dir / row["npy_path"])
        assert sd.dtype == np.float32 and sd.shape == heatmap.shape  # the map's geometry (the source's)
        assert np.all(sd >= 0) and np.any(sd > 0)
        assert (summary.output_dir / (row["sd_path"][: -len(".npy")] + ".nii.gz")).is_file()
        assert float(row["stability"]) > 0 and float(row["stability_relative"]) > 0
    for row in _ok(rows, "gradient"):  # uncertainty off: nothing computed
        assert row["sd_path"] == "" and row["stability"] == "" and row["stability_relative"] == ""
    again = medxai.run(write_config(study, "uncertain2", methods=METHODS, output={"dir": "uncertain2"}))
    rerun = {
        (r["image_id"], r["class_index"]): r for r in _ok(read_index(again.output_dir / "index.csv"), "smoothgrad")
    }
    for row in smooth:  # seeded: a rerun gives the same figures and the same SD maps
        other = rerun[(row["image_id"], row["class_index"])]
        assert other["stability"] == row["stability"]
        np.testing.assert_array_equal(
            np.load(again.output_dir / other["sd_path"]), np.load(summary.output_dir / row["sd_path"])
        )


def test_a_deterministic_methods_sd_map_is_zero_in_a_run(study):
    methods = [{"name": "gradient", "uncertainty": {"samples": 2}}]
    summary = medxai.run(write_config(study, "zero_sd", methods=methods))
    rows = _ok(read_index(summary.output_dir / "index.csv"), "gradient")
    assert rows
    for row in rows:
        assert np.all(np.load(summary.output_dir / row["sd_path"]) == 0)
        assert row["stability"] != ""


@pytest.mark.parametrize(
    "value,key",
    [("yes", "methods[0].uncertainty"), ({"samples": 0}, "methods[0].uncertainty.samples")],
)
def test_a_bad_uncertainty_names_the_key(study, value, key):
    methods = [{"name": "smoothgrad", "uncertainty": value}]
    with pytest.raises(ConfigError) as info:
        medxai.run(write_config(study, "bad_uncertainty", methods=methods))
    assert any(p.startswith(key + ":") for p in info.value.problems), info.value.problems


def test_the_notebook_api_gives_sd_and_stability():
    images = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    methods = [{"name": "smoothgrad", "samples": 4, "uncertainty": {"samples": 2}}, "gradient"]
    results = medxai.explain(tiny_model(), images, methods=methods, targets=[0])
    smooth = [r for r in results if r.method == "smoothgrad"]
    assert smooth and all(r.sd.shape == r.heatmap.shape and r.stability > 0 for r in smooth)
    assert all(r.stability_relative > 0 for r in smooth)
    plain = [r for r in results if r.method == "gradient"]
    assert all(r.sd is None and r.stability is None for r in plain)


def test_the_runs_seed_seeds_the_stability_noise():
    from medxai.methods.registry import build_methods

    specs = [("gradient", None, {"uncertainty": True}), ("smoothgrad", None, {"uncertainty": {"seed": 2}})]
    methods = build_methods(
        specs, tiny_model(), output="logits", batch_size=4, heatmap=None, jit=False, precision="float32", seed=5
    )
    assert [m.uncertainty.seed for m in methods] == [5, 2]
