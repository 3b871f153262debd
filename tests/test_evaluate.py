"""``medxai evaluate``: figures computed from the saved maps, masks and the model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import skimage.io
import yaml
from analytic_models import tiny_model

import medxai
from medxai import registry
from medxai.cli import main
from medxai.evaluation import gini, relevance_mass, topk_iou
from medxai.sanity_check import randomised_copy, weighted_layers
from medxai.evaluate import METRICS_COLUMNS, EvaluationError, EvaluationSpec, evaluate_run


class InputAsMap(medxai.XAIMethod):
    """A 'method' that ignores the model: the map is the input itself (must fail the sanity check)."""

    name = "input_as_map"

    def attribute(self, images, targets, *, return_delta=False):
        images, _ = self.engine.check_inputs(images, targets)
        return images.copy()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    tiny_model().save(root / "model.keras")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        np.save(root / f"img{i}.npy", rng.random((16, 16)).astype(np.float32))
        mask = np.zeros((16, 16), np.uint8)
        mask[4 : 8 + i, 5:9] = 255
        skimage.io.imsave(root / f"mask{i}.png", mask, check_contrast=False)
        rows.append(f"img{i},img{i}.npy,{i % 2},mask{i}.png")
    (root / "manifest.csv").write_text("image_id,path,label,mask\n" + "\n".join(rows) + "\n")
    registry.register_method(InputAsMap)
    config = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id", "label_column": "label", "mask_column": "mask"},
        "methods": [{"name": "ig", "steps": 8}, "gradient", "input_as_map"],
        "output": {"dir": "run"},
        "runtime": {"progress": False},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    try:
        assert medxai.run(root / "c.yaml").exit_code == 0
        yield root / "run"
    finally:
        registry._registered.pop("input_as_map", None)


@pytest.fixture(scope="module")
def evaluated(run_dir):
    registry.register_method(InputAsMap)
    try:
        yield evaluate_run(run_dir, EvaluationSpec(sanity_images=2, step_percent=25), progress=False)
    finally:
        registry._registered.pop("input_as_map", None)


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_metrics_csv_has_one_row_per_map_with_exact_figures(evaluated, run_dir):
    rows = read(run_dir / "metrics.csv")
    assert len(rows) == evaluated.maps == 9 and tuple(rows[0]) == METRICS_COLUMNS
    index = {(r["image_id"], r["method"]): r for r in read(run_dir / "index.csv")}
    for row in rows:
        entry = index[(row["image_id"], row["method"])]
        heatmap = np.load(run_dir / entry["npy_path"])
        mask = skimage.io.imread(entry["mask_path"]) > 0
        assert float(row["gini"]) == pytest.approx(gini(heatmap), abs=1e-4)
        assert float(row["relevance_mass"]) == pytest.approx(relevance_mass(heatmap, mask), abs=1e-4)
        assert float(row["topk_iou"]) == pytest.approx(topk_iou(heatmap, mask, percent=5), abs=1e-4)
        assert row["pointing_game"] in ("0.0000", "1.0000")
        assert 0 <= float(row["deletion_auc"]) <= 1 and 0 <= float(row["insertion_auc"]) <= 1
        if row["method"] == "integrated_gradients":
            assert float(row["completeness"]) == pytest.approx(float(entry["delta"]), abs=1e-4)
        else:
            assert row["completeness"] == ""


def test_summary_per_method(evaluated, run_dir):
    summary = read(run_dir / "summary.csv")
    gini_ig = next(r for r in summary if r["method"] == "integrated_gradients" and r["metric"] == "gini")
    values = [float(r["gini"]) for r in read(run_dir / "metrics.csv") if r["method"] == "integrated_gradients"]
    assert float(gini_ig["mean"]) == pytest.approx(np.mean(values), abs=1e-4) and gini_ig["n"] == "3"
    assert not any(r["metric"] == "completeness" and r["method"] == "gradient" for r in summary)


def test_sanity_check_fails_a_method_that_ignores_the_model(evaluated, run_dir):
    assert evaluated.sanity["input_as_map"]["passed"] is False
    assert evaluated.sanity["input_as_map"]["final_spearman"] == pytest.approx(1.0)
    assert evaluated.sanity["gradient"]["final_spearman"] < 0.99
    steps = read(run_dir / "sanity.csv")
    layers = [s["layer"] for s in steps if s["method"] == "gradient"]
    assert len(layers) == 2 and layers[0].startswith("dense") and layers[1].startswith("conv2d")  # top layer first
    record = json.loads((run_dir / "evaluation.json").read_text())
    assert record["sanity"]["input_as_map"]["passed"] is False and record["spec"]["sanity_images"] == 2


def test_randomised_copy_leaves_the_model_alone():
    model = tiny_model()
    before = [w.copy() for w in model.get_weights()]
    copy = randomised_copy(model, weighted_layers(model)[:1], seed=3)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights(), copy.get_weights())]
    assert changed == [False, False, True, True]  # conv kernel, conv bias kept; dense kernel, bias redrawn


def test_not_a_run_folder(tmp_path, capsys):
    with pytest.raises(EvaluationError, match="not a finished medxai run"):
        evaluate_run(tmp_path)
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a finished medxai run" in capsys.readouterr().err


def test_bad_spec():
    with pytest.raises(ValueError, match="baseline"):
        EvaluationSpec(baseline="noise")
    with pytest.raises(ValueError, match="step_percent"):
        EvaluationSpec(step_percent=0)


def test_cli_evaluate_prints_the_table(run_dir, capsys):
    registry.register_method(InputAsMap)
    try:
        assert main(["evaluate", str(run_dir), "--no-faithfulness", "--sanity-images", "0", "--no-progress"]) == 0
    finally:
        registry._registered.pop("input_as_map", None)
    out = capsys.readouterr().out
    assert "integrated_gradients" in out and "maps evaluated" in out
    rows = read(run_dir / "metrics.csv")
    assert all(r["deletion_auc"] == "" for r in rows)
    assert read(run_dir / "sanity.csv") == []
