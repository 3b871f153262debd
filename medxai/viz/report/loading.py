"""Reading a run folder (``index.csv``, ``run.json`` and the evaluation's files) into a :class:`Run`."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medxai.errors import ReportError
from medxai.io.index import INDEX_NAME, RUN_NAME, map_key, read_index

REQUIRED_INDEX = ("image_id", "method", "class_index", "status")

#: (image_id, method, class_index, region, component): the key of one map (:func:`medxai.io.index.map_key`,
#: the class as an int); a classifier's region and component are "".
MapKey = tuple[str, str, int | None, str, str]


def row_key(raw: Mapping[str, Any]) -> MapKey:
    """The :data:`MapKey` of an index or ``metrics.csv`` row (files written before region targets read the same)."""
    image_id, method, class_index, region, component = map_key(raw)
    return image_id, method, to_class(class_index), region, component


@dataclass
class MapRow:
    """One ``index.csv`` row, typed."""

    image_id: str
    method: str
    class_index: int | None
    score: float
    status: str
    error: str
    paths: dict[str, str]  # npy_path, png_path, overlay_path, sd_path (relative, may be "")
    delta: float
    seconds: float
    evaluations: str
    class_name: str = ""
    region: str = ""  # a region target's mask name (predicted, connected, ...); "" for a class
    component: str = ""
    region_voxels: str = ""
    region_score: float = math.nan
    region_path: str = ""  # the region's mask (.npy at the map's geometry), relative to the run folder
    stability: float = math.nan  # max-sensitivity under input noise (Yeh et al. 2019), with uncertainty on

    @property
    def key(self) -> MapKey:
        """The key of this row's map."""
        return self.image_id, self.method, self.class_index, self.region, self.component


@dataclass
class ImageEntry:
    """Every row of one image, in manifest order."""

    image_id: str
    label: str
    source_path: str
    mask_path: str
    rows: list[MapRow] = field(default_factory=list)
    predicted: str = ""  # the classes the model called positive, ";"-joined ("" when the index lacks them)

    @property
    def ok_rows(self) -> list[MapRow]:
        """The rows whose map was computed."""
        return [r for r in self.rows if r.status == "ok"]

    @property
    def error_rows(self) -> list[MapRow]:
        """The rows whose map failed."""
        return [r for r in self.rows if r.status != "ok"]

    @property
    def classes(self) -> list[int | None]:
        """The explained classes, in index order."""
        seen: dict[int | None, None] = {}
        for row in self.ok_rows:
            seen.setdefault(row.class_index, None)
        return list(seen)


@dataclass
class Run:
    """Everything read from a run folder."""

    root: Path
    info: dict[str, Any]
    images: list[ImageEntry]
    methods: list[str]
    metrics: dict[MapKey, dict[str, float]] | None
    summary: list[dict[str, str]] | None
    sanity: list[dict[str, str]] | None
    evaluation: dict[str, Any] | None
    notes: list[str]
    metric_errors: dict[MapKey, str] = field(default_factory=dict)

    @property
    def predicted_targets(self) -> bool:
        """Whether the run explained the predicted class (so a label can disagree with it)."""
        return (self.info.get("config") or {}).get("targets") == "predicted"

    @property
    def evaluation_spec(self) -> Mapping[str, Any] | None:
        """The settings ``medxai evaluate`` recorded, if any."""
        spec = (self.evaluation or {}).get("spec")
        return spec if isinstance(spec, Mapping) else None


def to_float(text: Any) -> float:
    """A CSV cell as float; NaN for empty or unparsable cells."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def to_class(text: Any) -> int | None:
    """A class index cell (``"1"`` or ``"1.0"``) as int, None when empty."""
    value = to_float(text)
    return int(value) if math.isfinite(value) else None


def _read_optional_csv(path: Path, required: Sequence[str], notes: list[str]) -> list[dict[str, str]] | None:
    """Rows of an optional CSV file; None (with a note) when absent, unreadable or missing columns.

    Cells stay strings: an id "NA" stays "NA".
    """
    if not path.is_file():
        return None
    try:
        header, rows = read_index(path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        notes.append(f"{path.name} could not be read ({err}); its figures are not shown.")
        return None
    missing = [c for c in required if c not in header]
    if missing:
        notes.append(f"{path.name} lacks the column(s) {', '.join(missing)}; its figures are not shown.")
        return None
    return rows


def _read_info(run_dir: Path) -> dict[str, Any]:
    run_json = run_dir / RUN_NAME
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"cannot read {run_json}: {err}") from err
    if not isinstance(info, dict):
        raise ReportError(f"cannot read {run_json}: expected a JSON object")
    return info


def _read_images(index_path: Path, methods: dict[str, None]) -> list[ImageEntry]:
    """The index's rows grouped by image; adds every method it names to ``methods``."""
    try:
        header, raw_rows = read_index(index_path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ReportError(f"cannot read {index_path}: {err}") from err
    lacking = [c for c in REQUIRED_INDEX if c not in header]
    if lacking:
        raise ReportError(f"{index_path} is not a medxai index: no column(s) {', '.join(lacking)}")
    images: dict[str, ImageEntry] = {}
    for raw in raw_rows:
        image_id = raw.get("image_id", "")
        image = images.get(image_id)
        if image is None:
            image = images[image_id] = ImageEntry(
                image_id, raw.get("label", ""), raw.get("source_path", ""), raw.get("mask_path", "")
            )
        methods.setdefault(raw["method"], None)
        if not image.predicted:
            image.predicted = (raw.get("predicted") or "").strip()
        image.rows.append(
            MapRow(
                image_id=image_id,
                method=raw["method"],
                class_index=to_class(raw.get("class_index")),
                score=to_float(raw.get("score")),
                status=(raw.get("status") or "").strip() or "error",
                error=raw.get("error", ""),
                paths={k: raw.get(k, "") or "" for k in ("npy_path", "png_path", "overlay_path", "sd_path")},
                delta=to_float(raw.get("relative_delta", raw.get("delta"))),
                seconds=to_float(raw.get("seconds")),
                evaluations=raw.get("evaluations", ""),
                class_name=(raw.get("class_name") or "").strip(),
                region=(raw.get("region") or "").strip(),
                component=(raw.get("component") or "").strip(),
                region_voxels=(raw.get("region_voxels") or "").strip(),
                region_score=to_float(raw.get("region_score")),
                region_path=raw.get("region_path") or "",
                stability=to_float(raw.get("stability")),
            )
        )
    return list(images.values())


def _read_metrics(run_dir: Path, notes: list[str]) -> tuple[dict[MapKey, dict[str, float]] | None, dict[MapKey, str]]:
    """``metrics.csv`` as figures per map, and the evaluation's error per map."""
    rows = _read_optional_csv(run_dir / "metrics.csv", ("image_id", "method", "class_index"), notes)
    if rows is None:
        return None, {}
    metrics: dict[MapKey, dict[str, float]] = {}
    errors: dict[MapKey, str] = {}
    skip = ("image_id", "method", "class_index", "channel", "region", "component", "error")
    for raw in rows:
        key = row_key(raw)
        metrics[key] = {name: to_float(value) for name, value in raw.items() if name not in skip}
        if raw.get("error", "").strip():
            errors[key] = raw["error"].strip()
    return metrics, errors


#: summary.csv's percentile columns as medxai named them before (they are no confidence interval).
OLD_SUMMARY_NAMES = {"ci_low": "p2.5", "ci_high": "p97.5"}


def _summary_rows(rows: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
    """summary.csv's rows under today's names: an old run folder's ``ci_low``/``ci_high`` read as ``p2.5``/``p97.5``.

    Example:
        >>> _summary_rows([{"method": "ig", "metric": "gini", "mean": "0.5", "ci_low": "0.1", "ci_high": "0.9"}])
        [{'method': 'ig', 'metric': 'gini', 'mean': '0.5', 'p2.5': '0.1', 'p97.5': '0.9'}]
    """
    if rows is None:
        return None
    return [{OLD_SUMMARY_NAMES.get(k, k) if OLD_SUMMARY_NAMES.get(k, k) not in row else k: v for k, v in row.items()}
            for row in rows]  # fmt: skip


def _read_evaluation(run_dir: Path, notes: list[str]) -> dict[str, Any] | None:
    path = run_dir / "evaluation.json"
    if not path.is_file():
        return None
    try:
        evaluation = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(evaluation, dict):
            raise ValueError("expected a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        notes.append(f"evaluation.json could not be read ({err}); sanity verdicts are not shown.")
        return None
    return evaluation


def load_run(run_dir: Path) -> Run:
    """Read a run folder written by ``medxai run`` (and ``medxai evaluate``, when it has been run).

    Optional files that cannot be used are skipped with a note in :attr:`Run.notes`.

    Raises:
        ReportError: ``run_dir`` is not a medxai run, or its index or run.json is unreadable.
    """
    if not run_dir.is_dir():
        raise ReportError(f"not a medxai run: {run_dir} is not a folder")
    index_path, run_json = run_dir / INDEX_NAME, run_dir / RUN_NAME
    missing = [p.name for p in (index_path, run_json) if not p.is_file()]
    if missing:
        raise ReportError(
            f"not a medxai run: {run_dir} has no {' and no '.join(missing)} (write one with `medxai run CONFIG`)"
        )
    info = _read_info(run_dir)
    methods: dict[str, None] = {}
    for method in info.get("methods") or []:
        if isinstance(method, Mapping) and method.get("name"):
            methods.setdefault(str(method["name"]), None)
    images = _read_images(index_path, methods)

    notes: list[str] = []
    metrics, metric_errors = _read_metrics(run_dir, notes)
    summary = _summary_rows(_read_optional_csv(run_dir / "summary.csv", ("method", "metric", "mean"), notes))
    sanity = _read_optional_csv(run_dir / "sanity.csv", ("method", "step", "spearman"), notes)
    evaluation = _read_evaluation(run_dir, notes)
    return Run(run_dir, info, images, list(methods), metrics, summary, sanity, evaluation, notes, metric_errors)
