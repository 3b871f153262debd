"""LIME (Ribeiro et al. 2016) on the forward engine: the reference regression, linear models, seeds, 3D."""

import numpy as np
import pytest
from analytic_models import linear_model, small_cnn
from scipy.stats import spearmanr

from medxai import LIME
from medxai.methods.lime import grid_segments, sample_bits


def reference(method, image, target):
    """Numpy LIME on the method's own superpixels and samples: perturb, score, weighted ridge with intercept."""
    segments = method.segment(image)
    n = int(segments.max()) + 1
    bits = sample_bits(method.samples, n, method.seed)
    on = bits[:, segments].astype(np.float32)[..., None]  # (S, *spatial, 1)
    fill = image.mean(axis=tuple(range(image.ndim - 1))) if method.fill == "mean" else method.fill
    copies = image[None] * on + fill * (1 - on)
    y = method.engine.predict(copies.astype(np.float32), 64)[:, target].astype(np.float64)
    norms = np.linalg.norm(bits.astype(np.float64), axis=1)
    cosine = np.divide(bits @ np.ones(n), norms * np.sqrt(n), out=np.zeros(len(bits)), where=norms > 0)
    distance = 1 - cosine  # to the all-on vector; an all-off sample has distance 1 (scikit-learn's convention)
    weight = np.sqrt(np.exp(-(distance**2) / method.kernel_width**2))
    x = np.hstack([np.ones((len(bits), 1)), bits])  # intercept first, not penalised
    penalty = method.ridge * np.diag([0.0] + [1.0] * n)
    theta = np.linalg.solve(x.T @ (weight[:, None] * x) + penalty, x.T @ (weight * y))
    return theta[1:][segments]


@pytest.mark.parametrize(
    "shape, params",
    [
        (
            (8, 8, 1),
            {"segmentation": "grid", "segmentation_params": {"cell": 2}, "samples": 60},
        ),  # 16 superpixels < samples
        (
            (8, 8, 1),
            {"segmentation": "grid", "segmentation_params": {"cell": 1}, "samples": 30},
        ),  # 64 > samples: dual form
        ((8, 8, 3), {"samples": 40, "fill": "mean", "kernel_width": 0.5, "ridge": 0.1}),  # slic on RGB
        ((4, 6, 6, 1), {"samples": 40, "segmentation_params": {"n_segments": 8}}),  # slic on a volume
    ],
)
def test_regression_matches_a_numpy_reference(shape, params):
    model = small_cnn(shape)
    x = np.random.default_rng(3).uniform(size=(2, *shape)).astype(np.float32)
    method = LIME(model, batch_size=7, **params)
    got = method.attribute(x, [1, 0])
    assert np.all(got[..., :1] == got)  # the same value on every channel
    for i, target in enumerate([1, 0]):
        expected = reference(method, x[i], target)
        # float32 model outputs in other batches: agreement to 0.1 % of the largest coefficient
        np.testing.assert_allclose(got[i, ..., 0], expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("fill", [0.0, "mean"])
def test_one_superpixel_per_pixel_recovers_a_linear_model(fill):
    model, weights, _ = linear_model((8, 8, 1))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)
    method = LIME(model, samples=1000, segmentation="grid", segmentation_params={"cell": 1}, fill=fill)
    got = method.attribute(x, [0, 2])
    for i, target in enumerate([0, 2]):
        reference_fill = x[i].mean() if fill == "mean" else 0.0
        truth = weights[:, target] * (x[i].ravel() - reference_fill)  # F(z) = const + sum_j z_j w_j (x_j - fill)
        assert spearmanr(got[i].ravel(), truth).statistic > 0.95
        np.testing.assert_allclose(got[i].ravel(), truth, atol=0.05 * np.abs(truth).max())


def test_attributions_are_constant_on_each_superpixel_and_polarity_splits_pro_and_con():
    model, _, _ = linear_model((12, 12, 1))
    x = np.random.default_rng(1).normal(size=(1, 12, 12, 1)).astype(np.float32)
    method = LIME(model, samples=200, segmentation="grid", segmentation_params={"cell": 3})
    got = method.attribute(x, 1)[0, ..., 0]
    segments = grid_segments((12, 12), (3, 3))
    for j in range(16):
        assert np.ptp(got[segments == j]) == 0
    pro = LIME(
        model, samples=200, segmentation="grid", segmentation_params={"cell": 3}, heatmap={"polarity": "positive"}
    )
    con = LIME(
        model, samples=200, segmentation="grid", segmentation_params={"cell": 3}, heatmap={"polarity": "negative"}
    )
    assert pro.compute_heatmap(x[0], 1)[got <= 0].max() == 0
    assert con.compute_heatmap(x[0], 1)[got >= 0].max() == 0


@pytest.mark.parametrize(
    "shape, params",
    [((8, 8, 1), {}), ((4, 8, 8, 1), {"segmentation": "grid", "segmentation_params": {"cell": 2}})],
    ids=["2d-slic", "3d-grid"],
)
def test_batching_does_not_change_the_result_and_seeds_do(shape, params):
    # exact: float64 sums in a fixed order per image (the 3D grid differed by 9e-4 with float32 chunk sums)
    model = small_cnn(shape)
    x = np.random.default_rng(2).uniform(size=(3, *shape)).astype(np.float32)
    a, b = (LIME(model, samples=50, batch_size=s, **params).attribute(x, [0, 1, 1]) for s in (3, 200))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(LIME(model, samples=50, batch_size=3, **params).attribute(x[1:2], 1), a[1:2])
    assert not np.allclose(LIME(model, samples=50, seed=1, **params).attribute(x, [0, 1, 1]), a)


def test_samples_depend_on_seed_and_index_only():
    few, many = sample_bits(20, 10, 5), sample_bits(40, 30, 5)
    np.testing.assert_array_equal(few, many[:20, :10])
    assert few[0].all() and not np.array_equal(few, sample_bits(20, 10, 6))


@pytest.mark.parametrize("segmentation", ["quickshift", "felzenszwalb", "slic", "grid"])
def test_every_segmentation_runs_in_2d(segmentation):
    model = small_cnn((16, 16, 1))
    x = np.random.default_rng(4).uniform(size=(1, 16, 16, 1)).astype(np.float32)
    got = LIME(model, samples=20, segmentation=segmentation).attribute(x, 0)
    assert got.shape == x.shape and np.all(np.isfinite(got))


def test_3d_with_slic_and_a_callable_segmentation():
    model, _, _ = linear_model((4, 6, 6, 1))
    x = np.random.default_rng(5).uniform(size=(2, 4, 6, 6, 1)).astype(np.float32)
    method = LIME(model, samples=60, segmentation_params={"n_segments": 6, "compactness": 1.0})
    got = method.attribute(x, [0, 1])
    segments = method.segment(x[0])
    assert got.shape == x.shape and np.all(np.isfinite(got)) and 1 < segments.max() + 1 <= 20
    assert len(np.unique(got[0])) <= segments.max() + 1

    def halves(image, axis=0):
        return (np.arange(image.shape[axis]) >= image.shape[axis] // 2).reshape(-1, 1, 1) * np.ones(
            image.shape[:-1], int
        )

    split = LIME(model, samples=30, segmentation=halves).attribute(x, 0)
    assert len(np.unique(split[0])) == 2 and split.shape == x.shape


@pytest.mark.parametrize(
    "params, word",
    [
        ({"samples": 0}, "samples"),
        ({"samples": 1}, "samples"),
        ({"kernel_width": 0}, "kernel_width"),
        ({"ridge": 0.0}, "ridge"),
        ({"ridge": float("nan")}, "ridge"),
        ({"fill": "median"}, "fill"),
        ({"seed": 1.5}, "seed"),
        ({"segmentation": "watershed"}, "segmentation"),
        ({"segmentation_params": [1]}, "segmentation_params"),
        ({"segmentation_params": {"n_segmentz": 10}}, "segmentation_params"),
        ({"segmentation_params": {"channel_axis": 0}}, "segmentation_params"),
        ({"segmentation": "grid", "segmentation_params": {"cell": 0}}, "segmentation_params"),
    ],
)
def test_bad_parameters_name_themselves(params, word):
    model, _, _ = linear_model((8, 8, 1))
    with pytest.raises(ValueError, match=word):
        LIME(model, **params)


@pytest.mark.parametrize("segmentation", ["quickshift", "felzenszwalb"])
def test_2d_only_segmentations_refuse_volumes(segmentation):
    model, _, _ = linear_model((4, 6, 6, 1))
    with pytest.raises(ValueError, match=f"segmentation '{segmentation}' works on 2D images only.*slic"):
        LIME(model, segmentation=segmentation)
