"""Per-map uncertainty (numpy only): running moments, the setting, and the stability figure.

* :class:`Welford` holds per-image running means and sums of squared deviations (Welford 1962),
  so a mean and a standard deviation come out of one pass over the samples, whatever their number:
  the gradient engine folds every sample into one as soon as it is done (memory bounded by
  ``batch_size``, never by ``samples``).
* :class:`Uncertainty` is the ``uncertainty`` setting of a method (``uncertainty: true``, or a
  mapping with ``samples``, ``radius`` and ``seed``).
* :func:`max_sensitivity` is the stability figure: the max-sensitivity of Yeh et al. (2019), "On
  the (In)fidelity and Sensitivity of Explanations", NeurIPS, arXiv:1901.09392, as Quantus's
  ``MaxSensitivity`` computes it by default::

      stability(x) = max_k ||Phi(x + d_k) - Phi(x)||_2 / ||x||_2,   d_k ~ U(-r, r) per value

  ``Phi`` the raw, signed attributions (Quantus: ``normalise=False``, ``abs=False``); the numerator
  and the denominator are Frobenius norms (Quantus's ``fro_norm`` both; the denominator is the
  norm of the *input*, Quantus's choice, where Yeh et al. report the numerator alone); ``k`` runs
  over ``samples`` draws (Quantus: ``nr_samples=200``). Lower is more stable; 0 means every
  perturbed map is identical to the map.

  Where medxai differs, and why: the radius is relative to each image's value range,
  ``r = radius * (max(x) - min(x))`` (Quantus: an absolute ``lower_bound=0.2``, which assumes
  inputs in about [0, 1]; a CT in Hounsfield units or a z-scored image would get a meaningless
  amount of noise; on an image in [0, 1] the two agree); the draws are seeded
  (``numpy.random.default_rng([seed, k])``, the same for every image and batching) so a rerun gives
  the same figure; an all-zero image (``||x|| = 0``) divides by 1, not by 0.

  Reading it: ``Phi`` is in the method's own units, so the figure compares images, models and
  settings of one method; across methods whose attributions have other scales (occlusion's score
  differences against a gradient) it compares scales as much as stability. A linear model's
  gradient map has stability 0 (its gradient does not depend on the input). Cost: each map
  explains ``samples`` perturbed copies more, i.e. the method's own cost times ``1 + samples``.

  The **relative** figure, ``stability_relative(x) = max_k ||Phi(x + d_k) - Phi(x)||_2 / ||Phi(x)||_2``
  (the same draws), is the largest change of the map measured in the map's own size: free of the
  method's units, so it compares methods (0.5: some copy's map moved by half the map; an all-zero
  map that stays zero is 0, one that changes is infinite). medxai's ``unstable`` flag reads it.

The SD maps (:attr:`medxai.methods.base.Explanation.sd`) are the population standard deviation
(``ddof=0``, numpy's ``std``) of the signed attributions over what the method averages:
SmoothGrad's noisy samples, Integrated Gradients' random baselines (``n_baselines > 1``), or for
RISE and LIME :func:`seed_groups` disjoint groups of their masks/samples, each group's own map
(the spread of a map made of ``samples / groups`` copies: about ``sqrt(groups)`` times the
spread of the full map). A deterministic method's SD map is zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Quantus ``MaxSensitivity`` defaults: ``nr_samples`` and ``lower_bound`` (uniform noise in [-0.2, 0.2]).
STABILITY_SAMPLES = 200
STABILITY_RADIUS = 0.2
#: Disjoint groups of a perturbation method's samples (RISE, LIME) whose maps give the SD.
SEED_GROUPS = 8
_KEYS = ("samples", "radius", "seed")


class Welford:
    """Running per-image mean and M2 (sum of squared deviations) in float64 (Welford's algorithm).

    Args:
        n: Images.
        shape: The shape of one image's values.
    """

    def __init__(self, n: int, shape: tuple[int, ...]):
        self.count = np.zeros(n, dtype=np.int64)
        self.mean = np.zeros((n, *shape), dtype=np.float64)
        self.m2 = np.zeros((n, *shape), dtype=np.float64)

    def add(self, index: int, value: np.ndarray) -> None:
        """Fold one sample of image ``index`` in."""
        self.count[index] += 1
        delta = value - self.mean[index]
        self.mean[index] += delta / self.count[index]
        self.m2[index] += delta * (value - self.mean[index])

    def variance(self) -> np.ndarray:
        """The population variance (``M2 / count``, numpy's ``var`` with ``ddof=0``); 0 before any sample."""
        count = np.maximum(self.count, 1).reshape((-1,) + (1,) * (self.mean.ndim - 1))
        return self.m2 / count

    def sd(self) -> np.ndarray:
        """The population standard deviation, float32 (numpy's ``std`` with ``ddof=0``)."""
        return np.sqrt(np.maximum(self.variance(), 0.0)).astype(np.float32)


@dataclass(frozen=True)
class Uncertainty:
    """A method's ``uncertainty`` setting.

    Attributes:
        samples: Perturbed inputs of the stability figure (Quantus's ``nr_samples``: 200).
        radius: Half-width of the uniform noise, as a fraction of each image's value range (0.2).
        seed: Seed of the noise (a run gives ``runtime.seed``).
    """

    samples: int = STABILITY_SAMPLES
    radius: float = STABILITY_RADIUS
    seed: int = 0

    @classmethod
    def of(cls, value: Any, seed: int | None = None) -> Uncertainty | None:
        """None for ``False``/None, the defaults for ``True``, or a mapping of the fields.

        ``seed`` is used when the value does not set one.

        Raises:
            ValueError: naming ``uncertainty`` (or ``uncertainty.<key>``) and what it must be.
        """
        if isinstance(value, Uncertainty):
            return value
        if value is None or value is False:
            return None
        fields: dict[str, Any] = {}
        if isinstance(value, Mapping):
            fields = dict(value)
        elif value is not True:
            raise ValueError(f"uncertainty must be true, false or a mapping of {', '.join(_KEYS)}, got {value!r}")
        problems = uncertainty_problems(fields)
        if problems:
            raise ValueError(problems[0][1])
        if seed is not None:
            fields.setdefault("seed", seed)
        return cls(
            samples=int(fields.get("samples", STABILITY_SAMPLES)),
            radius=float(fields.get("radius", STABILITY_RADIUS)),
            seed=int(fields.get("seed", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "radius": self.radius, "seed": self.seed}


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def uncertainty_problems(value: Any) -> list[tuple[str, str]]:
    """The problems of an ``uncertainty`` setting: ``[(key, message), ...]`` (key ``uncertainty[.<field>]``)."""
    if value is None or isinstance(value, bool):
        return []
    if not isinstance(value, Mapping):
        return [("uncertainty", f"uncertainty must be true, false or a mapping of {', '.join(_KEYS)}, got {value!r}")]
    problems = []
    for key in value:
        if key not in _KEYS:
            problems.append((f"uncertainty.{key}", f"unknown key {key!r} of uncertainty (known: {', '.join(_KEYS)})"))
    samples, radius, seed = value.get("samples", 1), value.get("radius", 0.1), value.get("seed", 0)
    if not _is_int(samples) or not 1 <= samples <= 100_000:
        problems.append(
            ("uncertainty.samples", f"uncertainty.samples must be an integer in 1..100000, got {samples!r}")
        )
    finite = not isinstance(radius, bool) and isinstance(radius, (int, float, np.integer, np.floating))
    if not finite or not np.isfinite(radius) or radius <= 0:
        problems.append(("uncertainty.radius", f"uncertainty.radius must be a number > 0, got {radius!r}"))
    if not _is_int(seed) or seed < 0:
        problems.append(("uncertainty.seed", f"uncertainty.seed must be an integer >= 0, got {seed!r}"))
    return problems


def seed_groups(samples: int) -> int:
    """How many seed groups ``samples`` copies make: :data:`SEED_GROUPS`, fewer (two or more copies each) when few."""
    return max(2, min(SEED_GROUPS, samples // 2))


def check_groups(samples: int, uncertainty: bool) -> None:
    """Refuse per-map uncertainty of a perturbation method with fewer than two groups of two copies.

    Raises:
        ValueError: naming ``samples``.
    """
    if uncertainty and samples < 4:
        raise ValueError(
            f"samples must be at least 4 with uncertainty (two seed groups of two copies), got {samples!r}"
        )


def stability_noise(image: np.ndarray, k: int, radius: float, seed: int) -> np.ndarray:
    """Draw ``k`` of the stability noise of one image: ``U(-r, r)`` per value, ``r = radius * (max - min)``.

    Drawn by ``numpy.random.default_rng([seed, k])`` in float64, returned as float32.
    """
    image = np.asarray(image)
    r = radius * float(image.max() - image.min())
    unit = np.random.default_rng([int(seed), int(k)]).uniform(-1.0, 1.0, size=image.shape)
    return (r * unit).astype(np.float32)


def sensitivity(attributions: np.ndarray, perturbed: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """``||perturbed - attributions||_F`` over ``||image||_F`` (a zero image divides by 1) and over
    ``||attributions||_F`` (0 when both are 0, infinite when only the map is 0), in float64."""
    change = np.asarray(perturbed, np.float64) - np.asarray(attributions, np.float64)
    numerator = float(np.linalg.norm(change.ravel()))
    denominator = float(np.linalg.norm(np.asarray(image, np.float64).ravel()))
    size = float(np.linalg.norm(np.asarray(attributions, np.float64).ravel()))
    relative = numerator / size if size > 0 else (0.0 if numerator == 0 else float("inf"))
    return numerator / (denominator if denominator > 0 else 1.0), relative


def max_sensitivity(
    explain: Any, images: np.ndarray, attributions: np.ndarray, setting: Uncertainty, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """The stability figure of each image's map (module docstring).

    Args:
        explain: ``explain(perturbed images, image indices) -> attributions`` of those images.
        images: ``(N, *spatial, C)`` the explained inputs.
        attributions: ``(N, *spatial, C)`` their attributions.
        setting: Samples, radius and seed.
        chunk: Perturbed copies per ``explain`` call (bounds host memory).

    Returns:
        ``(N,)`` float64 each: the maximum over the draws of the change over ``||x||`` (the stability
        figure) and over ``||Phi(x)||`` (the relative figure).
    """
    n = len(images)
    worst = np.zeros(n, dtype=np.float64)
    worst_relative = np.zeros(n, dtype=np.float64)
    pairs = [(i, k) for k in range(setting.samples) for i in range(n)]
    for start in range(0, len(pairs), max(1, chunk)):
        part = pairs[start : start + max(1, chunk)]
        owner = np.array([i for i, _ in part])
        copies = np.stack([images[i] + stability_noise(images[i], k, setting.radius, setting.seed) for i, k in part])
        explained = explain(copies, owner)
        for j, i in enumerate(owner):
            absolute, relative = sensitivity(attributions[i], explained[j], images[i])
            worst[i], worst_relative[i] = max(worst[i], absolute), max(worst_relative[i], relative)
    return worst, worst_relative
