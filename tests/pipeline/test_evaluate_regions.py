"""``medxai evaluate`` on region targets: figures against the region the run explained, by map key."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from study_helpers import region_run as study_run

import medxai
from medxai.metrics import deletion_curve, pointing_game, relevance_mass, topk_iou
from medxai.pipeline.evaluation import METRICS_COLUMNS, EvaluationSpec, _map_figures, evaluate_run, region_probability
from medxai.regions import ResolvedRegion


def pixelwise(shape=(16, 16, 1)) -> keras.Model:
    """out_p = sigmoid(4 x_p - 2): the output at p depends on the input at p only (and grows with it)."""
    inputs = keras.Input(shape)
    head = keras.layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer="ones", bias_initializer="zeros")
    out = head(inputs)
    model = keras.Model(inputs, out)
    head.set_weights([np.full((1, 1, 1, 1), 4.0, np.float32), np.array([-2.0], np.float32)])
    return model


def read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def region_run(tmp_path_factory):
    run_dir = study_run(tmp_path_factory.mktemp("evaluate_regions"), [{"name": "ig", "steps": 8}, "gradient"], ["npy"])
    result = evaluate_run(run_dir, EvaluationSpec(sanity_images=2, sanity_seeds=1, step_percent=25), progress=False)
    return run_dir, result


def test_region_run_is_evaluated_end_to_end(region_run):
    run_dir, result = region_run
    index = [r for r in read(run_dir / "index.csv") if r["status"] == "ok"]
    metrics = read(run_dir / "metrics.csv")
    assert index and len(metrics) == len(index) == result.maps
    assert tuple(metrics[0]) == METRICS_COLUMNS
    assert METRICS_COLUMNS[2:6] == ("class_index", "channel", "region", "component")
    keys = lambda r: (r["image_id"], r["method"], r["class_index"], r["region"], r["component"])  # noqa: E731
    assert sorted(map(keys, metrics)) == sorted(map(keys, index))  # one row per map, keyed as the index
    assert {r["region"] for r in metrics} == {"connected"} and {r["channel"] for r in metrics} == {"1"}
    assert {r["component"] for r in metrics} == {"1", "2"}
    by_key = {keys(r): r for r in index}
    for row in metrics:
        assert not row["error"], row["error"]
        source = by_key[keys(row)]
        heatmap = np.load(run_dir / source["npy_path"])
        region = np.load(run_dir / source["region_path"])  # what the writer saved: the region the run explained
        assert region.shape == heatmap.shape and region.dtype == bool
        assert float(row["relevance_mass"]) == pytest.approx(relevance_mass(heatmap, region), abs=1e-4)
        assert float(row["topk_iou"]) == pytest.approx(topk_iou(heatmap, region, percent=5.0), abs=1e-4)
        for name in ("deletion_auc", "insertion_auc"):  # the region's mean probability: in [0, 1]
            assert 0.0 <= float(row[name]) <= 1.0
    ig = [r for r in metrics if r["method"] == "integrated_gradients"]
    index_delta = {keys(r): float(r["relative_delta"]) for r in index if r["method"] == "integrated_gradients"}
    assert all(float(r["completeness"]) == pytest.approx(index_delta[keys(r)], abs=1e-4) for r in ig)
    sanity = read(run_dir / "sanity.csv")
    assert sanity and not any(r["error"] for r in sanity)  # the randomised models explained the same regions
    assert set(result.sanity) == {"integrated_gradients", "gradient"}
    assert all(v["verdict"] != "error" and v["images"] == 2 for v in result.sanity.values())


def test_ig_completeness_is_against_the_region_score():
    model = pixelwise()
    image = np.random.default_rng(1).random((1, 16, 16, 1)).astype(np.float32)
    mask = np.zeros((16, 16), bool)
    mask[3:9, 4:10] = True
    ig = medxai.IntegratedGradients(model, steps=64, output="probabilities")
    explanation = ig.explain(image, [medxai.Region(1, mask, "mean")])
    probabilities = 1.0 / (1.0 + np.exp(-(4.0 * image[0, ..., 0] - 2.0)))
    gap = probabilities[mask].mean() - 1.0 / (1.0 + np.exp(2.0))  # S(x) - S(0): the region's mean probability
    assert explanation.gap[0] == pytest.approx(gap, rel=1e-4)
    assert explanation.attributions[0].sum() == pytest.approx(gap, rel=1e-3)
    assert explanation.relative_delta[0] < 1e-3


def test_relevance_mass_inside_the_region_has_its_closed_form(tmp_path):
    heatmap = np.arange(64, dtype=np.float32).reshape(8, 8) / 63.0
    np.save(tmp_path / "map.npy", heatmap)
    small = np.zeros((4, 4), bool)
    small[1:3, 0:2] = True  # on the output grid; the map is at twice its size
    region = ResolvedRegion(1, small, "predicted")
    row = {"npy_path": "map.npy", "mask_path": "", "region": "predicted", "relative_delta": ""}
    figures = _map_figures(SimpleNamespace(out=tmp_path), row, EvaluationSpec(faithfulness=False), None, target=region)
    inside = heatmap[2:6, 0:4]  # nearest neighbour: each output pixel is 2 x 2 map pixels
    assert figures["relevance_mass"] == pytest.approx(float(inside.sum() / heatmap.sum()), rel=1e-6)
    assert figures["pointing_game"] == 0.0  # the peak is in the last row, outside


def test_a_map_concentrated_in_the_region_scores_mass_1_and_a_hit(tmp_path):
    region = np.zeros((8, 8), bool)
    region[2:5, 3:7] = True
    heatmap = np.where(region, np.linspace(0.2, 1.0, 64).reshape(8, 8), 0.0).astype(np.float32)
    np.save(tmp_path / "map.npy", heatmap)
    row = {"npy_path": "map.npy", "mask_path": "", "region": "border", "relative_delta": ""}
    target = ResolvedRegion(0, region, "border")
    figures = _map_figures(SimpleNamespace(out=tmp_path), row, EvaluationSpec(faithfulness=False), None, target=target)
    assert figures["relevance_mass"] == 1.0 and figures["pointing_game"] == 1.0
    assert pointing_game(heatmap, region) == 1.0


def test_a_region_row_without_its_region_is_an_error_not_a_mask_figure(tmp_path):
    np.save(tmp_path / "map.npy", np.ones((4, 4), np.float32))
    row = {"npy_path": "map.npy", "mask_path": "", "region": "predicted", "relative_delta": ""}
    with pytest.raises(ValueError, match="region"):
        _map_figures(SimpleNamespace(out=tmp_path), row, EvaluationSpec(faithfulness=False), None)


def test_deleting_the_region_lowers_its_score():
    model = pixelwise()
    image = np.full((16, 16, 1), 0.9, np.float32)
    mask = np.zeros((16, 16), bool)
    mask[4:10, 5:11] = True
    region = ResolvedRegion(0, mask, "predicted", "mean")

    def predict(images):
        return region_probability(np.asarray(model(images)), region)

    heatmap = mask.astype(np.float32)  # the region's pixels first
    fractions, scores = deletion_curve(predict, image, heatmap, baseline="zeros", step_percent=100 * 36 / 256)
    assert scores[0] == pytest.approx(1.0 / (1.0 + np.exp(-1.6)), rel=1e-5)  # sigmoid(4 * 0.9 - 2)
    assert scores[1] == pytest.approx(1.0 / (1.0 + np.exp(2.0)), rel=1e-5)  # the region deleted: sigmoid(-2)
    assert np.all(np.diff(scores[1:]) == 0)  # pixels outside the region do not move its score
    assert 0.0 <= scores.min() <= scores.max() <= 1.0
