"""Which map to trust: paired method comparison with confidence intervals, and a recommendation.

medxai's convention, after the papers it follows:

* **Paired differences** (Hedström et al. 2023, Quantus, warn that metric means hide
  how little they separate methods): for each metric and pair of methods, the
  per-map differences ``a - b`` over the maps both methods have for the *same image
  and target*, their mean ``diff`` and a 95 % bootstrap confidence interval of that
  mean (:func:`~medxai.metrics.scores.bootstrap_mean_ci`: 2,000 resamples of the
  pairs, percentile method, seeded with the evaluation's seed; no correction for the
  number of pairs compared).
* **Who beats whom**: method A beats B on a metric when the interval excludes 0 in
  A's favour (the metric's direction) and at least :data:`MIN_PAIRS` maps are paired;
  otherwise they tie. On a group of metrics (faithfulness: deletion AUC, insertion
  AUC, ROAD; localisation: pointing game, relevance mass, top-k IoU)
  A beats B when it beats B on at least one metric of the group and loses on none.
* **Rank with ties**: a method's rank in a group is 1 + the number of methods that
  beat it there; methods nobody separates share a rank.
* **Flags** (words in ``recommendation.csv``'s ``flags``):
  ``model_insensitive``, the model does not react to deletion: every method's mean
  gap ``insertion AUC - deletion AUC`` lies within :data:`INSENSITIVE_BAND` of 0,
  its no-information value (a model that ignores the pixels gives equal curves,
  and a random ranking gives equal areas in expectation, since inserting a random
  ``t`` is deleting a random ``1 - t``); the faithfulness figures then cannot tell
  the methods apart and no faithfulness rank is given.
  ``sanity_underpowered``, the randomisation check (Adebayo et al. 2018) used fewer
  than :data:`MIN_SANITY_IMAGES` images, or fewer than two seeds, or the SD over
  seeds of a final correlation is above :data:`SANITY_SD_BOUND` (the notes say which).
  ``unstable``, the method's mean ``stability_relative`` (index.csv, written by a method's
  ``uncertainty`` option: the largest change of the map under small input noise over the
  map's own norm, ``max_k ||Phi(x + d_k) - Phi(x)|| / ||Phi(x)||``, the draws of Yeh et al.
  2019's max-sensitivity as Quantus computes it) is above :data:`UNSTABLE_ABOVE`: some
  noisy copy's map moved, on average over the maps, by more than half the map; skipped when
  the run has no such figures. Index.csv's ``stability`` (Quantus's ``... / ||x||``) is in
  each method's own attribution units, so it is neither compared nor flagged here; the
  relative figure is free of units, yet it is shown per method, not ranked.
* **Recommended**: the methods that pass the randomisation check (verdict PASS;
  FAIL, undefined, error or a check not run never recommend a method) and are not
  ``unstable``, and that no other such method *dominates*: beats it in a group
  (faithfulness, localisation) while losing to it in none. Flags such as
  ``sanity_underpowered`` and ``model_insensitive`` stay beside a recommended
  method: they qualify the evidence, the row shows them, no single score hides them.

Pure numpy (no TensorFlow): usable on a run's ``metrics.csv`` in a notebook.

References:
    Adebayo et al. (2018), "Sanity Checks for Saliency Maps", NeurIPS.
    Hedström et al. (2023), "Quantus: An Explainable AI Toolkit for Responsible
    Evaluation of Neural Network Explanations and Beyond", JMLR 24(34).
    Rong et al. (2022), "A Consistent and Efficient Evaluation Strategy for
    Attribution Methods", ICML (ROAD).
    Yeh et al. (2019), "On the (In)fidelity and Sensitivity of Explanations", NeurIPS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medxai.metrics.scores import BOOTSTRAP_RESAMPLES, bootstrap_mean_ci

__all__ = [
    "DIRECTIONS",
    "GROUPS",
    "Difference",
    "MethodVerdict",
    "Recommendation",
    "compare_methods",
    "group_ranks",
    "paired_difference",
    "recommend",
]

#: Which way is better per metric ("higher"/"lower"); metrics not listed are compared but never ranked.
DIRECTIONS = {
    "completeness": "lower",
    "pointing_game": "higher",
    "relevance_mass": "higher",
    "topk_iou": "higher",
    "deletion_auc": "lower",
    "insertion_auc": "higher",
    "road": "lower",
}
#: The groups of metrics a method is ranked on.
GROUPS = {
    "faithfulness": ("deletion_auc", "insertion_auc", "road"),
    "localisation": ("pointing_game", "relevance_mass", "topk_iou"),
}
#: Fewest paired maps for a difference to separate two methods (a bootstrap of fewer is too narrow to trust).
MIN_PAIRS = 10
#: ``model_insensitive`` when every method's mean ``insertion_auc - deletion_auc`` is within this of 0.
INSENSITIVE_BAND = 0.05
#: ``sanity_underpowered`` when the randomisation check used fewer images than this.
MIN_SANITY_IMAGES = 10
#: ``sanity_underpowered`` when the SD over seeds of a final correlation is above this.
SANITY_SD_BOUND = 0.2
#: ``unstable`` when a method's mean relative stability (the largest change of a map under small input noise
#: over the map's own norm) is above this: medxai's convention, half the map.
UNSTABLE_ABOVE = 0.5

FLAGS = ("model_insensitive", "sanity_underpowered", "unstable")


@dataclass(frozen=True)
class Difference:
    """The paired mean difference ``method_a - method_b`` of one metric and its confidence interval.

    Attributes:
        n: The maps both methods have a finite value for (same image and target).
    """

    metric: str
    method_a: str
    method_b: str
    diff: float
    ci_low: float
    ci_high: float
    n: int

    def winner(self, min_pairs: int = MIN_PAIRS) -> str | None:
        """The method the interval favours (by the metric's direction); None for a tie or no direction."""
        direction = DIRECTIONS.get(self.metric)
        if direction is None or self.n < min_pairs or not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return None
        if self.ci_low > 0:
            return self.method_a if direction == "higher" else self.method_b
        if self.ci_high < 0:
            return self.method_b if direction == "higher" else self.method_a
        return None


def paired_difference(
    a: Mapping[Any, float],
    b: Mapping[Any, float],
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
) -> tuple[float, float, float, int]:
    """Mean of ``a[k] - b[k]`` over the keys both have a finite value for, its bootstrap CI, and the pairs.

    The pairs are resampled together (:func:`~medxai.metrics.scores.bootstrap_mean_ci` of the
    differences), so what both maps of an image share cancels out.

    Returns:
        ``(diff, ci_low, ci_high, n)``; NaN figures when no key is shared.

    Example:
        >>> diff, low, high, n = paired_difference({1: 0.5, 2: 0.7, 3: 0.9}, {1: 0.4, 2: 0.5, 3: 0.8, 4: 0.1})
        >>> round(diff, 3), n, bool(low <= diff <= high)
        (0.133, 3, True)
    """
    keys = [k for k in a if k in b and math.isfinite(a[k]) and math.isfinite(b[k])]
    if not keys:
        return math.nan, math.nan, math.nan, 0
    diffs = np.array([a[k] - b[k] for k in keys], dtype=np.float64)
    low, high = bootstrap_mean_ci(diffs, seed=seed, resamples=resamples, level=level)
    return float(diffs.mean()), low, high, len(keys)


def compare_methods(
    values: Mapping[str, Mapping[str, Mapping[Any, float]]],
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
) -> list[Difference]:
    """Every pair of methods on every metric: :func:`paired_difference`, in the given orders.

    Args:
        values: ``values[metric][method][key]``: one figure per map, keyed by image and target.
        seed, resamples, level: Of the bootstrap.

    Returns:
        One :class:`Difference` per metric and pair (``method_a`` before ``method_b`` in
        ``values[metric]``'s order) sharing at least one map.
    """
    out = []
    for metric, per_method in values.items():
        methods = list(per_method)
        for i, first in enumerate(methods):
            for second in methods[i + 1 :]:
                diff, low, high, n = paired_difference(
                    per_method[first], per_method[second], seed=seed, resamples=resamples, level=level
                )
                if n:
                    out.append(Difference(metric, first, second, diff, low, high, n))
    return out


def _beats(differences: Sequence[Difference], metrics: Sequence[str]) -> dict[tuple[str, str], bool]:
    """``(a, b) -> True`` when a beats b on the group ``metrics`` (wins one, loses none)."""
    wins: dict[tuple[str, str], set[str]] = {}
    for d in differences:
        if d.metric not in metrics:
            continue
        winner = d.winner()
        if winner is not None:
            loser = d.method_b if winner == d.method_a else d.method_a
            wins.setdefault((winner, loser), set()).add(d.metric)
    return {pair: bool(won) and not wins.get((pair[1], pair[0])) for pair, won in wins.items()}


def group_ranks(differences: Sequence[Difference], methods: Sequence[str], metrics: Sequence[str]) -> dict[str, int]:
    """Rank with ties on a group of metrics: 1 + the number of methods that beat the method there.

    Only methods with at least one difference on the group are ranked.

    Example:
        >>> d = [Difference("road", "a", "b", -0.2, -0.3, -0.1, 20), Difference("road", "a", "c", 0.0, -0.1, 0.1, 20),
        ...      Difference("road", "b", "c", 0.2, 0.1, 0.3, 20)]
        >>> group_ranks(d, ["a", "b", "c"], ["road"])
        {'a': 1, 'b': 3, 'c': 1}
    """
    present = {m for d in differences if d.metric in metrics for m in (d.method_a, d.method_b)}
    beats = _beats(differences, metrics)
    return {m: 1 + sum(1 for other in methods if beats.get((other, m))) for m in methods if m in present}


@dataclass
class MethodVerdict:
    """One row of ``recommendation.csv``, with the words that explain it (``why``)."""

    method: str
    randomisation: str
    faithfulness_rank: int | None = None
    localisation_rank: int | None = None
    stability: float | None = None
    recommended: bool = False
    flags: list[str] = field(default_factory=list)
    why: str = ""

    def row(self) -> dict[str, Any]:
        """The CSV row: ranks and stability empty when absent, ``recommended`` yes/no, flags joined by ';'."""
        return {
            "method": self.method,
            "randomisation": self.randomisation,
            "faithfulness_rank": "" if self.faithfulness_rank is None else self.faithfulness_rank,
            "localisation_rank": "" if self.localisation_rank is None else self.localisation_rank,
            "stability": self.stability,
            "recommended": "yes" if self.recommended else "no",
            "flags": ";".join(self.flags),
        }


@dataclass
class Recommendation:
    """The per-method verdicts, the rule in words, and what each flag means for this run."""

    methods: list[MethodVerdict]
    notes: list[str] = field(default_factory=list)

    RULE = (
        "recommended = passes the randomisation check (Adebayo et al. 2018) and is not unstable, and no other such "
        "method beats it on faithfulness or localisation without losing on the other; one method beats "
        f"another on a metric when the 95 % bootstrap CI of their paired mean difference excludes 0 (>= {MIN_PAIRS} "
        "shared maps); ranks tie where no interval separates them"
    )

    def table(self) -> str:
        """A short text table (what ``medxai run``/``medxai evaluate`` print), the rule and the notes."""
        header = ("method", "randomisation", "faithfulness", "localisation", "stability", "recommended", "flags")
        cells = [
            (
                v.method,
                v.randomisation,
                "" if v.faithfulness_rank is None else str(v.faithfulness_rank),
                "" if v.localisation_rank is None else str(v.localisation_rank),
                "" if v.stability is None else f"{v.stability:.3f}",
                "yes" if v.recommended else "no",
                ";".join(v.flags),
            )
            for v in self.methods
        ]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
        lines = ["recommendation (ranks: 1 = best, ties share a rank):"]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *cells]]
        lines += [f"  {v.method}: {v.why}" for v in self.methods]
        lines.append(f"  rule: {self.RULE}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _finite(values: Sequence[float] | None) -> np.ndarray:
    arr = np.asarray([] if values is None else values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def model_insensitive(
    curves: Mapping[str, Sequence[tuple[float, float]]], band: float = INSENSITIVE_BAND
) -> tuple[bool, float]:
    """Whether the model does not react to deletion, and the largest mean gap seen.

    Args:
        curves: Per method, ``(deletion_auc, insertion_auc)`` per map (NaN pairs skipped).
        band: The band around the gap's no-information value 0.

    Returns:
        ``(flag, largest |mean(insertion - deletion)|)``; ``(False, nan)`` without curves.

    Example:
        >>> model_insensitive({"a": [(0.49, 0.51), (0.5, 0.5)], "b": [(0.50, 0.52)]})
        (True, 0.02)
    """
    gaps = []
    for pairs in curves.values():
        gap = _finite([insertion - deletion for deletion, insertion in pairs])
        if gap.size:
            gaps.append(abs(float(gap.mean())))
    if not gaps:
        return False, math.nan
    largest = round(max(gaps), 12)
    return largest <= band, largest


def _underpowered(verdict: Mapping[str, Any]) -> list[str]:
    """Why a method's randomisation check is underpowered (empty: it is not)."""
    why = []
    images = verdict.get("images")
    if isinstance(images, int) and images < MIN_SANITY_IMAGES:
        why.append(f"{images} image(s), fewer than {MIN_SANITY_IMAGES}")
    seeds = verdict.get("seeds")
    if isinstance(seeds, int) and seeds < 2:
        why.append("a single seed, so no spread over re-initialisations")
    for key, label in (("final_spearman_sd", "signed"), ("final_spearman_abs_sd", "absolute")):
        sd = verdict.get(key)
        if isinstance(sd, (int, float)) and math.isfinite(sd) and sd > SANITY_SD_BOUND:
            why.append(f"SD over seeds of the final {label} correlation {sd:.3f}, above {SANITY_SD_BOUND:g}")
    return why


def recommend(
    methods: Sequence[str],
    differences: Sequence[Difference],
    *,
    sanity: Mapping[str, Mapping[str, Any]] | None = None,
    curves: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    stability: Mapping[str, Sequence[float]] | None = None,
    unstable_above: float = UNSTABLE_ABOVE,
) -> Recommendation:
    """The recommendation table of a run (the module text gives the rule and the flags).

    Args:
        methods: The methods, in display order.
        differences: :func:`compare_methods` over the run's per-map figures.
        sanity: Per method, the randomisation verdict
            (:meth:`~medxai.metrics.randomisation.SanityResult.verdict` plus ``images``);
            None or missing: the check did not run.
        curves: Per method, ``(deletion_auc, insertion_auc)`` per map, for ``model_insensitive``.
        stability: Per method, the maps' relative stability (index.csv's ``stability_relative``);
            None: not computed.
        unstable_above: The ``unstable`` threshold on a method's mean relative stability.

    Example:
        >>> rec = recommend(["a", "b"], [], sanity={"a": {"verdict": "PASS", "images": 20, "seeds": 3},
        ...                                          "b": {"verdict": "FAIL", "images": 20, "seeds": 3}})
        >>> [(v.method, v.recommended) for v in rec.methods]
        [('a', True), ('b', False)]
    """
    sanity = sanity or {}
    insensitive, gap = model_insensitive(curves or {})
    notes = []
    if insensitive:
        notes.append(
            f"model_insensitive: the model does not react to deletion: every method's mean insertion AUC - deletion "
            f"AUC is within {INSENSITIVE_BAND:g} of 0 (largest {gap:.3f}), so deletion, insertion and ROAD cannot "
            "tell the methods apart; no faithfulness rank is given"
        )
    groups = {g: m for g, m in GROUPS.items() if not (insensitive and g == "faithfulness")}
    ranks = {g: group_ranks(differences, methods, metrics) for g, metrics in groups.items()}
    given = {m: np.asarray((stability or {}).get(m, []), dtype=np.float64).ravel() for m in methods}
    means = {m: values[~np.isnan(values)] for m, values in given.items()}  # an infinite change counts
    verdicts = []
    underpowered: dict[str, list[str]] = {}  # why -> the methods it holds for
    for method in methods:
        verdict = sanity.get(method)
        state = str(verdict.get("verdict")) if verdict else "not run"
        flags = ["model_insensitive"] if insensitive else []
        for why in _underpowered(verdict) if verdict and state not in ("error", "not run") else []:
            underpowered.setdefault(why, []).append(method)
            flags += [] if "sanity_underpowered" in flags else ["sanity_underpowered"]
        mean_stability = float(means[method].mean()) if means[method].size else None
        if mean_stability is not None and mean_stability > unstable_above:
            flags.append("unstable")
            notes.append(
                f"unstable ({method}): its maps change under small input noise by {mean_stability:.3f} of their own "
                f"norm on average (largest over the copies), above {unstable_above:g}"
            )
        verdicts.append(
            MethodVerdict(
                method,
                state,
                faithfulness_rank=ranks.get("faithfulness", {}).get(method),
                localisation_rank=ranks["localisation"].get(method),
                stability=mean_stability,
                flags=flags,
            )
        )
    notes += [f"sanity_underpowered ({', '.join(names)}): {why}" for why, names in underpowered.items()]
    eligible = [v.method for v in verdicts if v.randomisation == "PASS" and "unstable" not in v.flags]
    beats = {g: _beats(differences, metrics) for g, metrics in groups.items()}
    for v in verdicts:
        if v.randomisation != "PASS":
            v.why = {
                "FAIL": "not recommended: fails the randomisation check (its maps survive randomising the model)",
                "not run": "not recommended: the randomisation check did not run (evaluate with sanity_images > 0)",
            }.get(v.randomisation, f"not recommended: the randomisation check is {v.randomisation}")
            v.why += "; also unstable" if "unstable" in v.flags else ""
            continue
        if "unstable" in v.flags:
            v.why = "not recommended: unstable (its map changes under small input noise)"
            continue
        dominated_by = [
            other
            for other in eligible
            if other != v.method
            and any(beats[g].get((other, v.method)) for g in groups)
            and not any(beats[g].get((v.method, other)) for g in groups)
        ]
        v.recommended = not dominated_by
        if dominated_by:
            where = sorted({g for other in dominated_by for g in groups if beats[g].get((other, v.method))})
            v.why = f"not recommended: dominated by {', '.join(dominated_by)} ({', '.join(where)})"
        else:
            caveat = [f for f in v.flags if f != "unstable"]
            v.why = "recommended: passes the randomisation check and no eligible method dominates it" + (
                f" (with caveats: {', '.join(caveat)})" if caveat else ""
            )
    return Recommendation(verdicts, notes)
