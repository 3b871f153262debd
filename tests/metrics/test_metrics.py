"""Map-quality metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from medxai.metrics import (
    bootstrap_mean_ci,
    curve_area,
    deletion_curve,
    gini,
    insertion_curve,
    pointing_game,
    rank_correlation,
    relevance_mass,
    summarise,
    topk_iou,
)

METRICS_DIR = Path(__file__).resolve().parents[2] / "medxai" / "metrics"


def _mask(shape, *points):
    m = np.zeros(shape, dtype=bool)
    for p in points:
        m[p] = True
    return m


def sum_model(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(batch.shape[0], -1).sum(axis=1)


# --------------------------------------------------------------------------
# Gini
# --------------------------------------------------------------------------
def test_gini_uniform_one_hot_and_hand_case():
    assert gini(np.full((4, 4), 0.3)) == pytest.approx(0.0, abs=1e-12)
    one_hot = _mask((4, 4), (2, 1)).astype(float)
    assert gini(one_hot) == pytest.approx(15 / 16)
    # Sorted c = 0,1,2,3 (sum 6): 1 - 2*(1*2.5 + 2*1.5 + 3*0.5)/(6*4) = 5/12.
    assert gini(np.array([[3.0, 0.0], [1.0, 2.0]])) == pytest.approx(5 / 12)
    # Mean absolute difference form: sum|xi - xj| / (2 n^2 mean) = 20 / 48.
    assert gini(np.array([0.0, 1.0, 2.0, 3.0])) == pytest.approx(20 / 48)


def test_gini_zero_map_scale_invariance_and_errors():
    assert gini(np.zeros((3, 3))) == 0.0
    rng = np.random.default_rng(0)
    m = rng.random((5, 6, 2))
    assert gini(m) == pytest.approx(gini(7.0 * m))
    with pytest.raises(ValueError, match="negative"):
        gini(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError):
        gini(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        gini(np.array(1.0))
    with pytest.raises(ValueError):
        gini(np.zeros((0, 3)))


# --------------------------------------------------------------------------
# pointing game
# --------------------------------------------------------------------------
def test_pointing_game_hit_miss_empty_tolerance():
    m = np.zeros((3, 3))
    m[1, 1] = 1.0
    assert pointing_game(m, _mask((3, 3), (1, 1))) == 1.0
    assert pointing_game(m, _mask((3, 3), (0, 0))) == 0.0
    assert np.isnan(pointing_game(m, np.zeros((3, 3), bool)))
    # (0, 0) is sqrt(2) from the maximum at (1, 1).
    assert pointing_game(m, _mask((3, 3), (0, 0)), tolerance=1) == 0.0
    assert pointing_game(m, _mask((3, 3), (0, 0)), tolerance=1.5) == 1.0


def test_pointing_game_tied_maxima_count_in_proportion():
    m = np.zeros((3, 3))
    m[0, 0] = m[2, 2] = 5.0
    assert pointing_game(m, _mask((3, 3), (2, 2))) == 0.5
    assert pointing_game(m, _mask((3, 3), (0, 0), (2, 2))) == 1.0
    assert pointing_game(m, _mask((3, 3), (1, 1))) == 0.0
    # Signed maps are fine: only the location of the maximum matters.
    assert pointing_game(m - 10.0, _mask((3, 3), (0, 0))) == 0.5
    four = np.zeros((4, 4))
    four[0, 0] = four[0, 3] = four[3, 0] = four[3, 3] = 1.0
    assert pointing_game(four, _mask((4, 4), (3, 3), (1, 1))) == 0.25
    # The tolerance grows the mask first: (1, 1) is sqrt(2) from (0, 0), 2 sqrt(2) from (3, 3).
    assert pointing_game(four, _mask((4, 4), (1, 1)), tolerance=1.5) == 0.25
    assert pointing_game(four, _mask((4, 4), (1, 1)), tolerance=3) == 1.0


def test_pointing_game_of_a_constant_map_is_nan():
    for value in (0.0, 0.7):
        assert np.isnan(pointing_game(np.full((3, 3), value), _mask((3, 3), (1, 1))))
        assert np.isnan(pointing_game(np.full((3, 3), value), np.ones((3, 3), bool), tolerance=2))


def test_pointing_game_3d_and_errors():
    m = np.zeros((3, 4, 5))
    m[2, 3, 1] = 1.0
    assert pointing_game(m, _mask(m.shape, (2, 3, 1))) == 1.0
    assert pointing_game(m, _mask(m.shape, (0, 3, 1))) == 0.0
    assert pointing_game(m, _mask(m.shape, (0, 3, 1)), tolerance=2) == 1.0
    with pytest.raises(ValueError, match="shape"):
        pointing_game(m, np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(m, _mask(m.shape, (0, 0, 0)), tolerance=-1)
    with pytest.raises(ValueError, match="boolean"):
        pointing_game(m, np.full(m.shape, 255, np.uint8))
    # 0/1 integer masks are accepted as they are.
    assert pointing_game(m, _mask(m.shape, (2, 3, 1)).astype(np.uint8)) == 1.0


# --------------------------------------------------------------------------
# relevance mass
# --------------------------------------------------------------------------
def test_relevance_mass_exact_share():
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert relevance_mass(m, _mask((2, 2), (0, 0), (0, 1))) == pytest.approx(3 / 10)
    assert relevance_mass(m, np.ones((2, 2), bool)) == pytest.approx(1.0)
    assert np.isnan(relevance_mass(m, np.zeros((2, 2), bool)))
    assert np.isnan(relevance_mass(np.zeros((2, 2)), _mask((2, 2), (0, 0))))
    assert relevance_mass(np.full((2, 2), 0.5), _mask((2, 2), (0, 0))) == pytest.approx(1 / 4)  # chance level
    vol = np.ones((2, 2, 5))
    assert relevance_mass(vol, _mask(vol.shape, (0, 0, 0), (1, 1, 4))) == pytest.approx(2 / 20)
    with pytest.raises(ValueError, match="negative"):
        relevance_mass(m - 2.0, _mask((2, 2), (0, 0)))


# --------------------------------------------------------------------------
# top-k IoU
# --------------------------------------------------------------------------
def test_topk_iou_hand_computed_4x4():
    m = np.arange(16.0).reshape(4, 4)  # the largest values fill the last row
    mask = np.zeros((4, 4), bool)
    mask[2:, 2:] = True
    # 25 % of 16 = 4 pixels = row 3; overlap (3,2),(3,3): 2 / (4 + 4 - 2).
    assert topk_iou(m, mask, percent=25) == pytest.approx(2 / 6)
    # 10 % of 16 = 1.6 -> 2 pixels, (3,3) and (3,2), both in the mask: 2 / 4.
    assert topk_iou(m, mask, percent=10) == pytest.approx(0.5)
    # 5 % of 16 = 0.8 -> 1 pixel, (3,3): 1 / 4.
    assert topk_iou(m, mask) == pytest.approx(0.25)
    assert topk_iou(m, mask, percent=100) == pytest.approx(4 / 16)
    assert np.isnan(topk_iou(m, np.zeros((4, 4), bool)))


def test_topk_iou_of_a_constant_map_is_nan():
    first_row = np.zeros((4, 4), bool)
    first_row[0] = True
    for value in (0.0, 1.0):
        assert np.isnan(topk_iou(np.full((4, 4), value), first_row, percent=25))


def test_topk_iou_ties_at_the_kth_value_share_the_set():
    m = np.zeros((4, 4))
    m[0, 0] = 2.0
    m[1, :] = 1.0  # four pixels tie for the 2nd to 5th places
    mask = _mask((4, 4), (0, 0))
    # k = 2 (12.5 %): (0, 0) fully, each tied pixel 1/4; the mask holds (0, 0) only.
    assert topk_iou(m, mask, percent=12.5) == pytest.approx(1 / (1 + 4 * 0.25))
    # Wherever the mask sits in the tied row, the figure is the same.
    values = set()
    for col in range(4):
        values.add(round(topk_iou(m, _mask((4, 4), (0, 0), (1, col)), percent=12.5), 12))
    # intersection 1 + 1/4, union 2 + 3/4.
    assert values == {round(1.25 / 2.75, 12)}
    # The zero region also ties (k = 8 reaches into it): moving the mask inside it changes nothing.
    assert topk_iou(m, _mask((4, 4), (2, 0)), percent=50) == topk_iou(m, _mask((4, 4), (3, 3)), percent=50)
    # 8 places: 5 pixels above 0, the 11 zeros share 3: w = 3/11; IoU = (3/11) / (8 - 3/11 + 1).
    assert topk_iou(m, _mask((4, 4), (3, 3)), percent=50) == pytest.approx((3 / 11) / (5 + 10 * 3 / 11 + 1))


def test_topk_iou_3d_and_errors():
    vol = np.zeros((2, 5, 2))
    vol[1, 4, 1] = 1.0
    assert topk_iou(vol, vol > 0, percent=5) == 1.0  # 5 % of 20 = exactly 1 pixel
    for bad in (0, -5, 101):
        with pytest.raises(ValueError, match="percent"):
            topk_iou(vol, vol > 0, percent=bad)


# --------------------------------------------------------------------------
# deletion / insertion
# --------------------------------------------------------------------------
def test_deletion_and_insertion_of_a_constant_image_are_linear():
    img = np.ones((4, 5, 1), np.float32)
    heat = np.random.default_rng(1).random((4, 5))
    f, s = deletion_curve(sum_model, img, heat, baseline="zeros")
    np.testing.assert_allclose(f, np.arange(21) / 20)
    np.testing.assert_allclose(s, 20 - np.arange(21))
    assert curve_area(f, s) == pytest.approx(10.0)
    f, s = insertion_curve(sum_model, img, heat, baseline="zeros")
    np.testing.assert_allclose(s, np.arange(21))
    assert curve_area(f, s) == pytest.approx(10.0)


def test_deletion_and_insertion_match_hand_computed_sums():
    img = np.arange(1.0, 21.0, dtype=np.float32).reshape(4, 5, 1)  # total 210
    heat = img[..., 0]  # the largest pixel is the most important
    f, s = deletion_curve(sum_model, img, heat, baseline="zeros")
    # After k steps the top k values 20, 19, ... are gone.
    np.testing.assert_allclose(s[:5], [210, 190, 171, 153, 136])
    np.testing.assert_allclose(s[-3:], [3, 1, 0])
    # h * (sum of scores - (first + last) / 2) = 0.05 * (1540 - 105).
    assert curve_area(f, s) == pytest.approx(71.75)
    f, s = insertion_curve(sum_model, img, heat, baseline="zeros")
    np.testing.assert_allclose(s[:5], [0, 20, 39, 57, 74])
    assert s[-1] == 210
    assert curve_area(f, s) == pytest.approx(138.25)


def test_curves_batch_predict_calls():
    calls: list[tuple[int, ...]] = []

    def predict(batch):
        calls.append(batch.shape)
        assert batch.dtype == np.float32
        return sum_model(batch)[:, None]  # (N, 1) is accepted too

    img = np.ones((4, 5, 1), np.float32)
    deletion_curve(predict, img, np.ones((4, 5)), baseline="zeros", batch_size=8)
    assert [c[0] for c in calls] == [8, 8, 5]
    assert all(c[1:] == (4, 5, 1) for c in calls)


def test_all_channels_of_a_pixel_change_together():
    img = np.ones((4, 5, 3), np.float32)
    img[..., 1] = 2.0
    heat = np.arange(20.0).reshape(4, 5)
    f, s = deletion_curve(sum_model, img, heat, baseline=0.5)
    # Each step turns one pixel's (1, 2, 1) into (0.5, 0.5, 0.5): -2.5 per step.
    np.testing.assert_allclose(s, 80 - 2.5 * np.arange(21))
    _, s = insertion_curve(sum_model, img, heat, baseline=np.array([0.0, 1.0, 0.0], np.float32))
    np.testing.assert_allclose(s, 20 + 3 * np.arange(21))


def test_blur_baseline_is_spatial_only():
    img = np.zeros((16, 20, 2), np.float32)
    img[8, 10, 0] = 1.0
    img[..., 1] = 3.0
    states = []

    def predict(batch):
        states.append(batch.copy())
        return np.zeros(len(batch))

    insertion_curve(predict, img, np.ones((16, 20)), baseline="blur")
    start = states[0][0]  # step 0 of insertion is the baseline itself
    np.testing.assert_allclose(start, ndi.gaussian_filter(img, (1.0, 1.0, 0.0), mode="nearest"), atol=1e-6)
    np.testing.assert_allclose(start[..., 1], 3.0, atol=1e-6)  # channels not mixed
    states.clear()
    insertion_curve(predict, img, np.ones((16, 20)), baseline="blur", blur_sigma=(2.0, 3.0))
    np.testing.assert_allclose(states[0][0], ndi.gaussian_filter(img, (2.0, 3.0, 0.0), mode="nearest"), atol=1e-6)


def test_curves_on_3d_volumes_and_coarse_steps():
    img = np.ones((2, 5, 4, 1), np.float32)  # 40 voxels
    heat = np.random.default_rng(2).random((2, 5, 4))
    f, s = deletion_curve(sum_model, img, heat, baseline="zeros", step_percent=30)
    np.testing.assert_allclose(f, [0.0, 0.3, 0.6, 0.9, 1.0])
    np.testing.assert_allclose(s, [40, 28, 16, 4, 0])


def test_curve_errors():
    img = np.ones((4, 5, 1), np.float32)
    heat = np.ones((4, 5))
    with pytest.raises(ValueError, match="channel axis"):
        deletion_curve(sum_model, img[..., 0], heat)
    with pytest.raises(ValueError, match="spatial shape"):
        deletion_curve(sum_model, img, np.ones((5, 4)))
    with pytest.raises(ValueError, match="baseline"):
        deletion_curve(sum_model, img, heat, baseline="mean")
    with pytest.raises(ValueError, match="broadcast"):
        deletion_curve(sum_model, img, heat, baseline=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="blur_sigma"):
        deletion_curve(sum_model, img, heat, baseline="zeros", blur_sigma=2.0)
    with pytest.raises(ValueError, match="blur_sigma"):
        deletion_curve(sum_model, img, heat, blur_sigma=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="step_percent"):
        deletion_curve(sum_model, img, heat, step_percent=0)
    with pytest.raises(ValueError, match="batch_size"):
        deletion_curve(sum_model, img, heat, batch_size=0)
    with pytest.raises(ValueError, match="one score per image"):
        deletion_curve(lambda x: np.zeros((len(x), 2)), img, heat)
    with pytest.raises(ValueError):
        deletion_curve(sum_model, img, np.full((4, 5), np.nan))


def test_curve_area_by_hand_and_errors():
    assert curve_area([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert curve_area([0.0, 0.25, 1.0], [0.0, 1.0, 1.0]) == pytest.approx(0.125 + 0.75)
    with pytest.raises(ValueError):
        curve_area([0.0, 1.0, 0.5], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        curve_area([0.0, 1.0], [1.0])


# --------------------------------------------------------------------------
# summaries and agreement
# --------------------------------------------------------------------------
def test_summarise_ignores_nan():
    out = summarise([1.0, np.nan, 3.0, np.inf])
    assert out["n"] == 2
    assert out["mean"] == pytest.approx(2.0) and out["median"] == pytest.approx(2.0)
    # Linear interpolation between 1 and 3 at 2.5 % and 97.5 %.
    assert out["p2.5"] == pytest.approx(1.05) and out["p97.5"] == pytest.approx(2.95)
    assert 1.0 <= out["mean_ci_low"] <= 2.0 <= out["mean_ci_high"] <= 3.0
    empty = summarise([np.nan, np.nan])
    assert empty["n"] == 0 and np.isnan(empty["mean"]) and np.isnan(empty["p97.5"]) and np.isnan(empty["mean_ci_low"])
    assert summarise(np.arange(101.0))["p2.5"] == pytest.approx(2.5)
    assert "ci_low" not in out  # the percentiles are no confidence interval: they are named for what they are


def test_bootstrap_ci_of_the_mean_contains_it_shrinks_with_n_and_is_reproducible():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.5, 0.2, 25), rng.normal(0.5, 0.2, 400)
    widths = []
    for values in (small, large):
        low, high = bootstrap_mean_ci(values, seed=7)
        assert low < values.mean() < high
        widths.append(high - low)
        # about 2 x 1.96 x SD / sqrt(n) for a normal sample
        assert widths[-1] == pytest.approx(2 * 1.96 * values.std(ddof=1) / np.sqrt(values.size), rel=0.2)
    assert widths[1] < widths[0] / 2  # 16 x the values: about a quarter of the width
    assert bootstrap_mean_ci(small, seed=7) == bootstrap_mean_ci(small, seed=7)
    assert bootstrap_mean_ci(small, seed=7) != bootstrap_mean_ci(small, seed=8)
    assert summarise(small, seed=7)["mean_ci_low"] == bootstrap_mean_ci(small, seed=7)[0]
    assert bootstrap_mean_ci([2.0, np.nan]) == (2.0, 2.0)
    assert all(np.isnan(bootstrap_mean_ci([np.nan])))
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci(small, level=1.5)


def test_rank_correlation():
    a = np.arange(12.0).reshape(3, 4)
    assert rank_correlation(a, np.exp(a)) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(a, np.ones_like(a)))
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(a, a.T)


def test_map_metrics_import_no_tensorflow():
    # randomisation.py is the one metric that needs a model (Keras); the map figures are numpy only
    paths = sorted(p for p in METRICS_DIR.glob("*.py") if p.name != "randomisation.py")
    assert {p.name for p in paths} >= {"__init__.py", "scores.py", "faithfulness.py"}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        roots = {name.split(".")[0] for name in names}
        assert not roots & {"tensorflow", "keras", "torch"}, path.name
