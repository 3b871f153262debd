"""Occlusion (Zeiler & Fergus 2014) on the forward engine: exact maths on linear models."""

import itertools

import numpy as np
import pytest
from analytic_models import linear_model, small_cnn

from medxai import Occlusion
from medxai.methods.occlusion import window_starts


def expected_linear(x, weights, target, window, stride, fill):
    """Numpy reference: mean over covering windows of sum_window w * (x - fill)."""
    spatial, channels = x.shape[:-1], x.shape[-1]
    w = weights[:, target].reshape(x.shape).astype(np.float64)
    fill = x.mean(axis=tuple(range(len(spatial)))) if fill == "mean" else np.full(channels, fill)
    total, count = np.zeros(spatial), np.zeros(spatial)
    starts = [window_starts(s, k, t) for s, k, t in zip(spatial, window, stride)]
    for corner in itertools.product(*starts):
        box = tuple(slice(c, c + k) for c, k in zip(corner, window))
        total[box] += (w[box] * (x[box] - fill)).sum()
        count[box] += 1
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return np.repeat(mean[..., None], channels, axis=-1)


@pytest.mark.parametrize(
    "shape, window, stride, fill",
    [
        ((8, 8, 1), 2, None, 0.0),  # tiling
        ((8, 8, 2), (3, 2), 1, 0.5),  # stride < window: overlapping windows averaged
        ((7, 6, 1), 3, 2, "mean"),  # last window flush with the border
        ((9, 9, 1), 2, 3, 0.0),  # stride > window: uncovered pixels are 0
        ((4, 6, 6, 1), 2, 1, -1.0),  # 3D
    ],
)
def test_linear_model_is_exact(shape, window, stride, fill):
    model, weights, _ = linear_model(shape)
    x = np.random.default_rng(1).normal(size=(3, *shape)).astype(np.float32)
    method = Occlusion(model, window=window, stride=stride, fill=fill, batch_size=5)
    got = method.attribute(x, [0, 2, 1])
    rank = len(shape) - 1
    win = (window,) * rank if isinstance(window, int) else window
    stp = win if stride is None else (stride,) * rank
    for i, target in enumerate([0, 2, 1]):
        np.testing.assert_allclose(got[i], expected_linear(x[i], weights, target, win, stp, fill), rtol=1e-4, atol=1e-4)


def test_uncovered_pixels_are_zero_and_coverage_with_stride_at_most_window():
    model, _, _ = linear_model((9, 9, 1))
    x = np.random.default_rng(0).normal(size=(1, 9, 9, 1)).astype(np.float32)
    gaps = Occlusion(model, window=2, stride=3).attribute(x, 0)[0, ..., 0]
    assert np.all(gaps[2::3, :] == 0) and np.all(gaps[:, 2::3] == 0)
    assert np.all(Occlusion(model, window=2, stride=2).attribute(x, 0) != 0)  # 9 = 2*4 + 1: last window flush


@pytest.mark.parametrize("shape", [(8, 8, 1), (4, 6, 6, 1)], ids=["2d", "3d"])
def test_batching_does_not_change_the_result(shape):
    # exact: F(x) is scored with the windows, and the sums are float64 in a fixed order per image
    model = small_cnn(shape)
    x = np.random.default_rng(2).uniform(size=(3, *shape)).astype(np.float32)
    results = [Occlusion(model, window=3, stride=2, batch_size=b).attribute(x, [0, 1, 0]) for b in (2, 7, 200)]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    np.testing.assert_array_equal(
        Occlusion(model, window=3, stride=2, batch_size=7).attribute(x[1:2], 1), results[0][1:2]
    )


def test_logits_by_default():
    model, weights, _ = linear_model((6, 6, 1), activation="softmax")
    x = np.random.default_rng(3).normal(size=(2, 6, 6, 1)).astype(np.float32)
    got = Occlusion(model, window=3).attribute(x, [1, 2])
    for i, target in enumerate([1, 2]):
        np.testing.assert_allclose(
            got[i], expected_linear(x[i], weights, target, (3, 3), (3, 3), 0.0), rtol=1e-4, atol=1e-4
        )
    probabilities = Occlusion(model, window=3, output="probabilities").attribute(x, [1, 2])
    assert not np.allclose(probabilities, got, atol=1e-3)


def test_matches_a_hand_written_loop_on_a_cnn():
    model = small_cnn((8, 8, 3))
    x = np.random.default_rng(4).uniform(size=(2, 8, 8, 3)).astype(np.float32)
    got = Occlusion(model, window=3, stride=2, fill="mean", output="probabilities").attribute(x, [0, 1])
    for i, target in enumerate([0, 1]):  # reference: one model call per window
        image = x[i]
        fill = image.mean(axis=(0, 1))
        score = float(model(image[None])[0, target])
        total, count = np.zeros((8, 8)), np.zeros((8, 8))
        for r in (0, 2, 4, 5):
            for c in (0, 2, 4, 5):
                copy = image.copy()
                copy[r : r + 3, c : c + 3] = fill
                total[r : r + 3, c : c + 3] += score - float(model(copy[None])[0, target])
                count[r : r + 3, c : c + 3] += 1
        np.testing.assert_allclose(got[i, ..., 0], total / count, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(got[i, ..., 0], got[i, ..., 2])


def test_default_window_is_an_eighth_of_each_side():
    model, weights, _ = linear_model((16, 8, 1), n_classes=2)
    x = np.random.default_rng(5).normal(size=(1, 16, 8, 1)).astype(np.float32)
    got = Occlusion(model).attribute(x, 1)[0]
    np.testing.assert_allclose(got, expected_linear(x[0], weights, 1, (2, 1), (2, 1), 0.0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "params, word",
    [
        ({"window": 9}, "window"),
        ({"window": (2, 9)}, "window"),
        ({"window": (2, 2, 2)}, "window"),
        ({"window": 0}, "window"),
        ({"stride": 0}, "stride"),
        ({"stride": 1.5}, "stride"),
        ({"fill": "median"}, "fill"),
        ({"fill": float("nan")}, "fill"),
        ({"fill": True}, "fill"),
    ],
)
def test_bad_parameters_name_themselves(params, word):
    model, _, _ = linear_model((8, 8, 1))
    with pytest.raises(ValueError, match=word):
        Occlusion(model, **params)


def test_no_completeness_delta_and_signed():
    model, _, _ = linear_model((4, 4, 1))
    x = np.ones((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="delta"):
        Occlusion(model).attribute(x, 0, return_delta=True)
    assert not Occlusion.non_negative({})
    explanation = Occlusion(model, window=2).explain(x, 0)
    assert explanation.evaluations.tolist() == [5]
