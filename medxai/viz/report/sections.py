"""View models of the run-level sections (recommendation, run, quality figures, sanity check, failed images) as text."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medxai.io.index import read_index
from medxai.viz.report.figures import sanity_chart
from medxai.viz.report.formatting import (
    METRIC_COLUMNS,
    METRICS,
    metric_labels,
    metric_value,
    num,
    parse_time,
    plain,
    settings,
    text,
    when,
)
from medxai.viz.report.loading import Run, to_float


@dataclass
class Field:
    """One row of a key/value table; with ``full``, ``value`` is its short form in monospace."""

    key: str
    value: str
    full: str = ""


@dataclass
class Provenance:
    """The "Run" section: where the maps came from."""

    run: list[Field]
    model: list[Field]
    versions: str
    methods: list[tuple[str, str]]  # name, parameters


def provenance(run: Run) -> Provenance:
    """The run's folder, times and counts; the model, settings and methods with their parameters."""
    info = run.info
    config = info.get("config") or {}
    model = info.get("model") or {}
    counts = info.get("counts") or {}
    heatmap = info.get("heatmap") or config.get("heatmap") or {}
    output = config.get("output") or {}
    sha = str(model.get("sha256") or "")
    start, end = parse_time(info.get("started")), parse_time(info.get("ended"))
    took = f" ({(end - start).total_seconds():.1f} s)" if start and end else ""
    run_fields = [
        ("folder", str(run.root)),
        ("status", info.get("status")),
        ("started", when(info.get("started"))),
        ("ended", when(info.get("ended")) + took),
        ("host", info.get("host")),
        ("images", counts.get("images")),
        ("maps", counts.get("maps")),
        ("errors", counts.get("errors")),
        ("resumed", counts.get("resumed")),
        ("seconds", counts.get("seconds")),
    ]
    model_fields = [
        Field("model", plain(model.get("path"))),
        Field("sha256", sha[:12], sha) if sha else Field("sha256", "—"),
        *(
            Field(key, plain(value))
            for key, value in [
                ("input shape", model.get("input_shape")),
                ("classes", model.get("classes")),
                ("explains", model.get("explained") or (config.get("model") or {}).get("output")),
                ("targets", config.get("targets")),
                ("manifest", (config.get("data") or {}).get("manifest")),
                ("preprocess", settings(config.get("preprocess"))),
                ("heatmap", settings(heatmap, keep_none=True)),
                ("outputs", ", ".join(map(str, output.get("formats") or [])) or None),
                ("colormap", f"{output.get('colormap', '—')}, alpha {output.get('alpha', '—')}"),
            ]
        ),
    ]
    versions = info.get("versions") or {}
    methods = []
    for method in info.get("methods") or []:
        if not isinstance(method, Mapping):
            continue
        params = method.get("params") or {}
        if isinstance(params, Mapping):
            described = ", ".join(f"{k}={'None' if v is None else plain(v)}" for k, v in params.items())
        else:
            described = plain(params)
        methods.append((text(method.get("name")), described))
    return Provenance(
        run=[Field(key, plain(value)) for key, value in run_fields],
        model=model_fields,
        versions=", ".join(f"{k} {v}" for k, v in versions.items()) or "—",
        methods=methods,
    )


@dataclass
class QualityRow:
    """One metric of the quality table: per method, None or (mean, details, is the best mean)."""

    metric: str
    label: str
    arrow: str
    description: str
    cells: list[tuple[str, str, bool] | None]


@dataclass
class Quality:
    """The "Quality figures" section; ``source`` is empty when the run has not been evaluated."""

    root: str
    source: str = ""
    spec: str = ""
    methods: list[str] = field(default_factory=list)
    rows: list[QualityRow] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # label, metric, description


def _summary_from_metrics(run: Run) -> list[dict[str, str]]:
    """Mean/median/n per method and metric when ``metrics.csv`` exists but ``summary.csv`` does not."""
    from medxai.metrics import summarise

    values: dict[tuple[str, str], list[float]] = {}
    for (_, method, *_), figures in (run.metrics or {}).items():
        for metric, value in figures.items():
            values.setdefault((method, metric), []).append(value)
    rows = []
    for (method, metric), numbers in values.items():
        stats = summarise(numbers)
        rows.append({"method": method, "metric": metric, **{k: str(v) for k, v in stats.items()}})
    return rows


def _quality_cell(metric: str, row: Mapping[str, str], best: bool) -> tuple[str, str, bool]:
    details = []
    mean_low, mean_high = to_float(row.get("mean_ci_low")), to_float(row.get("mean_ci_high"))
    if math.isfinite(mean_low) or math.isfinite(mean_high):
        details.append(f"95 % CI of the mean [{metric_value(metric, mean_low)}, {metric_value(metric, mean_high)}]")
    if row.get("median", "") != "":
        details.append(f"median {metric_value(metric, to_float(row.get('median')))}")
    low, high = to_float(row.get("p2.5")), to_float(row.get("p97.5"))
    if math.isfinite(low) or math.isfinite(high):
        details.append(f"2.5–97.5 % of maps [{metric_value(metric, low)}, {metric_value(metric, high)}]")
    if row.get("n", "") != "":
        details.append(f"n={row['n']}")
    return metric_value(metric, to_float(row.get("mean"))), " ".join(details), best


def quality(run: Run) -> Quality:
    """One row per metric, one column per method, from ``summary.csv`` (else summarised from ``metrics.csv``)."""
    rows, source = run.summary, "summary.csv"
    if rows is None and run.metrics:
        rows, source = _summary_from_metrics(run), "metrics.csv (summarised here)"
    if rows is None:
        return Quality(root=str(run.root))
    labels = metric_labels(run.evaluation_spec)
    methods = [m for m in run.methods if any(r.get("method") == m for r in rows)]
    methods += sorted({r.get("method", "") for r in rows} - set(methods))
    metrics = [m for m in METRIC_COLUMNS if any(r.get("metric") == m for r in rows)]
    metrics += sorted({r.get("metric", "") for r in rows} - set(metrics))
    cells = {(r.get("metric", ""), r.get("method", "")): r for r in rows}
    table = []
    for metric in metrics:
        _, direction, description = METRICS.get(metric, (metric, "", ""))
        means = {m: to_float(cells[(metric, m)].get("mean")) for m in methods if (metric, m) in cells}
        finite = {m: v for m, v in means.items() if math.isfinite(v)}
        best = None
        if direction and len(finite) > 1 and len(set(finite.values())) > 1:
            best = (max if direction == "higher" else min)(finite, key=lambda m: finite[m])
        table.append(
            QualityRow(
                metric=metric,
                label=labels.get(metric, metric),
                arrow={"higher": " ↑", "lower": " ↓"}.get(direction, ""),
                description=description,
                cells=[
                    _quality_cell(metric, cells[(metric, m)], m == best) if (metric, m) in cells else None
                    for m in methods
                ],
            )
        )
    spec = run.evaluation_spec
    return Quality(
        root=str(run.root),
        source=source,
        spec=", ".join(f"{k}: {plain(v)}" for k, v in spec.items()) if spec else "",
        methods=methods,
        rows=table,
        legend=[(labels[m], m, METRICS[m][2]) for m in metrics if m in METRICS],
    )


@dataclass
class SanityRow:
    """One method's randomisation verdict; ``verdict`` is "pass", "fail", "undefined", "error" or ""."""

    method: str
    verdict: str
    why: str
    final: str
    final_abs: str
    threshold: str
    steps: int
    images: str


@dataclass
class Sanity:
    """The "Sanity check" section; ``rows`` empty: the evaluation ran none."""

    rows: list[SanityRow]
    has_verdicts: bool = False
    chart: str = ""  # a data: URI
    chart_error: str = ""


def _verdict(verdict: Any) -> tuple[str, str]:
    """The verdict's state and, for "undefined" and "error", why."""
    state = verdict.get("verdict") if isinstance(verdict, Mapping) else None
    if state in ("undefined", "error"):
        return state, text(verdict.get("error") or "a map is constant, so its rank correlation is undefined")
    if isinstance(verdict, Mapping) and isinstance(verdict.get("passed"), bool):
        return ("pass" if verdict["passed"] else "fail"), ""
    return "", ""


def sanity(run: Run) -> Sanity | None:
    """The model-randomisation verdicts and correlations; None when the run has no evaluation at all."""
    verdicts = (run.evaluation or {}).get("sanity") if run.evaluation else None
    verdicts = verdicts if isinstance(verdicts, Mapping) else {}
    rows = run.sanity or []
    if not rows and not verdicts:
        if run.metrics is None and run.summary is None:
            return None  # the quality section already says to run medxai evaluate
        return Sanity(rows=[])
    methods = [m for m in run.methods if m in verdicts or any(r.get("method") == m for r in rows)]
    methods += sorted((set(verdicts) | {r.get("method", "") for r in rows}) - set(methods))
    spec = run.evaluation_spec
    default_threshold = to_float(spec.get("sanity_threshold")) if spec is not None else math.nan
    thresholds = []
    table = []
    for method in methods:
        verdict = verdicts.get(method)
        figures = verdict if isinstance(verdict, Mapping) else {}
        threshold = to_float(figures.get("threshold"))
        threshold = threshold if math.isfinite(threshold) else default_threshold
        thresholds.append(threshold)
        own = [r for r in rows if r.get("method") == method and math.isfinite(to_float(r.get("step")))]
        own.sort(key=lambda r: to_float(r.get("step")))
        final = to_float(figures.get("final_spearman"))
        if not math.isfinite(final) and own:
            final = to_float(own[-1].get("spearman"))
        state, why = _verdict(verdict)
        table.append(
            SanityRow(
                method=method,
                verdict=state,
                why=why,
                final=num(final),
                final_abs=num(to_float(figures.get("final_spearman_abs"))),
                threshold=num(threshold),
                steps=len(own),
                images=text(figures.get("images", "")),
            )
        )
    section = Sanity(rows=table, has_verdicts=bool(verdicts))
    if rows:
        try:
            finite = {t for t in thresholds if math.isfinite(t)}
            section.chart = sanity_chart(rows, methods, finite.pop() if len(finite) == 1 else math.nan)
        except Exception as err:  # a chart problem must not end the report
            section.chart_error = str(err)
    return section


@dataclass
class Failure:
    """One error of one image (the methods it hit grouped)."""

    image_id: str
    source_path: str
    methods: str
    error: str


def failures(run: Run) -> tuple[int, list[Failure]]:
    """The number of images with a failed map, and one row per image and distinct error."""
    failed = [image for image in run.images if image.error_rows]
    table = []
    for image in failed:
        by_error: dict[str, list[str]] = {}
        for row in image.error_rows:
            by_error.setdefault(row.error or "(no message)", []).append(row.method)
        for error, methods in by_error.items():
            every = set(methods) >= set(run.methods) and not image.ok_rows
            which = "all methods" if every else ", ".join(dict.fromkeys(methods))
            table.append(Failure(image.image_id, image.source_path, which, error))
    return len(failed), table


@dataclass
class RecommendationTable:
    """The "Which map to trust" section: ``recommendation.csv``'s rows (plus ``why``), the rule and the notes."""

    columns: list[str]
    rows: list[dict[str, str]]
    rule: str = ""
    notes: list[str] = field(default_factory=list)


def recommendation(run: Run) -> RecommendationTable | None:
    """``recommendation.csv`` with evaluation.json's words (why, the rule, the flags' notes); None without the file."""
    path = run.root / "recommendation.csv"
    if not path.is_file():
        return None
    try:
        header, rows = read_index(path)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    record = (run.evaluation or {}).get("recommendation")
    record = record if isinstance(record, Mapping) else {}
    methods = record.get("methods")
    methods = methods if isinstance(methods, list) else []
    why = {m.get("method"): text(m.get("why")) for m in methods if isinstance(m, Mapping)}
    notes = record.get("notes")
    notes = notes if isinstance(notes, list) else []
    columns = [c for c in header if c != "method"]
    return RecommendationTable(
        columns=columns,
        rows=[
            {**{c: text(row.get(c)) for c in ["method", *columns]}, "why": why.get(row.get("method"), "")}
            for row in rows
        ],
        rule=text(record.get("rule")),
        notes=[text(n) for n in notes],
    )
