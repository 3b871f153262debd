"""RISE (Petsiuk et al. 2018) on the forward engine: the Monte Carlo estimate meets its exact expectation."""

import numpy as np
import pytest
from analytic_models import linear_model, small_cnn

from medxai import RISE
from medxai.methods.rise import interpolation


def mask_kernel(size, cells):
    """E over the random shift of A A^T for one axis (A: the linear upsampling and crop)."""
    cell = -(-size // cells)
    return np.mean([interpolation(size, cells, np.array(d)) @ interpolation(size, cells, np.array(d)).T for d in range(cell)], axis=0)


def test_linear_model_meets_the_exact_expectation():
    # F = c . M + b with c = w * x (zero baseline): E[S] = (1 - p) K c + p sum(c) + b, K = E[A A^T]:
    # the input contribution w * x smoothed by the masks' correlation, plus a constant
    p, cells = 0.5, 4
    model, weights, bias = linear_model((8, 8, 1))
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype(np.float32)
    saliency = RISE(model, n_masks=20000, cells=cells, p=p, batch_size=4096).attribute(x, 0)[0, ..., 0].ravel()
    c = weights[:, 0].astype(np.float64) * x[0].ravel()
    expected = (1 - p) * np.kron(mask_kernel(8, cells), mask_kernel(8, cells)) @ c + p * c.sum() + bias[0]
    assert np.abs(saliency - expected).max() < 0.2 * expected.std()
    assert np.corrcoef(saliency, expected)[0, 1] > 0.995


def test_masks_do_not_depend_on_batch_size_and_channels_agree():
    model = small_cnn((8, 8, 3))
    x = np.random.default_rng(1).uniform(size=(3, 8, 8, 3)).astype(np.float32)
    a, b = (RISE(model, n_masks=50, cells=3, batch_size=s).attribute(x, [0, 1, 1]) for s in (7, 200))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a[..., 0], a[..., 2])
    c = RISE(model, n_masks=50, cells=3, seed=1).attribute(x, [0, 1, 1])
    assert not np.allclose(a, c)


def test_3d():
    model, _, _ = linear_model((4, 6, 6, 1))
    out = RISE(model, n_masks=40, cells=2).attribute(np.ones((2, 4, 6, 6, 1), np.float32), 1)
    assert out.shape == (2, 4, 6, 6, 1) and np.all(np.isfinite(out))


@pytest.mark.parametrize("params, word", [({"p": 0.0}, "p"), ({"p": 1.5}, "p"), ({"n_masks": 0}, "n_masks"), ({"cells": 0}, "cells"), ({"seed": "x"}, "seed")])
def test_bad_parameters_name_themselves(params, word):
    model, _, _ = linear_model((8, 8, 1))
    with pytest.raises(ValueError, match=word):
        RISE(model, **params)
