import re

import numpy as np
import pytest

from medxai import ClipSpec, HeatmapPolicy, to_heatmap
from medxai.heatmap import clip_outliers, normalize, reduce_channels

A = np.array([[[1.0, -3.0], [0.5, 0.5]], [[-2.0, 0.0], [0.0, 0.0]]])  # (2, 2, 2): one pixel per row/col, 2 channels


def test_reductions_by_hand():
    assert reduce_channels(A, "abs_sum").tolist() == [[4.0, 1.0], [2.0, 0.0]]
    assert reduce_channels(A, "sum").tolist() == [[2.0, 1.0], [2.0, 0.0]]
    assert reduce_channels(A, "max_abs").tolist() == [[3.0, 0.5], [2.0, 0.0]]
    np.testing.assert_allclose(reduce_channels(A, "l2"), [[np.sqrt(10), np.sqrt(0.5)], [2.0, 0.0]])


def test_polarity_selects_evidence_before_reduction():
    positive = to_heatmap(A, {"polarity": "positive"})
    np.testing.assert_allclose(positive, [[1.0, 1.0], [0.0, 0.0]])
    negative = to_heatmap(A, {"polarity": "negative"})
    np.testing.assert_allclose(negative, [[1.0, 0.0], [2 / 3, 0.0]])


def test_most_important_place_is_one_and_least_is_zero():
    rng = np.random.default_rng(0)
    attributions = rng.normal(size=(9, 7, 3))
    heatmap = to_heatmap(attributions)
    strongest = np.unravel_index(np.abs(attributions).sum(-1).argmax(), (9, 7))
    assert heatmap[strongest] == 1.0
    assert heatmap.min() == 0.0 and heatmap.dtype == np.float32 and heatmap.shape == (9, 7)


@pytest.mark.parametrize("value", [0.0, 3.5, -2.0])
def test_constant_map_gives_zeros_not_nan(value):
    heatmap = to_heatmap(np.full((5, 5, 1), value))
    assert np.all(heatmap == 0) and not np.isnan(heatmap).any()


def test_normalize_min_max():
    assert normalize(np.array([2.0, 4.0, 6.0])).tolist() == [0.0, 0.5, 1.0]


def test_value_clipping():
    values = np.arange(101, dtype=float)  # percentiles equal values
    clipped = clip_outliers(values, ClipSpec("value", low=10, high=90))
    assert clipped.min() == 10 and clipped.max() == 90 and clipped[50] == 50


def test_mass_clipping_clips_by_cumulative_mass():
    # total mass 20: the single 10 carries half of it; clipping the top 50% of mass lowers it to 4
    values = np.array([1.0, 1.0, 2.0, 2.0, 4.0, 10.0])
    clipped = clip_outliers(values, ClipSpec("mass", low=0, high=50))
    assert clipped.tolist() == [1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    # a value percentile would not have touched the 10 at high=90
    assert clip_outliers(values, ClipSpec("value", 0, 90)).max() > 4


def test_clipping_changes_the_map():
    values = np.zeros((4, 4, 1))
    values[0, 0] = 100.0
    values[1, 1] = 1.0
    plain = to_heatmap(values)
    clipped = to_heatmap(values, {"clip": {"mode": "value", "low": 0, "high": 90}})
    assert plain[1, 1] == pytest.approx(0.01)
    assert clipped[1, 1] > plain[1, 1]
    assert clipped[0, 0] == 1.0


def test_3d_maps():
    attributions = np.zeros((3, 4, 5, 1))
    attributions[1, 2, 3] = -7
    heatmap = to_heatmap(attributions)
    assert heatmap.shape == (3, 4, 5) and heatmap[1, 2, 3] == 1 and heatmap.sum() == 1


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"reduce": "mean"}, "reduce: expected one of abs_sum, sum, max_abs, l2, got 'mean'"),
        ({"polarity": "both"}, "polarity: expected one of absolute, positive, negative, got 'both'"),
        ({"clip": {"mode": "rank"}}, "clip.mode: expected one of value, mass, got 'rank'"),
        ({"clip": {"low": "1"}}, "clip.low: expected a number, got '1'"),
        ({"clip": {"low": 60, "high": 50}}, "clip: expected 0 <= low < high <= 100, got low=60, high=50"),
        ({"clip": 5}, "clip: expected null or {mode: value|mass, low: .., high: ..}, got 5"),
        ({"colour": "red"}, "unknown heatmap option(s): colour"),
    ],
)
def test_bad_policy(policy, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        HeatmapPolicy.from_value(policy)


def test_nan_and_bad_shape_rejected():
    with pytest.raises(ValueError, match="NaN"):
        to_heatmap(np.full((2, 2, 1), np.nan))
    with pytest.raises(ValueError, match="spatial"):
        to_heatmap(np.zeros(3))


def test_gaussian_blur_is_spatial_only_and_per_image():
    from scipy import ndimage

    from medxai.filters import gaussian_blur

    images = np.zeros((2, 9, 9, 2), np.float32)
    images[0, 4, 4, 0] = 1.0
    images[1, ..., 1] = 5.0
    blurred = gaussian_blur(images, 1.5, batch=True)
    np.testing.assert_allclose(
        blurred[0, ..., 0], ndimage.gaussian_filter(images[0, ..., 0], 1.5, mode="nearest"), atol=1e-7
    )
    assert blurred[1, ..., 0].max() == 0  # nothing leaks from image 0 into image 1
    np.testing.assert_allclose(blurred[1, ..., 1], 5.0, rtol=1e-6)  # channels are not mixed
    np.testing.assert_allclose(gaussian_blur(images[0], (1.5, 1.5)), blurred[0], atol=1e-7)
