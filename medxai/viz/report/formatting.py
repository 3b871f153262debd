"""How the report writes numbers, settings, times and metric names as text (HTML escaping is the templates' job)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from medxai.viz.report.loading import to_float

#: The per-map quality columns of ``metrics.csv``, in display order.
METRIC_COLUMNS = (
    "completeness",
    "gini",
    "pointing_game",
    "relevance_mass",
    "topk_iou",
    "deletion_auc",
    "insertion_auc",
    "road",
)

# name: short label, "higher"/"lower" is better or "" (no direction), description
METRICS: dict[str, tuple[str, str, str]] = {
    "completeness": (
        "completeness δ",
        "lower",
        "IG only: relative completeness error |sum(attributions) - (F(x) - F(baseline))| / |F(x) - F(baseline)|",
    ),
    "gini": ("Gini", "", "sparseness: 0 = spread evenly, near 1 = concentrated"),
    "pointing_game": (
        "pointing",
        "higher",
        "1 when the map's peak falls inside the mask (hit), 0 when not; with tied peaks, the share inside",
    ),
    "relevance_mass": ("mass in mask", "higher", "share of the map's mass inside the mask"),
    "topk_iou": ("top-k IoU", "higher", "IoU of the map's top pixels with the mask"),
    "deletion_auc": ("deletion AUC", "lower", "score as the most important pixels are removed: lower is better"),
    "insertion_auc": ("insertion AUC", "higher", "score as the most important pixels are put back: higher is better"),
    "road": (
        "ROAD",
        "lower",
        "mean score as the most important 10-90 % of pixels are removed and imputed from their neighbours "
        "(Rong et al. 2022): lower is better",
    ),
}


def text(value: Any) -> str:
    """Any value as text; None as the empty string."""
    return "" if value is None else str(value)


def num(value: float | None) -> str:
    """A figure with three decimals (scientific notation for very small or large values); "–" for NaN."""
    if value is None or not math.isfinite(value):
        return "–"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.3f}"


def score(value: float) -> str:
    """A model score with three decimals; "–" for NaN."""
    return "–" if not math.isfinite(value) else f"{value:.3f}"


def percent(fraction: float) -> str:
    """A relative error as a percentage with two decimals."""
    return f"{fraction * 100:.2f} %"


def plain(value: Any) -> str:
    """A config/provenance value as compact text."""
    if value is None:
        return "—"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


def settings(value: Any, *, keep_none: bool = False) -> str | None:
    """A settings mapping as ``key: value, ...`` (unset keys left out unless ``keep_none``)."""
    if not isinstance(value, Mapping):
        return None if value is None else plain(value)
    joined = ", ".join(f"{k}: {plain(v)}" for k, v in value.items() if keep_none or v is not None)
    return joined or None


def parse_time(value: Any) -> datetime | None:
    """An ISO time, or None when it is not one."""
    try:
        return datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def when(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS TZ`` (anything else as it is)."""
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment else plain(value)


def metric_value(metric: str, value: float) -> str:
    """A metric's value as shown: the completeness error in percent, other figures with three decimals."""
    if metric == "completeness" and math.isfinite(value):
        return percent(value)
    return num(value)


def metric_labels(spec: Mapping[str, Any] | None) -> dict[str, str]:
    """Display names of the metrics; top-k IoU names its k when the evaluation's ``spec`` records it."""
    labels = {name: entry[0] for name, entry in METRICS.items()}
    share = to_float(spec.get("topk_percent")) if spec is not None else math.nan
    if math.isfinite(share):
        labels["topk_iou"] = f"top-{share:g}% IoU"
    return labels


def shorten(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, with an ellipsis when cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"
