"""RISE (Petsiuk et al. 2018) on the forward engine: the estimate meets its exact expectation, ignores a
constant added to the scores, is stable across seeds, and does not depend on batching."""

import keras
import numpy as np
import pytest
from analytic_models import linear_model, small_cnn

from medxai import RISE
from medxai.methods.rise import interpolation


def mask_kernel(size, cells):
    """E over the random shift of A A^T for one axis (A: the linear upsampling and crop)."""
    cell = -(-size // cells)
    return np.mean(
        [interpolation(size, cells, np.array(d)) @ interpolation(size, cells, np.array(d)).T for d in range(cell)],
        axis=0,
    )


def test_linear_model_meets_the_exact_expectation():
    # F = c . M + b with c = w * x (zero baseline): E[S] = Cov(F, M(u)) / p = (1 - p) K c, K = E[A A^T]
    # (Cov(M(u), M(v)) = p (1 - p) K_uv): the input contribution smoothed by the masks' correlation.
    # The bias b and the mean p sum(c) of F, which the paper's estimator keeps, are gone.
    p, cells = 0.5, 4
    model, weights, bias = linear_model((8, 8, 1))
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype(np.float32)
    saliency = RISE(model, samples=20000, cells=cells, p=p, batch_size=4096).attribute(x, 0)[0, ..., 0].ravel()
    c = weights[:, 0].astype(np.float64) * x[0].ravel()
    expected = (1 - p) * np.kron(mask_kernel(8, cells), mask_kernel(8, cells)) @ c
    assert np.abs(saliency - expected).max() < 0.1 * expected.std()
    assert np.corrcoef(saliency, expected)[0, 1] > 0.995


def shifted_logits(model, shift):
    """The same network with ``shift`` added to every logit (the same probabilities)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    kernel, bias = clone.layers[-1].get_weights()
    clone.layers[-1].set_weights([kernel, bias + shift])
    return clone


def test_a_constant_added_to_every_logit_changes_nothing():
    model = small_cnn((12, 12, 1))
    shifted = shifted_logits(model, 20.0)
    x = np.random.default_rng(2).uniform(size=(2, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(model(x), shifted(x), rtol=1e-5)
    a, b = (RISE(m, samples=300, cells=3).attribute(x, [0, 1]) for m in (model, shifted))
    # the scores differ by 20 up to float32 rounding of values near 20 (ulp 2e-6); the map's range is ~1e-3
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert np.ptp(a[0]) > 100 * 1e-6


def test_two_seeds_agree_at_the_default_mask_count():
    # the paper's estimator: r = 0.70 here (mask-coverage noise); the covariance estimator: r = 0.98
    model = small_cnn((16, 16, 1))
    x = np.random.default_rng(3).uniform(size=(1, 16, 16, 1)).astype(np.float32)
    a, b = (RISE(model, seed=s, batch_size=500).attribute(x, 1)[0, ..., 0].ravel() for s in (0, 1))
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_masks_do_not_depend_on_batching_and_channels_agree():
    model = small_cnn((8, 8, 3))
    x = np.random.default_rng(1).uniform(size=(3, 8, 8, 3)).astype(np.float32)
    a, b = (RISE(model, samples=50, cells=3, batch_size=s).attribute(x, [0, 1, 1]) for s in (7, 200))
    np.testing.assert_array_equal(a, b)
    alone = RISE(model, samples=50, cells=3, batch_size=7).attribute(x[1:2], 1)
    np.testing.assert_array_equal(alone, a[1:2])
    np.testing.assert_array_equal(a[..., 0], a[..., 2])
    c = RISE(model, samples=50, cells=3, seed=1).attribute(x, [0, 1, 1])
    assert not np.allclose(a, c)


def test_3d():
    model, _, _ = linear_model((4, 6, 6, 1))
    out = RISE(model, samples=40, cells=2).attribute(np.ones((2, 4, 6, 6, 1), np.float32), 1)
    assert out.shape == (2, 4, 6, 6, 1) and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "params, word",
    [
        ({"p": 0.0}, "p"),
        ({"p": 1.5}, "p"),
        ({"samples": 0}, "samples"),
        ({"samples": 1}, "samples"),
        ({"cells": 0}, "cells"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_parameters_name_themselves(params, word):
    model, _, _ = linear_model((8, 8, 1))
    with pytest.raises(ValueError, match=word):
        RISE(model, **params)
