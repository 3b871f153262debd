import numpy as np
import pytest

from medxai.methods._engine.quadrature import RULES, integration_points


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("steps", [2, 5, 32])
def test_weights_sum_to_one_and_points_in_unit_interval(rule, steps):
    alphas, weights = integration_points(rule, steps)
    assert len(alphas) == len(weights) == steps
    assert np.isclose(weights.sum(), 1.0, atol=1e-12)
    assert np.all((alphas >= 0) & (alphas <= 1))


def test_trapezoid_matches_numpy_trapezoid():
    f = lambda a: np.sin(3 * a) + a**2  # noqa: E731
    alphas, weights = integration_points("trapezoid", 11)
    assert np.isclose(np.sum(weights * f(alphas)), np.trapezoid(f(alphas), alphas), atol=1e-14)


def test_riemann_points_exactly():
    assert integration_points("riemann_left", 4)[0].tolist() == [0, 0.25, 0.5, 0.75]
    assert integration_points("riemann_right", 4)[0].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert integration_points("riemann_middle", 2)[0].tolist() == [0.25, 0.75]


@pytest.mark.parametrize("steps", [1, 2, 3, 6])
def test_gauss_legendre_exact_up_to_degree_2n_minus_1(steps):
    alphas, weights = integration_points("gauss_legendre", steps)
    for degree in range(2 * steps):
        assert np.isclose(np.sum(weights * alphas**degree), 1.0 / (degree + 1), rtol=1e-12)
    # one degree more is no longer exact
    degree = 2 * steps
    assert not np.isclose(np.sum(weights * alphas**degree), 1.0 / (degree + 1), rtol=1e-9)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "8", True])
def test_bad_steps_rejected(bad):
    with pytest.raises(ValueError, match="steps"):
        integration_points("riemann_left", bad)


def test_unknown_rule_lists_known():
    with pytest.raises(ValueError, match="gauss_legendre"):
        integration_points("simpson", 8)


def test_trapezoid_needs_two_points():
    with pytest.raises(ValueError, match="steps >= 2"):
        integration_points("trapezoid", 1)


@pytest.mark.parametrize(("captum", "ours"), [("gausslegendre", "gauss_legendre"), ("riemann_trapezoid", "trapezoid")])
def test_captums_rule_names_are_the_same_rules(captum, ours):
    np.testing.assert_array_equal(integration_points(captum, 5), integration_points(ours, 5))


def test_an_unknown_rule_lists_both_spellings():
    with pytest.raises(ValueError, match="unknown integration rule 'simpson'.*gauss_legendre.*gausslegendre"):
        integration_points("simpson", 4)
