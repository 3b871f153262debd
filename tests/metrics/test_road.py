"""ROAD (Rong et al. 2022): noisy linear imputation solves the neighbour system; the figure orders maps as it should."""

from __future__ import annotations

import numpy as np
import pytest

from medxai.metrics import noisy_linear_imputation, road_curve, road_score
from medxai.metrics.road import ROAD_FRACTIONS


def removed_at(shape, *pixels):
    mask = np.zeros(shape, bool)
    for pixel in pixels:
        mask[pixel] = True
    return mask


def test_one_removed_pixel_is_the_weighted_mean_of_its_neighbours():
    """The reference code's 8-neighbourhood: 1/6 for the axis neighbours, 1/12 for the diagonal ones."""
    axis, diagonal = np.zeros((3, 3, 1)), np.zeros((3, 3, 1))
    axis[0, 1], diagonal[0, 0] = 12.0, 12.0
    centre = removed_at((3, 3), (1, 1))
    assert noisy_linear_imputation(axis, centre, noise=0)[1, 1, 0] == pytest.approx(2.0)  # 12 / 6
    assert noisy_linear_imputation(diagonal, centre, noise=0)[1, 1, 0] == pytest.approx(1.0)  # 12 / 12
    # a corner has three neighbours in the image: (2a + 2b + c) / 5 with a, b its axis neighbours, c its diagonal
    image = np.array([[0.0, 1.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 0.0]])[..., None]
    assert noisy_linear_imputation(image, removed_at((3, 3), (0, 0)), noise=0)[0, 0, 0] == pytest.approx(
        (2 * 1 + 2 * 2 + 4) / 5
    )


def test_removed_neighbours_are_solved_together_by_hand():
    """2 x 2, top row removed, bottom row (5, 0): 5x = 2y + 2*5 + 0 and 5y = 2x + 2*0 + 5, so x = 20/7, y = 15/7."""
    image = np.array([[9.0, 9.0], [5.0, 0.0]])[..., None]  # the removed values play no part
    filled = noisy_linear_imputation(image, removed_at((2, 2), (0, 0), (0, 1)), noise=0)[..., 0]
    np.testing.assert_allclose(filled, [[20 / 7, 15 / 7], [5.0, 0.0]], rtol=1e-12)


def test_the_imputed_values_solve_the_neighbour_system_exactly():
    rng = np.random.default_rng(0)
    image = rng.random((7, 6, 2))
    removed = rng.random((7, 6)) < 0.6
    filled = noisy_linear_imputation(image, removed, noise=0)
    np.testing.assert_array_equal(filled[~removed], image[~removed])  # kept pixels unchanged
    for i, j in zip(*np.nonzero(removed)):
        total, weights = np.zeros(2), 0.0
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if (di or dj) and 0 <= i + di < 7 and 0 <= j + dj < 6:
                    w = 1 / 6 if di == 0 or dj == 0 else 1 / 12
                    total, weights = total + w * filled[i + di, j + dj], weights + w
        np.testing.assert_allclose(filled[i, j], total / weights, rtol=1e-10)


def test_volumes_and_noise():
    volume = np.random.default_rng(1).random((4, 4, 4, 1))
    removed = np.zeros((4, 4, 4), bool)
    removed[1:3, 1:3, 1:3] = True
    smooth = noisy_linear_imputation(volume, removed, noise=0)
    assert volume[~removed].min() <= smooth[removed].min() and smooth[removed].max() <= volume[~removed].max()
    noisy = noisy_linear_imputation(volume, removed, noise=0.01, seed=3)
    again = noisy_linear_imputation(volume, removed, noise=0.01, seed=3)
    np.testing.assert_array_equal(noisy, again)  # seeded
    spread = (noisy - smooth)[removed]
    assert 0 < spread.std() < 0.05 and np.array_equal(noisy[~removed], volume[~removed])
    with pytest.raises(ValueError, match="nothing to impute"):
        noisy_linear_imputation(volume, np.ones((4, 4, 4), bool))


def test_road_of_a_perfect_attribution_on_a_linear_model():
    """F(x) = w . x: the perfect attribution w * x removes the evidence first (lowest ROAD), its negative last."""
    rng = np.random.default_rng(2)
    weights = rng.random((12, 12, 1))
    image = rng.random((12, 12, 1))

    def predict(batch):
        return (batch * weights).sum(axis=(1, 2, 3))

    perfect = (weights * image)[..., 0]
    random_map = rng.random((12, 12))
    scores = [road_score(predict, image, m, noise=0) for m in (perfect, random_map, -perfect)]
    assert scores[0] < scores[1] < scores[2]
    fractions, curve = road_curve(predict, image, perfect, noise=0)
    np.testing.assert_allclose(fractions, np.round(np.array(ROAD_FRACTIONS) * 144) / 144)
    assert road_score(predict, image, perfect, noise=0) == pytest.approx(curve.mean())
    # LeRF (least relevant first) keeps the evidence longest
    _, lerf = road_curve(predict, image, perfect, noise=0, most_relevant_first=False)
    assert lerf.mean() > curve.mean()
    with pytest.raises(ValueError, match="fractions"):
        road_curve(predict, image, perfect, fractions=[0.5, 1.0])
