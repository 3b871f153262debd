import numpy as np
import pytest

from medxai.methods._engine.quadrature import (
    ADAPTIVE_ONLY_RULES,
    RULES,
    embedded_pair,
    gauss_kronrod,
    integration_points,
    kronrod_extension,
)


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


# QUADPACK's qk15 nodes (Piessens et al. 1983), positive half on [-1, 1]: Kronrod, Gauss, Kronrod, ...
QK15_NODES = [
    0.991455371120812639206854697526329,
    0.949107912342758524526189684047851,
    0.864864423359769072789712788640926,
    0.741531185599394439863864773280788,
    0.586087235467691130294144845693013,
    0.405845151377397166906606412076961,
    0.207784955007898467600689403773245,
    0.0,
]


@pytest.mark.parametrize("n", [3, 7])
def test_kronrod_pair_exactness_nesting_and_weights(n):
    alphas, kronrod_w, gauss_w = gauss_kronrod(n)
    assert len(alphas) == 2 * n + 1 and np.all(np.diff(alphas) > 0) and np.all((alphas > 0) & (alphas < 1))
    assert np.isclose(kronrod_w.sum(), 1.0, atol=1e-14) and np.isclose(gauss_w.sum(), 1.0, atol=1e-14)
    assert np.all(kronrod_w > 0)
    # the Kronrod nodes contain the Gauss nodes: the Gauss rule is the same points, other weights
    legendre, _ = integration_points("gauss_legendre", n)
    np.testing.assert_allclose(alphas[gauss_w > 0], np.sort(legendre), atol=1e-14)
    assert np.count_nonzero(gauss_w) == n
    moment = lambda w, d: np.sum(w * alphas**d) - 1.0 / (d + 1)  # noqa: E731
    kronrod_degree = 3 * n + 1 + (n % 2 == 0)
    for degree in range(kronrod_degree + 1):
        assert abs(moment(kronrod_w, degree)) < 1e-13
    for degree in range(2 * n):
        assert abs(moment(gauss_w, degree)) < 1e-13
    assert abs(moment(gauss_w, 2 * n)) > 1e-9  # the Gauss rule stops at 2n - 1


def test_kronrod_15_nodes_are_quadpacks():
    nodes, _, _ = kronrod_extension(7)
    np.testing.assert_allclose(nodes[:7], -nodes[8:][::-1], atol=1e-15)  # symmetric
    np.testing.assert_allclose(nodes[7:][::-1], QK15_NODES, atol=1e-14)


@pytest.mark.parametrize("rule", sorted(ADAPTIVE_ONLY_RULES))
def test_adaptive_only_rules_have_no_fixed_points(rule):
    with pytest.raises(ValueError, match=f"rule '{rule}' adapts its sub-intervals: use it with steps='auto'"):
        integration_points(rule, 15)


@pytest.mark.parametrize(
    "rule,fine_degree,coarse_degree",
    [("adaptive_simpson", 3, 1), ("gauss_kronrod_7", 10, 5), ("gauss_kronrod_15", 22, 13)],
)
def test_embedded_pairs_share_their_points_and_are_exact_to_their_degree(rule, fine_degree, coarse_degree):
    nodes, fine, coarse = embedded_pair(rule)
    assert np.isclose(fine.sum(), 1.0, atol=1e-14) and np.isclose(coarse.sum(), 1.0, atol=1e-14)
    assert np.all((nodes >= 0) & (nodes <= 1)) and np.all(fine > 0)
    for degree in range(fine_degree + 1):
        assert abs(np.sum(fine * nodes**degree) - 1 / (degree + 1)) < 1e-13
    for degree in range(coarse_degree + 1):
        assert abs(np.sum(coarse * nodes**degree) - 1 / (degree + 1)) < 1e-13
    assert abs(np.sum(coarse * nodes ** (coarse_degree + 1)) - 1 / (coarse_degree + 2)) > 1e-9
    # bisection: Simpson's halves [0, 1/2] and [1/2, 1] use all three of its points again
    if rule == "adaptive_simpson":
        halves = np.concatenate([nodes / 2, 0.5 + nodes / 2])
        assert set(nodes.tolist()) <= set(halves.tolist())


def test_unknown_adaptive_rule():
    with pytest.raises(ValueError, match="unknown adaptive rule 'simpson'.*adaptive_simpson"):
        embedded_pair("simpson")
