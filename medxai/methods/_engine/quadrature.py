"""Integration rules for path methods: points ``alpha`` in [0, 1] and their weights.

Each rule approximates ``integral_0^1 f(alpha) d alpha`` by ``sum(w_k * f(alpha_k))``
with ``steps`` evaluations of ``f`` (one gradient each). Weights always sum to 1,
so a constant gradient (a linear model) is integrated exactly by every rule.
The names follow Captum's (``riemann_left`` ... ``gausslegendre``).

:func:`embedded_pair` gives the embedded pairs of ``steps: auto`` (:data:`ADAPTIVE_ONLY_RULES`):
they adapt their sub-intervals, have no fixed points, and :func:`integration_points` refuses them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Rule = Callable[[int], tuple[np.ndarray, np.ndarray]]


def riemann_left(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Left Riemann sum: ``alpha_k = k / steps`` for ``k = 0 .. steps-1``."""
    alphas = np.arange(steps, dtype=np.float64) / steps
    return alphas, np.full(steps, 1.0 / steps)


def riemann_right(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Right Riemann sum: ``alpha_k = k / steps`` for ``k = 1 .. steps``."""
    alphas = np.arange(1, steps + 1, dtype=np.float64) / steps
    return alphas, np.full(steps, 1.0 / steps)


def riemann_middle(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint rule: ``alpha_k = (k + 1/2) / steps``; error O(steps^-2)."""
    alphas = (np.arange(steps, dtype=np.float64) + 0.5) / steps
    return alphas, np.full(steps, 1.0 / steps)


def trapezoid(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid rule on ``steps`` equally spaced points including both ends."""
    if steps < 2:
        raise ValueError("the trapezoid rule needs steps >= 2")
    alphas = np.linspace(0.0, 1.0, steps)
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] *= 0.5
    return alphas, weights


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre quadrature: exact for polynomials of degree ``2*steps - 1``."""
    from scipy.special import roots_legendre  # O(steps) memory; numpy's leggauss builds a steps^2 matrix

    nodes, weights = roots_legendre(steps)
    return (nodes + 1.0) / 2.0, weights / 2.0


def kronrod_extension(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(2n+1)``-point Gauss-Kronrod rule on [-1, 1] and its embedded ``n``-point Gauss rule.

    Kronrod (1965), "Nodes and weights of quadrature formulas": add ``n + 1`` nodes to the
    ``n`` Gauss-Legendre nodes so that the ``2n + 1`` points integrate polynomials of degree
    ``3n + 1`` exactly (``3n + 2`` for even ``n``). The new nodes are the roots of the
    Stieltjes polynomial ``E_{n+1}``, orthogonal to ``P_n(x) x^k`` for ``k <= n``; as in
    Patterson (1968), "The optimum addition of points to quadrature formulae", it is
    found by its expansion in Legendre polynomials, and the weights by the moment
    equations in the Legendre basis (well conditioned for the small ``n`` used here;
    Laurie (1997), "Calculation of Gauss-Kronrod quadrature rules", is the stable
    algorithm for large ``n``).

    Args:
        n: Points of the embedded Gauss rule (7 gives the classic G7/K15 pair of QUADPACK).

    Returns:
        ``(nodes, kronrod_weights, gauss_weights)``, ascending nodes; ``gauss_weights`` is 0
        at the Kronrod-only nodes, so both rules are weighted sums of the same ``2n + 1`` values.
    """
    from numpy.polynomial import legendre
    from scipy.special import roots_legendre

    gauss_nodes, gauss_w = roots_legendre(n)
    x, w = roots_legendre(2 * n + 4)  # exact for the degree-(3n + 1 + n) products below

    def basis(k: int, at: np.ndarray) -> np.ndarray:
        return legendre.legval(at, np.eye(k + 1)[k])

    p_n = basis(n, x)
    # E_{n+1} = P_{n+1} + sum_{j<=n} c_j P_j with int P_n P_k E_{n+1} = 0 for k = 0..n
    system = np.array([[np.sum(w * p_n * basis(k, x) * basis(j, x)) for j in range(n + 1)] for k in range(n + 1)])
    rhs = -np.array([np.sum(w * p_n * basis(k, x) * basis(n + 1, x)) for k in range(n + 1)])
    coefficients = np.append(np.linalg.lstsq(system, rhs, rcond=None)[0], 1.0)
    extra = np.sort(np.real(legendre.legroots(coefficients)))
    nodes = np.sort(np.concatenate([gauss_nodes, extra]))
    moments = np.zeros(2 * n + 1)
    moments[0] = 2.0  # int_{-1}^{1} P_k = 2 for k = 0, else 0
    vandermonde = np.array([basis(k, nodes) for k in range(2 * n + 1)])
    kronrod_w = np.linalg.solve(vandermonde, moments)
    gauss_full = np.zeros(2 * n + 1)
    gauss_full[np.searchsorted(nodes, np.sort(gauss_nodes))] = gauss_w[np.argsort(gauss_nodes)]
    return nodes, kronrod_w, gauss_full


def gauss_kronrod(n: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Gauss-Kronrod pair on [0, 1] (:func:`kronrod_extension` mapped): ``(alphas, kronrod_w, gauss_w)``.

    Both weight vectors sum to 1. ``sum((kronrod_w - gauss_w) * f(alphas))`` estimates
    the Gauss rule's error at no extra evaluation (Piessens et al. 1983, QUADPACK ``qk15``).

    Example:
        >>> alphas, k, g = gauss_kronrod(7)
        >>> len(alphas), int((g > 0).sum()), round(float(k.sum()), 12), round(float(g.sum()), 12)
        (15, 7, 1.0, 1.0)
    """
    nodes, kronrod_w, gauss_w = kronrod_extension(n)
    return (nodes + 1.0) / 2.0, kronrod_w / 2.0, gauss_w / 2.0


#: Rules only ``steps: auto`` uses: embedded pairs on a sub-interval, which it subdivides (no fixed points).
ADAPTIVE_ONLY_RULES = ("adaptive_simpson", "gauss_kronrod_7", "gauss_kronrod_15")


def embedded_pair(rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes in [0, 1] of an adaptive-only rule, its weights and those of its embedded coarser rule.

    * ``adaptive_simpson``: the 3-point Clenshaw-Curtis rule (Clenshaw & Curtis 1960), which is
      Simpson's, with the 2-point one (the trapezoid on the ends) embedded; bisecting a
      sub-interval reuses all three nodes (Kuncir 1962; Lyness 1969).
    * ``gauss_kronrod_7`` / ``gauss_kronrod_15``: K7 with G3, K15 with G7 (:func:`gauss_kronrod`).

    Example:
        >>> [w.tolist() for w in embedded_pair("adaptive_simpson")]
        [[0.0, 0.5, 1.0], [0.16666666666666666, 0.6666666666666666, 0.16666666666666666], [0.5, 0.0, 0.5]]
    """
    if rule == "adaptive_simpson":
        return np.array([0.0, 0.5, 1.0]), np.array([1.0, 4.0, 1.0]) / 6.0, np.array([0.5, 0.0, 0.5])
    if rule not in ADAPTIVE_ONLY_RULES:
        raise ValueError(f"unknown adaptive rule {rule!r} (known: {', '.join(ADAPTIVE_ONLY_RULES)})")
    return gauss_kronrod({"gauss_kronrod_7": 3, "gauss_kronrod_15": 7}[rule])


#: The most points a rule gives (``medxai.methods.base.MAX_COUNTS["steps"]``).
MAX_POINTS = 4096

RULES: dict[str, Rule] = {
    "gauss_legendre": gauss_legendre,
    "trapezoid": trapezoid,
    "riemann_left": riemann_left,
    "riemann_right": riemann_right,
    "riemann_middle": riemann_middle,
}


#: Captum's spellings of the same rules (``IntegratedGradients.attribute(method=...)``).
CAPTUM_NAMES = {"gausslegendre": "gauss_legendre", "riemann_trapezoid": "trapezoid"}


def canonical_rule(rule: str) -> str:
    """The rule's name in :data:`RULES`, accepting Captum's spellings.

    Raises:
        ValueError: an unknown rule, listing the known ones.

    Example:
        >>> canonical_rule("gausslegendre"), canonical_rule("trapezoid")
        ('gauss_legendre', 'trapezoid')
    """
    name = CAPTUM_NAMES.get(rule, rule) if isinstance(rule, str) else rule
    if name not in RULES and name not in ADAPTIVE_ONLY_RULES:
        known = ", ".join([*RULES, *ADAPTIVE_ONLY_RULES, *CAPTUM_NAMES])
        raise ValueError(f"unknown integration rule {rule!r} (known: {known})")
    return name


def integration_points(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights of a named rule.

    Args:
        rule: One of :data:`RULES` (or Captum's spelling, :data:`CAPTUM_NAMES`).
        steps: Number of points (gradient evaluations), at least 1 (2 for trapezoid).

    Returns:
        ``(alphas, weights)``, float64 arrays of length ``steps``.

    Raises:
        ValueError: an unknown rule, an adaptive-only rule (:data:`ADAPTIVE_ONLY_RULES`), or bad ``steps``.

    Example:
        >>> alphas, weights = integration_points("riemann_middle", 2)
        >>> alphas.tolist(), weights.tolist()
        ([0.25, 0.75], [0.5, 0.5])
    """
    rule = canonical_rule(rule)
    if rule in ADAPTIVE_ONLY_RULES:
        raise ValueError(f"rule {rule!r} adapts its sub-intervals: use it with steps='auto', not a number of steps")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if steps > MAX_POINTS:
        raise ValueError(f"steps must be at most {MAX_POINTS}, got {steps!r}")
    return RULES[rule](int(steps))
