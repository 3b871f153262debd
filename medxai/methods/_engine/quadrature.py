"""Integration rules for path methods: points ``alpha`` in [0, 1] and their weights.

Each rule approximates ``integral_0^1 f(alpha) d alpha`` by ``sum(w_k * f(alpha_k))``
with ``steps`` evaluations of ``f`` (one gradient each). Weights always sum to 1,
so a constant gradient (a linear model) is integrated exactly by every rule.
The names follow Captum's (``riemann_left`` ... ``gausslegendre``).
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
    if name not in RULES:
        known = ", ".join([*RULES, *CAPTUM_NAMES])
        raise ValueError(f"unknown integration rule {rule!r} (known: {known})")
    return name


def integration_points(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights of a named rule.

    Args:
        rule: One of :data:`RULES` (or Captum's spelling, :data:`CAPTUM_NAMES`).
        steps: Number of points (gradient evaluations), at least 1 (2 for trapezoid).

    Returns:
        ``(alphas, weights)``, float64 arrays of length ``steps``.

    Example:
        >>> alphas, weights = integration_points("riemann_middle", 2)
        >>> alphas.tolist(), weights.tolist()
        ([0.25, 0.75], [0.5, 0.5])
    """
    rule = canonical_rule(rule)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if steps > MAX_POINTS:
        raise ValueError(f"steps must be at most {MAX_POINTS}, got {steps!r}")
    return RULES[rule](int(steps))
