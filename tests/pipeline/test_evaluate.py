"""``medxai evaluate``: figures computed from the saved maps, masks and the model."""

from __future__ import annotations

import csv
import json
import shutil

import keras
import numpy as np
import pytest
import skimage.io
import yaml
from analytic_models import linear_model, tiny_model

import medxai
from medxai.cli import main
from medxai.io import read_image
from medxai.io.index import csv_text, read_index
from medxai.methods import registry
from medxai.metrics import curve_area, deletion_curve, gini, relevance_mass, topk_iou
from medxai.metrics.randomisation import randomised_copy, weighted_layers
from medxai.pipeline.evaluation import (
    COMPARISON_COLUMNS,
    METRICS_COLUMNS,
    RECOMMENDATION_COLUMNS,
    SANITY_COLUMNS,
    EvaluationError,
    EvaluationSpec,
    evaluate_run,
)


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
            assert float(row["completeness"]) == pytest.approx(
                float(entry.get("relative_delta", entry.get("delta"))), abs=1e-4
            )
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
    assert evaluated.sanity["input_as_map"]["verdict"] == "FAIL"
    assert evaluated.sanity["input_as_map"]["final_spearman_abs"] == pytest.approx(1.0)
    steps = read(run_dir / "sanity.csv")
    assert tuple(steps[0]) == SANITY_COLUMNS
    layers = [s["layer"] for s in steps if s["method"] == "gradient"]
    assert len(layers) == 2 and layers[0].startswith("dense") and layers[1].startswith("conv2d")  # top layer first
    record = json.loads((run_dir / "evaluation.json").read_text())
    assert record["sanity"]["input_as_map"]["passed"] is False and record["spec"]["sanity_images"] == 2
    assert record["spec"]["sanity_seeds"] == 3 and record["sanity"]["gradient"]["seeds"] == 3
    assert "medxai's convention" in evaluated.table()


def test_comparison_and_recommendation_files(evaluated, run_dir):
    """(Before the CLI test below writes the files again without the curves.)"""
    comparison = read(run_dir / "comparison.csv")
    assert tuple(comparison[0]) == COMPARISON_COLUMNS == ("metric", "method_a", "method_b", "diff", "ci_low", "ci_high")
    road = {(r["method_a"], r["method_b"]): r for r in comparison if r["metric"] == "road"}
    assert set(road) == {
        ("integrated_gradients", "gradient"), ("integrated_gradients", "input_as_map"), ("gradient", "input_as_map")
    }  # fmt: skip
    metrics = read(run_dir / "metrics.csv")
    by = {(r["method"], r["image_id"]): float(r["road"]) for r in metrics}
    assert all(0 <= v <= 1 for v in by.values())
    pair = road[("gradient", "input_as_map")]
    expected = np.mean([by[("gradient", f"img{i}")] - by[("input_as_map", f"img{i}")] for i in range(3)])
    assert float(pair["diff"]) == pytest.approx(expected, abs=2e-4)
    assert float(pair["ci_low"]) <= float(pair["diff"]) <= float(pair["ci_high"])
    rows = {r["method"]: r for r in read(run_dir / "recommendation.csv")}
    assert tuple(read(run_dir / "recommendation.csv")[0]) == RECOMMENDATION_COLUMNS
    assert rows["input_as_map"]["randomisation"] == "FAIL" and rows["input_as_map"]["recommended"] == "no"
    for row in rows.values():  # 2 images in the check; no localisation masks missing: ranks given, ties at 3 maps
        assert "sanity_underpowered" in row["flags"].split(";") and row["stability"] == ""
        assert row["localisation_rank"] == "1" and row["faithfulness_rank"] in ("1", "")
    record = json.loads((run_dir / "evaluation.json").read_text())["recommendation"]
    assert "randomisation check" in record["rule"] and any("2 image(s), fewer than 10" in n for n in record["notes"])
    table = evaluated.table()
    assert "recommendation (ranks: 1 = best" in table and "input_as_map: not recommended: fails the randomisation" in (
        table
    )


def decoder_of(config_path):
    from medxai.pipeline.config import load_config
    from medxai.pipeline.decoder import Decoder

    return Decoder(load_config(config_path))


def deletion_area(decoder, entry, heatmap, **kwargs):
    tensor = decoder.preprocessor(read_image(entry["source_path"]))[0]
    c = int(entry["class_index"])
    f, s = deletion_curve(lambda x: decoder.scores.predict(x, 8)[:, c], tensor, heatmap, **kwargs)
    return curve_area(f, s)


def test_deletion_ranks_the_saved_map_when_the_geometry_is_the_models(evaluated, run_dir):
    registry.register_method(InputAsMap)
    try:
        decoder = decoder_of(run_dir.parent / "c.yaml")
    finally:
        registry._registered.pop("input_as_map", None)
    index = [r for r in read(run_dir / "index.csv") if r["method"] == "gradient"]
    areas = [deletion_area(decoder, e, np.load(run_dir / e["npy_path"]), step_percent=25) for e in index]
    mean = next(r["mean"] for r in evaluated.summary if r["method"] == "gradient" and r["metric"] == "deletion_auc")
    assert mean == pytest.approx(np.mean(areas), abs=1e-9)


def test_randomised_copy_leaves_the_model_alone():
    model = tiny_model()
    before = [w.copy() for w in model.get_weights()]
    copy = randomised_copy(model, weighted_layers(model)[:1], seed=3)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights(), copy.get_weights())]
    assert changed == [False, False, True, False]  # conv kernel, conv bias kept; dense kernel redrawn
    np.testing.assert_array_equal(copy.get_weights()[3], np.zeros(2))  # dense bias: its initializer, zeros


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
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="sanity_seeds: expected a positive integer"):
            EvaluationSpec(sanity_seeds=bad)


def test_cli_evaluate_prints_the_table(run_dir, capsys):
    registry.register_method(InputAsMap)
    try:
        assert main(["evaluate", str(run_dir), "--no-faithfulness", "--sanity-images", "0", "--no-progress"]) == 0
    finally:
        registry._registered.pop("input_as_map", None)
    out = capsys.readouterr().out
    assert "integrated_gradients" in out and "maps evaluated" in out
    assert "recommendation (ranks: 1 = best" in out and "the randomisation check did not run" in out
    rows = read(run_dir / "metrics.csv")
    assert all(r["deletion_auc"] == "" for r in rows)
    assert read(run_dir / "sanity.csv") == []


def test_classifier_metrics_leave_the_region_columns_empty_and_old_indexes_read_the_same(run_dir, tmp_path):
    """A classifier's metrics.csv only gains empty channel/region/component; an index without them reads the same."""
    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old)
    header, rows = read_index(old / "index.csv")
    dropped = ("channel", "region", "component", "region_voxels", "region_score", "region_path")
    columns = [c for c in header if c not in dropped]
    (old / "index.csv").write_text(csv_text(rows, columns))
    spec = EvaluationSpec(faithfulness=False, sanity_images=0)
    registry.register_method(InputAsMap)
    try:
        evaluate_run(run_dir, spec, progress=False)
        evaluate_run(old, spec, progress=False)
    finally:
        registry._registered.pop("input_as_map", None)
    now, before = read(run_dir / "metrics.csv"), read(old / "metrics.csv")
    assert now == before and len(now) == 9
    assert all(r["channel"] == r["region"] == r["component"] == "" and r["class_index"] for r in now)
    assert all(r["gini"] and r["relevance_mass"] and not r["error"] for r in now)


class ZeroMap(medxai.XAIMethod):
    """A degenerate 'method': every attribution is 0, so every heatmap is constant."""

    name = "zero_map"

    def attribute(self, images, targets, *, return_delta=False):
        images, _ = self.engine.check_inputs(images, targets)
        return np.zeros_like(images)


class Flaky(medxai.XAIMethod):
    """Raises once its ``allowed`` calls are spent (e.g. out of memory on a randomised copy)."""

    name = "flaky"
    allowed = 10**6

    def attribute(self, images, targets, *, return_delta=False):
        images, _ = self.engine.check_inputs(images, targets)
        Flaky.allowed -= 1
        if Flaky.allowed < 0:
            raise RuntimeError("flaky gave up")
        return images.copy()


def conv_bn_relu_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="dense")(x))


def write_study(root, model, images, methods, **extra):
    model.save(root / "model.keras")
    rows = []
    for i, (name, mask) in enumerate(images):
        rows.append(f"img{i},{name},{i % 2},{mask or ''}")
    (root / "manifest.csv").write_text("image_id,path,label,mask\n" + "\n".join(rows) + "\n")
    config = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id", "label_column": "label", "mask_column": "mask"},
        "methods": methods,
        "output": {"dir": "run"},
        "runtime": {"progress": False},
        **extra,
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    assert medxai.run(root / "c.yaml").exit_code == 0
    return root / "run"


@pytest.fixture
def extra_methods():
    for cls in (ZeroMap, Flaky):
        registry.register_method(cls)
    Flaky.allowed = 10**6
    try:
        yield
    finally:
        for cls in (ZeroMap, Flaky):
            registry._registered.pop(cls.name, None)


def test_batchnorm_model_sanity_check_and_per_method_errors(tmp_path, extra_methods, capsys):
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        np.save(tmp_path / f"img{i}.npy", rng.random((16, 16)).astype(np.float32))
        mask = np.zeros((16, 16), np.uint8)
        mask[4:9, 5:9] = 255
        skimage.io.imsave(tmp_path / f"mask{i}.png", mask, check_contrast=False)
        images.append((f"img{i}.npy", f"mask{i}.png"))
    run = write_study(tmp_path, conv_bn_relu_model(), images, ["gradient", "zero_map", "flaky"])
    Flaky.allowed = 1  # the trained model's maps, then a failure on the first randomised copy
    result = evaluate_run(run, EvaluationSpec(sanity_images=2, sanity_seeds=2, step_percent=25), progress=False)
    grad = [r for r in read(run / "sanity.csv") if r["method"] == "gradient"]
    assert [r["layer"] for r in grad] == ["dense", "bn", "conv"]
    assert all(
        np.isfinite(float(r[k])) for r in grad for k in ("spearman", "spearman_sd", "spearman_abs", "spearman_abs_sd")
    )
    assert result.sanity["gradient"]["verdict"] in ("PASS", "FAIL")
    flaky = result.sanity["flaky"]
    assert flaky["verdict"] == "error" and flaky["passed"] is None
    assert flaky["error"] == "seed 0, step 1 (dense): RuntimeError: flaky gave up"
    assert any(r["method"] == "flaky" and r["error"] == flaky["error"] for r in read(run / "sanity.csv"))
    assert result.sanity["zero_map"]["verdict"] == "undefined"  # a constant map has no ranking
    record = json.loads((run / "evaluation.json").read_text())  # strict JSON: NaN is written as null
    assert record["sanity"]["flaky"]["verdict"] == "error" and record["sanity"]["zero_map"]["final_spearman"] is None
    metrics = read(run / "metrics.csv")
    assert len(metrics) == 6 and all(r["gini"] != "" for r in metrics)
    for row in (r for r in metrics if r["method"] == "zero_map"):
        assert [row[k] for k in ("pointing_game", "relevance_mass", "topk_iou", "deletion_auc", "insertion_auc")] == [
            ""
        ] * 5
    summary = {(r["method"], r["metric"]): r for r in read(run / "summary.csv")}
    assert summary[("zero_map", "pointing_game")]["n"] == "0" and summary[("gradient", "pointing_game")]["n"] == "2"
    Flaky.allowed = 1
    assert main(["evaluate", str(run), "--no-faithfulness", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sanity check flaky: error (seed 0, step 1 (dense): RuntimeError: flaky gave up)" in out
    assert "sanity check zero_map: undefined" in out


def test_faithfulness_ranks_the_methods_map_in_model_geometry(tmp_path):
    from medxai.heatmap import to_heatmap
    from medxai.preprocess import resize_spatial

    picture = (np.random.default_rng(3).random((40, 40)) * 255).astype(np.uint8)
    skimage.io.imsave(tmp_path / "wide.png", picture, check_contrast=False)
    model, _, _ = linear_model((16, 16, 1), 2)  # the gradient map is |W[:, c]|: rough, so blurring reorders it
    run = write_study(tmp_path, model, [("wide.png", None)], ["gradient"])
    spec = EvaluationSpec(sanity_images=0, baseline="zeros", step_percent=10)
    result = evaluate_run(run, spec, progress=False)
    got = next(r["mean"] for r in result.summary if r["metric"] == "deletion_auc")
    decoder = decoder_of(tmp_path / "c.yaml")
    entry = read(run / "index.csv")[0]
    tensor = decoder.preprocessor(read_image(entry["source_path"]))[0]
    own = to_heatmap(decoder.methods[0].attribute(tensor[None], [int(entry["class_index"])])[0], decoder.policy)
    saved = np.load(run / entry["npy_path"])
    assert saved.shape == (40, 40) and own.shape == (16, 16)
    resampled = resize_spatial(saved[..., None], (16, 16))[..., 0]
    expected = deletion_area(decoder, entry, own, baseline="zeros", step_percent=10)
    blurred = deletion_area(decoder, entry, resampled, baseline="zeros", step_percent=10)
    assert abs(blurred - expected) > 0.02  # the two rankings really differ here (areas under softmax scores)
    assert got == pytest.approx(expected, abs=1e-9)


def test_evaluate_refuses_a_model_that_is_not_the_one_that_made_the_maps(tmp_path, capsys):
    """Issue 18, item 5: a retrained model saved at the same path would score the old maps without a word."""
    picture = (np.random.default_rng(5).random((16, 16)) * 255).astype(np.uint8)
    skimage.io.imsave(tmp_path / "a.png", picture, check_contrast=False)
    run = write_study(tmp_path, tiny_model((16, 16, 1), seed=0), [("a.png", None)], ["gradient"])
    run_sha = json.loads((run / "run.json").read_text())["model"]["sha256"]
    original = (tmp_path / "model.keras").read_bytes()
    retrained = tiny_model((16, 16, 1), seed=1)
    retrained.save(tmp_path / "model.keras")  # same path, other weights
    spec = EvaluationSpec(sanity_images=0)
    with pytest.raises(EvaluationError, match=f"SHA-256 is [0-9a-f]{{64}}, run.json records {run_sha}.*--model"):
        evaluate_run(run, spec, progress=False)
    assert not (run / "metrics.csv").exists()
    assert main(["evaluate", str(run), "--sanity-images", "0", "--no-progress"]) == 2
    assert run_sha in capsys.readouterr().err
    # on purpose: --model names the other model, and evaluation.json records it
    assert (
        main(["evaluate", str(run), "--sanity-images", "0", "--no-progress", "--model", str(tmp_path / "model.keras")])
        == 0
    )
    record = json.loads((run / "evaluation.json").read_text())["model"]
    assert record["run_sha256"] == run_sha and record["sha256"] != run_sha and record["same_as_run"] is False
    (tmp_path / "model.keras").write_bytes(original)  # the very file that made the maps: accepted
    evaluate_run(run, spec, progress=False)
    assert json.loads((run / "evaluation.json").read_text())["model"]["same_as_run"] is True


def insensitive_model():
    """The tiny model with its convolution zeroed: the output is softmax(dense bias), whatever the input."""
    model = tiny_model()
    conv = next(layer for layer in model.layers if layer.weights and "conv" in layer.name)
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    return model


def test_run_prints_the_recommendation_and_flags_an_insensitive_model(tmp_path, capsys):
    rng = np.random.default_rng(4)
    images = []
    for i in range(4):
        np.save(tmp_path / f"img{i}.npy", rng.random((16, 16)).astype(np.float32))
        images.append((f"img{i}.npy", None))
    registry.register_method(InputAsMap)
    try:
        model = insensitive_model()
        sample = rng.random((2, 16, 16, 1)).astype(np.float32)
        np.testing.assert_allclose(model.predict(sample, verbose=0)[0], model.predict(sample * 0, verbose=0)[0])
        model.save(tmp_path / "model.keras")
        (tmp_path / "manifest.csv").write_text(
            "image_id,path,label\n" + "".join(f"img{i},{name},0\n" for i, (name, _) in enumerate(images))
        )
        config = {
            "model": {"path": "model.keras"},
            "data": {"manifest": "manifest.csv", "id_column": "image_id", "label_column": "label"},
            "methods": ["input_as_map", "gradient"],
            "output": {"dir": "run"},
            "runtime": {"progress": False},
            "evaluate": {"sanity_images": 4, "sanity_seeds": 2, "step_percent": 25, "road": False},
        }
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
        assert main(["run", str(tmp_path / "c.yaml")]) == 0
    finally:
        registry._registered.pop("input_as_map", None)
    out = capsys.readouterr().out
    assert "recommendation (ranks: 1 = best" in out and "model_insensitive: the model does not react to deletion" in out
    assert "sanity_underpowered (input_as_map, gradient): 4 image(s), fewer than 10" in out
    rows = {r["method"]: r for r in read(tmp_path / "run" / "recommendation.csv")}
    assert rows["input_as_map"]["flags"] == "model_insensitive;sanity_underpowered"
    assert rows["input_as_map"]["randomisation"] == "FAIL" and rows["gradient"]["randomisation"] == "undefined"
    assert all(r["recommended"] == "no" and r["faithfulness_rank"] == "" for r in rows.values())
    assert all(r["localisation_rank"] == "" for r in rows.values())  # no masks
    metrics = read(tmp_path / "run" / "metrics.csv")
    assert all(r["road"] == "" for r in metrics) and any(r["deletion_auc"] != "" for r in metrics)  # road: false


def test_the_index_relative_stability_flags_unstable_maps(run_dir, tmp_path):
    """index.csv's ``stability_relative`` (the largest change over the map's norm): a mean above 0.5 is
    ``unstable``; ``stability`` (in each method's units) is neither compared nor flagged."""
    copy = tmp_path / "with_stability"
    shutil.copytree(run_dir, copy)
    header, rows = read_index(copy / "index.csv")
    by_method = {"integrated_gradients": 0.05, "gradient": 0.9, "input_as_map": ""}  # input_as_map: not computed
    for k, row in enumerate(rows):
        value = by_method[row["method"]]
        row["stability_relative"] = value if value == "" else value + 0.01 * k
        row["stability"] = "" if value == "" else 100.0  # in the method's own units: never flagged
    (copy / "index.csv").write_text(csv_text(rows, [*header, "stability", "stability_relative"]))
    registry.register_method(InputAsMap)
    try:
        result = evaluate_run(copy, EvaluationSpec(faithfulness=False, sanity_images=0), progress=False)
    finally:
        registry._registered.pop("input_as_map", None)
    table = {r["method"]: r for r in read(copy / "recommendation.csv")}
    assert table["gradient"]["flags"] == "unstable" and table["integrated_gradients"]["flags"] == ""
    assert float(table["integrated_gradients"]["stability"]) < 0.1 and table["input_as_map"]["stability"] == ""
    assert not any(d.metric == "stability" for d in result.comparison)  # each method's own units: not compared
    assert "unstable (gradient): its maps change under small input noise by" in result.table()
