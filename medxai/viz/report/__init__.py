"""``medxai report RUN_DIR``: a self-contained HTML report and a PNG contact sheet of a run.

:func:`write_report` reads a run folder written by ``medxai run`` (``index.csv``,
``run.json``, the maps) and, when ``medxai evaluate`` has been run, its quality
figures (``metrics.csv``, ``summary.csv``, ``sanity.csv``, ``evaluation.json``).
It writes two files into the run folder:

- ``report.html``: one file that opens from disk anywhere, with no network.
  Every picture is **embedded** as a base64 ``data:`` PNG thumbnail (at most
  :data:`THUMBNAIL_SIZE` pixels a side): each method's overlay and plain
  heatmap, with the ground-truth mask drawn over them as an inline SVG outline.
  The only other link is a relative one to ``contact_sheet.png`` beside it. CSS
  is inline; there are no scripts, web fonts or remote URLs. Every piece of
  text from the run (image ids, paths, errors) is HTML-escaped.
- ``contact_sheet.png``: one row per image and explained class, one column per
  method (the overlay, else the heatmap PNG, else the ``.npy`` map colour-mapped),
  at most :data:`CONTACT_SHEET_LIMIT` images.

Both are written atomically. Only numpy, imageio, scikit-image and matplotlib are
used: TensorFlow is never imported.

Example:
    >>> from medxai.viz.report import write_report
    >>> html_path, sheet_path = write_report("runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from medxai.errors import ReportError
from medxai.io.index import INDEX_NAME, RUN_NAME, read_index
from medxai.io.writers import write_png, write_text

__all__ = [
    "CONTACT_SHEET_LIMIT",
    "METRIC_COLUMNS",
    "THUMBNAIL_SIZE",
    "ReportError",
    "write_report",
]

#: The largest side of an embedded thumbnail, in pixels (larger pictures are downscaled).
THUMBNAIL_SIZE = 256
#: The most images the contact sheet shows (the HTML says when more were left off).
CONTACT_SHEET_LIMIT = 40
#: The per-map quality columns of ``metrics.csv``, in display order.
METRIC_COLUMNS = (
    "completeness",
    "gini",
    "pointing_game",
    "relevance_mass",
    "topk_iou",
    "deletion_auc",
    "insertion_auc",
)

_REQUIRED_INDEX = ("image_id", "method", "class_index", "status")
_DISPLAY_BOX = 150  # CSS pixels of the longer side of a thumbnail on screen
_SHEET_CELL = 128  # pixels of a contact sheet cell
_SHEET_MAX_ROWS = 200  # image/class rows of the contact sheet (27,000 px tall at most)
_DELTA_WARN = 0.05  # relative IG completeness error shown as a warning above this
_MASK_CACHE = 64  # masks kept in memory (an image's rows and the contact sheet reuse them)
_OUTLINE = "#00e5ff"  # ground-truth mask outline colour (cyan: apart from every map colormap)

# name, short label, "higher"/"lower" is better or "" (no direction), description
_METRICS: dict[str, tuple[str, str, str]] = {
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
}

_CSS = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #d9dee5; --bg: #f6f7f9; --card: #fff;
  --ok: #17733a; --okbg: #e3f4e8; --bad: #b3261e; --badbg: #fbe6e4; --warn: #8a5a00; --warnbg: #fff3d6; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 0; word-break: break-all; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
nav { margin: 10px 0 0; font-size: 13px; }
nav a { margin-right: 14px; color: #1f5fbf; text-decoration: none; }
.note { background: var(--warnbg); color: var(--warn); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.hint { background: #e8f0fb; color: #1f4f8f; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 32px; }
table { border-collapse: collapse; background: var(--card); margin: 6px 0 12px; }
th, td { text-align: left; vertical-align: top; padding: 4px 10px; border-bottom: 1px solid var(--line); }
th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
table.kv th { background: transparent; color: var(--muted); font-weight: 500; width: 11em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.wrap, .wrap { word-break: break-all; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 700; font-size: 12px; }
.pass { color: var(--ok); background: var(--okbg); }
.fail { color: var(--bad); background: var(--badbg); }
.warn { color: var(--warn); background: var(--warnbg); }
.image { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 14px; margin: 0 0 14px; }
.image .head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 14px; margin-bottom: 2px; }
.image .src { margin: 0 0 8px; word-break: break-all; }
.classrow { display: flex; flex-wrap: wrap; gap: 12px; margin: 6px 0 4px; }
.card { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fafbfc; }
.pair { display: flex; gap: 4px; }
.thumb { position: relative; background: #000; flex: none; }
.thumb img, .thumb svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.thumb svg { pointer-events: none; }
.thumb img.px { image-rendering: pixelated; }
.thumb.missing { display: flex; align-items: center; justify-content: center; background: #eceff3;
  color: var(--muted); font-size: 12px; text-align: center; padding: 6px; }
.card figcaption { margin-top: 5px; font-size: 12.5px; max-width: 312px; }
.card figcaption b { font-size: 13px; }
.figs { display: grid; grid-template-columns: 1fr auto 1fr auto; gap: 1px 8px; margin-top: 4px; font-size: 12px; }
.figs span.num { text-align: right; font-variant-numeric: tabular-nums; }
.figs span.warn { padding: 0 3px; border-radius: 3px; }
.error { color: var(--bad); white-space: pre-wrap; word-break: break-word; }
img.chart { max-width: 100%; background: #fff; border: 1px solid var(--line); }
.legend-outline { display: inline-block; width: 18px; height: 10px; border: 2px solid #00e5ff;
  vertical-align: middle; background: #222; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


# --------------------------------------------------------------------------
# reading the run
# --------------------------------------------------------------------------
@dataclass
class _MapRow:
    """One ``index.csv`` row, typed."""

    image_id: str
    method: str
    class_index: int | None
    score: float
    status: str
    error: str
    paths: dict[str, str]  # npy_path, png_path, overlay_path (relative, may be "")
    delta: float
    seconds: float
    evaluations: str


@dataclass
class _Image:
    """Every row of one image, in manifest order."""

    image_id: str
    label: str
    source_path: str
    mask_path: str
    rows: list[_MapRow] = field(default_factory=list)

    @property
    def ok_rows(self) -> list[_MapRow]:
        return [r for r in self.rows if r.status == "ok"]

    @property
    def error_rows(self) -> list[_MapRow]:
        return [r for r in self.rows if r.status != "ok"]

    @property
    def classes(self) -> list[int | None]:
        seen: dict[int | None, None] = {}
        for row in self.ok_rows:
            seen.setdefault(row.class_index, None)
        return list(seen)


@dataclass
class _Run:
    """Everything read from a run folder."""

    root: Path
    info: dict[str, Any]
    images: list[_Image]
    methods: list[str]
    metrics: dict[tuple[str, str, int | None], dict[str, float]] | None
    summary: list[dict[str, str]] | None
    sanity: list[dict[str, str]] | None
    evaluation: dict[str, Any] | None
    notes: list[str]
    metric_errors: dict[tuple[str, str, int | None], str] = field(default_factory=dict)


def _float(text: Any) -> float:
    """A CSV cell as float; NaN for empty or unparsable cells."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _class(text: Any) -> int | None:
    """A class index cell (``"1"`` or ``"1.0"``) as int, None when empty."""
    value = _float(text)
    return int(value) if math.isfinite(value) else None


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file as strings (nothing becomes NaN: an id "NA" stays "NA")."""
    return read_index(path)


def _read_optional_csv(path: Path, required: Sequence[str], notes: list[str]) -> list[dict[str, str]] | None:
    """Rows of an optional CSV file; None (with a note) when absent, unreadable or missing columns."""
    if not path.is_file():
        return None
    try:
        header, rows = _read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        notes.append(f"{path.name} could not be read ({err}); its figures are not shown.")
        return None
    missing = [c for c in required if c not in header]
    if missing:
        notes.append(f"{path.name} lacks the column(s) {', '.join(missing)}; its figures are not shown.")
        return None
    return rows


def _load_run(run_dir: Path) -> _Run:
    if not run_dir.is_dir():
        raise ReportError(f"not a medxai run: {run_dir} is not a folder")
    index_path, run_json = run_dir / INDEX_NAME, run_dir / RUN_NAME
    missing = [p.name for p in (index_path, run_json) if not p.is_file()]
    if missing:
        raise ReportError(
            f"not a medxai run: {run_dir} has no {' and no '.join(missing)} "
            "(write one with `medxai run CONFIG`)"
        )
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"cannot read {run_json}: {err}") from err
    if not isinstance(info, dict):
        raise ReportError(f"cannot read {run_json}: expected a JSON object")
    try:
        header, raw_rows = _read_csv(index_path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ReportError(f"cannot read {index_path}: {err}") from err
    lacking = [c for c in _REQUIRED_INDEX if c not in header]
    if lacking:
        raise ReportError(f"{index_path} is not a medxai index: no column(s) {', '.join(lacking)}")

    images: dict[str, _Image] = {}
    methods: dict[str, None] = {}
    for method in info.get("methods") or []:
        if isinstance(method, Mapping) and method.get("name"):
            methods.setdefault(str(method["name"]), None)
    for raw in raw_rows:
        image_id = raw.get("image_id", "")
        image = images.get(image_id)
        if image is None:
            image = images[image_id] = _Image(
                image_id, raw.get("label", ""), raw.get("source_path", ""), raw.get("mask_path", "")
            )
        methods.setdefault(raw["method"], None)
        image.rows.append(
            _MapRow(
                image_id=image_id,
                method=raw["method"],
                class_index=_class(raw.get("class_index")),
                score=_float(raw.get("score")),
                status=(raw.get("status") or "").strip() or "error",
                error=raw.get("error", ""),
                paths={k: raw.get(k, "") or "" for k in ("npy_path", "png_path", "overlay_path")},
                delta=_float(raw.get("relative_delta", raw.get("delta"))),
                seconds=_float(raw.get("seconds")),
                evaluations=raw.get("evaluations", ""),
            )
        )

    notes: list[str] = []
    metric_rows = _read_optional_csv(run_dir / "metrics.csv", ("image_id", "method", "class_index"), notes)
    metrics, metric_errors = None, {}
    if metric_rows is not None:
        metrics = {}
        for raw in metric_rows:
            key = (raw["image_id"], raw["method"], _class(raw["class_index"]))
            skip = ("image_id", "method", "class_index", "error")
            metrics[key] = {name: _float(value) for name, value in raw.items() if name not in skip}
            if raw.get("error", "").strip():
                metric_errors[key] = raw["error"].strip()
    summary = _read_optional_csv(run_dir / "summary.csv", ("method", "metric", "mean"), notes)
    sanity = _read_optional_csv(run_dir / "sanity.csv", ("method", "step", "spearman"), notes)
    evaluation = None
    evaluation_path = run_dir / "evaluation.json"
    if evaluation_path.is_file():
        try:
            evaluation = json.loads(evaluation_path.read_text(encoding="utf-8"))
            if not isinstance(evaluation, dict):
                raise ValueError("expected a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as err:
            notes.append(f"evaluation.json could not be read ({err}); sanity verdicts are not shown.")
            evaluation = None
    return _Run(
        run_dir, info, list(images.values()), list(methods), metrics, summary, sanity, evaluation, notes, metric_errors
    )


# --------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------
class _OutsideRun(ValueError):
    """An index path that leads out of the run folder."""


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is a file, None if it is missing.

    Raises:
        _OutsideRun: the path leads out of the run folder (an index is never followed out of it).
    """
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise _OutsideRun(relative)
    return path if path.is_file() else None


def _as_rgb(array: np.ndarray) -> np.ndarray:
    """Any 2D picture (grey, grey+alpha, RGB, RGBA; uint8/uint16/float) as RGB uint8."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"not a picture: shape {np.asarray(array).shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr.astype(np.float64) / 257.0).round().astype(np.uint8)
    arr = np.nan_to_num(arr.astype(np.float64))
    top = 255.0 if arr.max(initial=0) > 1.0 else 1.0
    return np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)


def _colourise_npy(path: Path, colormap: str) -> np.ndarray:
    """A saved ``[0, 1]`` map as the RGB picture ``medxai run`` would have written."""
    from medxai.viz.render import colorize

    heatmap = np.load(path, allow_pickle=False)
    heatmap = np.nan_to_num(heatmap.astype(np.float32))
    if heatmap.ndim not in (2, 3):
        raise ValueError(f"map of shape {heatmap.shape}")
    try:
        return colorize(heatmap, colormap)
    except ValueError:
        return colorize(heatmap, "inferno")


@dataclass
class _Picture:
    """A map picture for the report: pixels, where it came from, or why there is none."""

    rgb: np.ndarray | None
    kind: str  # "overlay", "heatmap", "heatmap from .npy" or ""
    problem: str = ""  # why there is no picture, or why a fallback was used


class _Pictures:
    """Reads (and caches) map pictures and masks of one run."""

    def __init__(self, run: _Run):
        self.root = run.root
        output = (run.info.get("config") or {}).get("output") or {}
        self.colormap = str(output.get("colormap") or "inferno")
        self._masks: dict[str, tuple[np.ndarray | None, str]] = {}

    def _read(self, relative: str) -> np.ndarray | None:
        path = _inside(self.root, relative)
        if path is None:
            return None
        import imageio.v3 as iio

        return _as_rgb(iio.imread(path, plugin="pillow"))

    def picture(self, row: _MapRow, prefer: Sequence[str]) -> _Picture:
        """The first picture that exists among ``prefer`` ("overlay", "heatmap", "npy")."""
        problems = []
        for kind in prefer:
            column = {"overlay": "overlay_path", "heatmap": "png_path", "npy": "npy_path"}[kind]
            relative = row.paths.get(column, "")
            if not relative:
                continue
            try:
                if kind == "npy":
                    path = _inside(self.root, relative)
                    rgb = None if path is None else _colourise_npy(path, self.colormap)
                else:
                    rgb = self._read(relative)
            except _OutsideRun:
                problems.append(f"{relative}: not shown (outside the run folder)")
                continue
            except Exception as err:  # a damaged file must not end the report
                problems.append(f"{relative}: unreadable ({type(err).__name__})")
                continue
            if rgb is None:
                problems.append(f"{relative}: file missing")
                continue
            kind_name = {"overlay": "overlay", "heatmap": "heatmap", "npy": "heatmap from .npy"}[kind]
            return _Picture(rgb, kind_name, "; ".join(problems))
        return _Picture(None, "", "; ".join(problems))

    def mask(self, mask_path: str) -> tuple[np.ndarray | None, str]:
        """The ground-truth mask as a 2D bool array laid out like the overlays (3D: a montage), or a problem."""
        if not mask_path:
            return None, ""
        if mask_path not in self._masks:
            if len(self._masks) >= _MASK_CACHE:
                self._masks.pop(next(iter(self._masks)))
            self._masks[mask_path] = self._load_mask(mask_path)
        return self._masks[mask_path]

    @staticmethod
    def _load_mask(mask_path: str) -> tuple[np.ndarray | None, str]:
        from medxai.io import read_image
        from medxai.viz.render import montage

        try:
            image = read_image(mask_path)
        except Exception as err:
            return None, f"mask not shown: {err}"
        mask = np.nan_to_num(image.array).astype(np.float64).max(axis=-1) > 0
        if mask.ndim == 3:
            mask = montage(mask)
        if mask.ndim != 2:
            return None, f"mask not shown: unexpected shape {image.array.shape}"
        return mask, ""


def _thumbnail(rgb: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """Downscale so the longer side is at most ``size`` (smaller pictures are kept as they are)."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    if scale >= 1:
        return rgb
    from skimage.transform import resize

    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    return resize(rgb, shape, order=1, anti_aliasing=True, preserve_range=True).round().astype(np.uint8)


def _png_bytes(rgb: np.ndarray) -> bytes:
    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, np.ascontiguousarray(rgb), extension=".png", optimize=True)
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outline polygons of a 2D bool mask as ``(N, 2)`` arrays of (x, y) in pixel-edge coordinates."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(mask.astype(np.float32), 1)  # closes outlines that touch the border
    outlines = []
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, tolerance=0.4) - 1.0
        outlines.append(np.stack([contour[:, 1] + 0.5, contour[:, 0] + 0.5], axis=1))
    return outlines


def _outline_svg(mask: np.ndarray) -> str:
    """An inline SVG (no namespace URL needed in HTML) drawing the mask outline over a thumbnail."""
    height, width = mask.shape
    paths = []
    for outline in _mask_contours(mask):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in outline)
        paths.append(f'<polyline vector-effect="non-scaling-stroke" points="{points}"/>')
    if not paths:
        return ""
    return (
        f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" aria-hidden="true">'
        f'<g fill="none" stroke="{_OUTLINE}" stroke-width="1.6" stroke-linejoin="round">'
        + "".join(paths)
        + "</g></svg>"
    )


def _display_size(height: int, width: int, box: int = _DISPLAY_BOX) -> tuple[int, int]:
    scale = box / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


# --------------------------------------------------------------------------
# HTML pieces
# --------------------------------------------------------------------------
def _e(value: Any) -> str:
    """Escaped text of any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float | None) -> str:
    """A figure with three decimals (scientific notation for very small or large values); "–" for NaN."""
    if value is None or not math.isfinite(value):
        return "–"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.3f}"


def _score(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.3f}"


def _plain(value: Any) -> str:
    """A config/provenance value as compact text."""
    if value is None:
        return "—"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


def _settings(value: Any, *, keep_none: bool = False) -> str | None:
    """A settings mapping as ``key: value, ...`` (unset keys left out unless ``keep_none``)."""
    if not isinstance(value, Mapping):
        return None if value is None else _plain(value)
    text = ", ".join(f"{k}: {_plain(v)}" for k, v in value.items() if keep_none or v is not None)
    return text or None


def _kv_table(pairs: Iterable[tuple[str, Any]], *, raw: Sequence[str] = ()) -> str:
    """A two-column table; values are escaped unless their key is in ``raw`` (already HTML)."""
    rows = []
    for key, value in pairs:
        cell = value if key in raw else _e(_plain(value))
        rows.append(f"<tr><th>{_e(key)}</th><td class=\"wrap\">{cell}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None


def _when(text: Any) -> str:
    moment = _parse_time(text)
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment else _plain(text)


def _provenance(run: _Run) -> str:
    info = run.info
    config = info.get("config") or {}
    model = info.get("model") or {}
    counts = info.get("counts") or {}
    heatmap = info.get("heatmap") or config.get("heatmap") or {}
    output = config.get("output") or {}
    sha = str(model.get("sha256") or "")
    sha_html = f'<span class="mono" title="{_e(sha)}">{_e(sha[:12])}</span>' if sha else "—"
    start, end = _parse_time(info.get("started")), _parse_time(info.get("ended"))
    took = f" ({(end - start).total_seconds():.1f} s)" if start and end else ""
    run_pairs = [
        ("folder", str(run.root)),
        ("status", info.get("status")),
        ("started", _when(info.get("started"))),
        ("ended", _when(info.get("ended")) + took),
        ("host", info.get("host")),
        ("images", counts.get("images")),
        ("maps", counts.get("maps")),
        ("errors", counts.get("errors")),
        ("resumed", counts.get("resumed")),
        ("seconds", counts.get("seconds")),
    ]
    model_pairs = [
        ("model", model.get("path")),
        ("sha256", sha_html),
        ("input shape", model.get("input_shape")),
        ("classes", model.get("classes")),
        ("explains", model.get("explained") or (config.get("model") or {}).get("output")),
        ("targets", config.get("targets")),
        ("manifest", (config.get("data") or {}).get("manifest")),
        ("preprocess", _settings(config.get("preprocess"))),
        ("heatmap", _settings(heatmap, keep_none=True)),
        ("outputs", ", ".join(map(str, output.get("formats") or [])) or None),
        ("colormap", f"{output.get('colormap', '—')}, alpha {output.get('alpha', '—')}"),
    ]
    versions = info.get("versions") or {}
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items()) or "—"
    method_rows = []
    for method in info.get("methods") or []:
        if not isinstance(method, Mapping):
            continue
        params = method.get("params") or {}
        if isinstance(params, Mapping):
            text = ", ".join(f"{k}={'None' if v is None else _plain(v)}" for k, v in params.items())
        else:
            text = _plain(params)
        method_rows.append(f"<tr><td><b>{_e(method.get('name'))}</b></td><td class=\"mono wrap\">{_e(text)}</td></tr>")
    methods_html = (
        "<table><tr><th>method</th><th>parameters</th></tr>" + "".join(method_rows) + "</table>"
        if method_rows
        else '<p class="muted">run.json lists no methods.</p>'
    )
    return (
        '<section id="provenance"><h2>Run</h2><div class="grid2">'
        f"<div>{_kv_table(run_pairs)}</div><div>{_kv_table(model_pairs, raw=('sha256',))}</div></div>"
        f'<p class="small"><span class="muted">versions:</span> {_e(version_text)}</p>'
        f"{methods_html}</section>"
    )


def _metric_name(metric: str) -> str:
    return _METRICS.get(metric, (metric, "", ""))[0]


def _summary_from_metrics(run: _Run) -> list[dict[str, str]]:
    """Mean/median/n per method and metric when ``metrics.csv`` exists but ``summary.csv`` does not."""
    from medxai.metrics import summarise

    values: dict[tuple[str, str], list[float]] = {}
    for (_, method, _), figures in (run.metrics or {}).items():
        for metric, value in figures.items():
            values.setdefault((method, metric), []).append(value)
    rows = []
    for (method, metric), numbers in values.items():
        stats = summarise(numbers)
        rows.append({"method": method, "metric": metric, **{k: str(v) for k, v in stats.items()}})
    return rows


def _metric_value(metric: str, value: float) -> str:
    """A metric's value as shown: the completeness error in percent, other figures with three decimals."""
    if metric == "completeness" and math.isfinite(value):
        return f"{value * 100:.2f} %"
    return _num(value)


def _evaluation_spec(run: _Run) -> str:
    spec = (run.evaluation or {}).get("spec")
    if not isinstance(spec, Mapping) or not spec:
        return ""
    text = ", ".join(f"{k}: {_plain(v)}" for k, v in spec.items())
    return f'<p class="small"><span class="muted">evaluation settings:</span> {_e(text)}</p>'


def _summary(run: _Run) -> str:
    """The quality section: one row per metric, one column per method (or the hint to evaluate)."""
    parts = ['<section id="quality"><h2>Quality figures</h2>']
    rows = run.summary
    source = "summary.csv"
    if rows is None and run.metrics:
        rows, source = _summary_from_metrics(run), "metrics.csv (summarised here)"
    if rows is None:
        parts.append(
            f'<p class="hint">No quality figures yet: run <code>medxai evaluate {_e(run.root)}</code> '
            "(<code>medxai evaluate RUN_DIR</code>) for quality figures.</p></section>"
        )
        return "".join(parts)
    labels = _metric_labels(run)
    methods = [m for m in run.methods if any(r.get("method") == m for r in rows)]
    methods += sorted({r.get("method", "") for r in rows} - set(methods))
    metrics = [m for m in METRIC_COLUMNS if any(r.get("metric") == m for r in rows)]
    metrics += sorted({r.get("metric", "") for r in rows} - set(metrics))
    cells = {(r.get("metric", ""), r.get("method", "")): r for r in rows}
    head = "".join(f"<th>{_e(m)}</th>" for m in methods)
    body = []
    for metric in metrics:
        _, direction, description = _METRICS.get(metric, (metric, "", ""))
        arrow = {"higher": " ↑", "lower": " ↓"}.get(direction, "")
        means = {m: _float(cells[(metric, m)].get("mean")) for m in methods if (metric, m) in cells}
        finite = {m: v for m, v in means.items() if math.isfinite(v)}
        best = None
        if direction and len(finite) > 1 and len(set(finite.values())) > 1:
            best = (max if direction == "higher" else min)(finite, key=finite.get)
        tds = []
        for method in methods:
            row = cells.get((metric, method))
            if row is None:
                tds.append('<td class="num muted">–</td>')
                continue
            low, high = _float(row.get("ci_low")), _float(row.get("ci_high"))
            details = []
            if row.get("median", "") != "":
                details.append(f"median {_metric_value(metric, _float(row.get('median')))}")
            if math.isfinite(low) or math.isfinite(high):
                details.append(f"[{_metric_value(metric, low)}, {_metric_value(metric, high)}]")
            if row.get("n", "") != "":
                details.append(f"n={row['n']}")
            mean = _metric_value(metric, _float(row.get("mean")))
            mean = f"<b>{mean}</b>" if method == best else mean
            tds.append(f'<td class="num">{mean}<br><span class="small muted">{_e(" ".join(details))}</span></td>')
        body.append(
            f'<tr><th title="{_e(description)}">{_e(labels.get(metric, metric))}{arrow}<br>'
            f'<span class="small muted">{_e(metric)}</span></th>{"".join(tds)}</tr>'
        )
    parts.append(
        f'<p class="small muted">From {_e(source)}: the mean over maps per method, then the median, '
        "[ci_low, ci_high] as written by the evaluation, and n, the number of maps with a value "
        "(localisation figures need a non-empty mask). ↑ higher is better, ↓ lower is better; "
        "the best mean is in bold.</p>"
    )
    parts.append(_evaluation_spec(run))
    parts.append(f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>")
    legend = "".join(
        f"<li><b>{_e(labels[m])}</b> ({_e(m)}): {_e(_METRICS[m][2])}</li>" for m in metrics if m in _METRICS
    )
    if legend:
        parts.append(f'<ul class="small muted">{legend}</ul>')
    parts.append("</section>")
    return "".join(parts)


def _sanity_chart(rows: list[dict[str, str]], methods: Sequence[str], threshold: float = math.nan) -> str:
    """A line chart of the rank correlation per randomisation step, as an embedded PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps: dict[float, str] = {}
    for row in rows:
        steps.setdefault(_float(row.get("step")), row.get("layer", ""))
    order = sorted(s for s in steps if math.isfinite(s))
    if not order:
        return ""
    fig = Figure(figsize=(8.6, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method in methods:
        points = sorted(
            (_float(r.get("step")), _float(r.get("spearman"))) for r in rows if r.get("method") == method
        )
        points = [(s, v) for s, v in points if math.isfinite(s)]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=4, label=method)
    ax.axhline(0, color="#999", lw=0.8)
    if math.isfinite(threshold):
        ax.axhline(threshold, color="#b3261e", lw=1, ls="--", label=f"pass threshold {threshold:g}")
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.05)
    ax.set_ylabel("Spearman ρ with the original map")
    ax.set_xticks(order)
    labels = [steps[s] or f"{s:g}" for s in order]
    rotate = max(len(t) for t in labels) * len(labels) > 60
    ax.set_xticklabels(labels, rotation=30 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    for label in ax.get_xticklabels():
        label.set_parse_math(False)
    ax.set_xlabel("randomised from the top down to layer")
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    for text in legend.get_texts():
        text.set_parse_math(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return f'<img class="chart" alt="rank correlation per randomisation step" src="{_data_uri(buffer.getvalue())}">'


def _sanity(run: _Run) -> str:
    verdicts = (run.evaluation or {}).get("sanity") if run.evaluation else None
    verdicts = verdicts if isinstance(verdicts, Mapping) else {}
    rows = run.sanity or []
    if not rows and not verdicts:
        if run.metrics is None and run.summary is None:
            return ""  # the quality section already says to run medxai evaluate
        return (
            '<section id="sanity"><h2>Sanity check</h2>'
            '<p class="muted">No sanity check in this run\'s evaluation.</p></section>'
        )
    methods = [m for m in run.methods if m in verdicts or any(r.get("method") == m for r in rows)]
    methods += sorted((set(verdicts) | {r.get("method", "") for r in rows}) - set(methods))
    spec = (run.evaluation or {}).get("spec")
    default_threshold = _float(spec.get("sanity_threshold")) if isinstance(spec, Mapping) else math.nan
    thresholds = []
    body = []
    for method in methods:
        verdict = verdicts.get(method)
        threshold = _float(verdict.get("threshold")) if isinstance(verdict, Mapping) else math.nan
        threshold = threshold if math.isfinite(threshold) else default_threshold
        thresholds.append(threshold)
        images = verdict.get("images", "") if isinstance(verdict, Mapping) else ""
        own = [r for r in rows if r.get("method") == method and math.isfinite(_float(r.get("step")))]
        own.sort(key=lambda r: _float(r.get("step")))
        final = _float(verdict.get("final_spearman")) if isinstance(verdict, Mapping) else math.nan
        if not math.isfinite(final) and own:
            final = _float(own[-1].get("spearman"))
        state = verdict.get("verdict") if isinstance(verdict, Mapping) else None
        if state in ("undefined", "error"):
            why = verdict.get("error") or "a map is constant, so its rank correlation is undefined"
            badge = f'<span class="badge warn">{state}</span> <span class="small">{_e(why)}</span>'
        elif isinstance(verdict, Mapping) and isinstance(verdict.get("passed"), bool):
            passed = verdict["passed"]
            badge = f'<span class="badge {"pass" if passed else "fail"}">{"PASS" if passed else "FAIL"}</span>'
        else:
            badge = '<span class="badge warn">no verdict</span>'
        final_abs = _float(verdict.get("final_spearman_abs")) if isinstance(verdict, Mapping) else math.nan
        body.append(
            f"<tr><td><b>{_e(method)}</b></td><td>{badge}</td><td class=\"num\">{_num(final)}</td>"
            f"<td class=\"num\">{_num(final_abs)}</td>"
            f"<td class=\"num\">{_num(threshold)}</td><td class=\"num\">{len(own)}</td>"
            f"<td class=\"num\">{_e(images)}</td></tr>"
        )
    parts = [
        '<section id="sanity"><h2>Sanity check: model randomisation</h2>',
        '<p class="small muted">The model\'s layers are randomised from the top down and the maps computed again. '
        "A method that explains the model must then give different maps: the rank correlation with the "
        "original map should fall towards 0. PASS/FAIL is <code>medxai evaluate</code>'s verdict "
        "(evaluation.json), which compares the final correlations (signed and of absolute values, mean over "
        "seeds) with the threshold, medxai's convention (Adebayo et al. 2018 set none).</p>",
        "<table><tr><th>method</th><th>verdict</th><th>final Spearman ρ</th><th>ρ of |attributions|</th><th>threshold</th>"
        "<th>steps</th><th>images</th></tr>",
        "".join(body),
        "</table>",
    ]
    if not verdicts:
        parts.append('<p class="note">evaluation.json has no sanity verdicts: only the correlations are shown.</p>')
    if rows:
        try:
            finite = {t for t in thresholds if math.isfinite(t)}
            parts.append(_sanity_chart(rows, methods, finite.pop() if len(finite) == 1 else math.nan))
        except Exception as err:  # a chart problem must not end the report
            parts.append(f'<p class="note">sanity chart not drawn: {_e(err)}</p>')
    parts.append("</section>")
    return "".join(parts)


def _thumb_html(picture: _Picture, mask: np.ndarray | None, alt: str) -> tuple[str, str]:
    """One thumbnail box (image + mask outline) and a note when the outline could not be drawn."""
    if picture.rgb is None:
        width, height = _display_size(1, 1)
        text = _e(picture.problem or "no picture written")
        return f'<div class="thumb missing" style="width:{width}px;height:{height}px">{text}</div>', ""
    rgb = picture.rgb
    thumb = _thumbnail(rgb)
    width, height = _display_size(*thumb.shape[:2])
    outline, note = "", ""
    if mask is not None:
        if abs(mask.shape[0] / mask.shape[1] - rgb.shape[0] / rgb.shape[1]) < 0.02:
            outline = _outline_svg(mask)
        else:
            note = (
                f"mask {mask.shape[1]}x{mask.shape[0]} does not match the map "
                f"{rgb.shape[1]}x{rgb.shape[0]}; outline not drawn"
            )
    pixelated = ' class="px"' if width >= 2 * thumb.shape[1] else ""  # show small maps' pixels, not a blur
    img = f'<img{pixelated} alt="{_e(alt)}" src="{_data_uri(_png_bytes(thumb))}">'
    return f'<div class="thumb" style="width:{width}px;height:{height}px">{img}{outline}</div>', note


def _metric_labels(run: _Run) -> dict[str, str]:
    """Display names of the metrics; top-k IoU names its k when evaluation.json records it."""
    labels = {name: spec[0] for name, spec in _METRICS.items()}
    spec = (run.evaluation or {}).get("spec")
    percent = _float(spec.get("topk_percent")) if isinstance(spec, Mapping) else math.nan
    if math.isfinite(percent):
        labels["topk_iou"] = f"top-{percent:g}% IoU"
    return labels


def _figures(row: _MapRow, run: _Run) -> str:
    """The quality figures of one map: IG's completeness error from the index, then metrics.csv."""
    key = (row.image_id, row.method, row.class_index)
    items = []
    if math.isfinite(row.delta):
        cls = "warn" if row.delta > _DELTA_WARN else ""
        items.append((_METRICS["completeness"][0], f"{row.delta * 100:.2f} %", _METRICS["completeness"][2], cls))
    figures = (run.metrics or {}).get(key)
    labels = _metric_labels(run)
    if figures:
        for metric in [m for m in METRIC_COLUMNS if m in figures] + sorted(set(figures) - set(METRIC_COLUMNS)):
            value = figures[metric]
            if not math.isfinite(value) or (metric == "completeness" and math.isfinite(row.delta)):
                continue  # the index's delta is the same figure
            if metric == "completeness":
                shown = f"{value * 100:.2f} %"
            elif metric == "pointing_game":
                shown = "hit" if value == 1 else "miss" if value == 0 else f"{value:.2f} of tied peaks"
            else:
                shown = _num(value)
            items.append((labels.get(metric, metric), shown, _METRICS.get(metric, ("", "", ""))[2], ""))
    parts = [
        f'<span title="{_e(title)}">{_e(label)}</span><span class="num {cls}">{_e(shown)}</span>'
        for label, shown, title, cls in items
    ]
    html_text = f'<div class="figs">{"".join(parts)}</div>' if parts else ""
    if run.metrics is not None and figures is None:
        html_text += '<div class="small muted">no metrics.csv row for this map</div>'
    if key in run.metric_errors:
        html_text += f'<div class="small error">evaluation: {_e(run.metric_errors[key])}</div>'
    return html_text


def _predicted_targets(run: _Run) -> bool:
    return (run.info.get("config") or {}).get("targets") == "predicted"


def _image_block(number: int, image: _Image, run: _Run, pictures: _Pictures) -> str:
    """One image: its header, then per explained class one card per method."""
    mask, mask_problem = pictures.mask(image.mask_path)
    notes = [mask_problem] if mask_problem else []
    if mask is not None and not mask.any():
        mask_text, mask = " · mask empty", None
    elif mask is not None:
        mask_text = ' · <span class="legend-outline"></span> mask'
    else:
        mask_text = ""
    scores: dict[int | None, float] = {}
    for row in image.ok_rows:
        scores.setdefault(row.class_index, row.score)
    explained = ", ".join(f"class {_e(c)} (p = {_score(scores[c])})" for c in image.classes)
    label = f"label {_e(image.label)}" if image.label != "" else "no label"
    flag = ""
    if _predicted_targets(run) and _class(image.label) is not None and image.classes:
        if _class(image.label) != image.classes[0]:
            flag = ' <span class="badge fail">predicted ≠ label</span>'
    parts = [
        f'<article class="image" id="image-{number}"><div class="head"><h3>{_e(image.image_id)}</h3>'
        f"<span>{label} · explained: {explained}{mask_text}{flag}</span></div>",
        f'<p class="src small muted mono">{_e(image.source_path)}</p>',
    ]
    for class_index in image.classes:
        cards = []
        for row in [r for r in image.ok_rows if r.class_index == class_index]:
            overlay = pictures.picture(row, ("overlay",))
            heatmap = pictures.picture(row, ("heatmap", "npy"))
            boxes = []
            for picture, what in ((overlay, "overlay"), (heatmap, "heatmap")):
                if picture.rgb is not None:
                    box, note = _thumb_html(picture, mask, f"{image.image_id} {row.method} {what}")
                    boxes.append(box)
                    notes.append(note)
            if not boxes:
                problem = "; ".join(p for p in (overlay.problem, heatmap.problem) if p) or "no picture written"
                boxes.append(_thumb_html(_Picture(None, "", problem), None, "")[0])
            written = []
            if overlay.rgb is None:
                written.append(overlay.problem if row.paths["overlay_path"] else "no overlay written")
            if heatmap.rgb is not None and heatmap.problem:
                written.append(heatmap.problem)
            if heatmap.kind == "heatmap from .npy":
                written.append("heatmap rendered from the .npy map")
            caption = (
                f"<b>{_e(row.method)}</b> · class {_e(row.class_index)} · p = {_score(row.score)}"
                + "".join(f'<br><span class="small muted">{_e(w)}</span>' for w in written if w)
                + _figures(row, run)
            )
            cards.append(
                f'<figure class="card"><div class="pair">{"".join(boxes)}</div>'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        parts.append(f'<div class="classrow">{"".join(cards)}</div>')
    for row in image.error_rows:
        parts.append(f'<p class="small"><b>{_e(row.method)}</b> failed: <span class="error">{_e(row.error)}</span></p>')
    parts.extend(f'<p class="small muted">{_e(n)}</p>' for n in sorted({n for n in notes if n}))
    parts.append("</article>")
    return "".join(parts)


def _failures(run: _Run) -> str:
    failed = [image for image in run.images if image.error_rows]
    if not failed:
        return '<section id="failed"><h2>Failed images</h2><p class="muted">None: every map was computed.</p></section>'
    body = []
    for image in failed:
        by_error: dict[str, list[str]] = {}
        for row in image.error_rows:
            by_error.setdefault(row.error or "(no message)", []).append(row.method)
        for error, methods in by_error.items():
            every = set(methods) >= set(run.methods) and not image.ok_rows
            which = "all methods" if every else ", ".join(dict.fromkeys(methods))
            body.append(
                f'<tr><td class="wrap"><b>{_e(image.image_id)}</b></td>'
                f'<td class="small mono wrap">{_e(image.source_path)}</td>'
                f"<td class=\"small\">{_e(which)}</td><td class=\"error\">{_e(error)}</td></tr>"
            )
    return (
        f'<section id="failed"><h2>Failed images ({len(failed)})</h2>'
        "<table><tr><th>image</th><th>source</th><th>methods</th><th>error</th></tr>"
        + "".join(body)
        + "</table></section>"
    )


# --------------------------------------------------------------------------
# contact sheet
# --------------------------------------------------------------------------
def _fit_cell(rgb: np.ndarray, cell: int) -> np.ndarray:
    """Scale a picture so its longer side is ``cell`` (nearest when enlarging, smooth when shrinking)."""
    from skimage.transform import resize

    height, width = rgb.shape[:2]
    scale = cell / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    if shape == (height, width):
        return rgb
    order, smooth = (0, False) if scale > 1 else (1, True)
    return resize(rgb, shape, order=order, anti_aliasing=smooth, preserve_range=True).round().astype(np.uint8)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _contact_sheet(run: _Run, images: Sequence[_Image], pictures: _Pictures) -> tuple[np.ndarray, int]:
    """The contact sheet as an RGB uint8 array (drawn with matplotlib's Agg canvas, no pyplot).

    Returns:
        The picture and the number of (image, class) rows left off to stay within
        :data:`_SHEET_MAX_ROWS` (many classes per image).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cell, pad, label_width, header = _SHEET_CELL, 6, 220, 34
    methods = [m for m in run.methods if any(r.method == m for image in images for r in image.ok_rows)]
    lines = [(image, c) for image in images for c in image.classes]
    dropped = max(0, len(lines) - _SHEET_MAX_ROWS)
    lines = lines[:_SHEET_MAX_ROWS]
    columns = max(len(methods), 1)
    width = label_width + columns * (cell + pad) + 2 * pad
    height = header + max(len(lines), 1) * (cell + pad) + 2 * pad
    canvas = np.full((height, width, 3), 255, np.uint8)
    text: list[tuple[float, float, str, dict]] = []
    outlines: list[np.ndarray] = []
    title = f"medxai · {run.root.name} · {len(images)} image{'s' if len(images) != 1 else ''}"
    text.append((10, header / 2, _shorten(title, 30), {"ha": "left", "va": "center", "fontsize": 9, "color": "#555"}))
    for c, method in enumerate(methods):
        x = label_width + pad + c * (cell + pad)
        text.append(
            (
                x + cell / 2,
                header - 10,
                _shorten(method, 20),
                {"ha": "center", "va": "baseline", "fontsize": 9, "weight": "bold"},
            )
        )
    for r, (image, class_index) in enumerate(lines):
        y = header + pad + r * (cell + pad)
        if r % 2 == 0:
            canvas[y - pad // 2 : y + cell + pad // 2, :] = 244
        image_id = _shorten(image.image_id, 30)
        score = next((row.score for row in image.ok_rows if row.class_index == class_index), math.nan)
        label = f"label {image.label}" if image.label != "" else "no label"
        text.append((10, y + cell / 2 - 9, image_id, {"ha": "left", "va": "center", "fontsize": 9.5, "weight": "bold"}))
        text.append((10, y + cell / 2 + 9, f"{label} · class {class_index} · p={_score(score)}",
                     {"ha": "left", "va": "center", "fontsize": 8.5, "color": "#444"}))
        mask, _ = pictures.mask(image.mask_path)
        for c, method in enumerate(methods):
            x = label_width + pad + c * (cell + pad)
            row = next((q for q in image.ok_rows if q.method == method and q.class_index == class_index), None)
            picture = pictures.picture(row, ("overlay", "heatmap", "npy")) if row else _Picture(None, "", "no map")
            if picture.rgb is None:
                canvas[y : y + cell, x : x + cell] = 225
                text.append((x + cell / 2, y + cell / 2, "no picture" if row else "no map",
                             {"ha": "center", "va": "center", "fontsize": 8, "color": "#666"}))
                continue
            fitted = _fit_cell(picture.rgb, cell)
            h, w = fitted.shape[:2]
            oy, ox = y + (cell - h) // 2, x + (cell - w) // 2
            canvas[oy : oy + h, ox : ox + w] = fitted
            if mask is not None and abs(mask.shape[0] / mask.shape[1] - h / w) < 0.02:
                sy, sx = h / mask.shape[0], w / mask.shape[1]
                for outline in _mask_contours(mask):
                    outlines.append(np.stack([ox + outline[:, 0] * sx, oy + outline[:, 1] * sy], axis=1))
    if not lines:
        text.append((width / 2, header + cell / 2, "no maps to show", {"ha": "center", "va": "center", "fontsize": 11}))

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    agg = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest", extent=(0, width, height, 0))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    for outline in outlines:
        ax.plot(outline[:, 0], outline[:, 1], color=_OUTLINE, lw=0.9)
    for x, y, words, style in text:
        ax.text(x, y, words, parse_math=False, **style)
    agg.draw()
    rgba = np.asarray(agg.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3]), dropped


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------
def write_report(run_dir: str | os.PathLike, *, max_images: int | None = None) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``run_dir/contact_sheet.png``; return their paths.

    The HTML embeds every picture as a base64 PNG thumbnail (``data:`` URI), so it
    opens from disk anywhere without network access; its only link is the relative
    one to ``contact_sheet.png``. See the module docstring for what it shows.

    Args:
        run_dir: A folder written by ``medxai run`` (with ``index.csv`` and ``run.json``).
        max_images: Show at most this many images with maps, in manifest order
            (default: all of them). The contact sheet shows at most
            :data:`CONTACT_SHEET_LIMIT`; the HTML says when images were left off.
            Failed images are always all listed.

    Returns:
        ``(report_html_path, contact_sheet_path)``.

    Raises:
        ReportError: ``run_dir`` is not a medxai run, or its index or run.json is unreadable.
        ValueError: ``max_images`` is not a positive integer.
    """
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")
    root = Path(os.fspath(run_dir)).absolute()
    run = _load_run(root)
    pictures = _Pictures(run)
    with_maps = [image for image in run.images if image.ok_rows]
    shown = with_maps if max_images is None else with_maps[:max_images]
    sheet_images = shown[:CONTACT_SHEET_LIMIT]

    html_path, sheet_path = root / "report.html", root / "contact_sheet.png"
    sheet, dropped_rows = _contact_sheet(run, sheet_images, pictures)
    write_png(sheet_path, sheet)

    notes = list(run.notes)
    if len(shown) < len(with_maps):
        notes.append(f"Showing the first {len(shown)} of {len(with_maps)} images with maps (max_images={max_images}).")
    if len(sheet_images) < len(shown):
        notes.append(
            f"The contact sheet shows the first {len(sheet_images)} of {len(shown)} images "
            f"(at most {CONTACT_SHEET_LIMIT})."
        )
    if dropped_rows:
        notes.append(
            f"The contact sheet left off its last {dropped_rows} image/class rows (at most {_SHEET_MAX_ROWS})."
        )
    failed = sum(1 for image in run.images if image.error_rows)
    title = f"medxai report: {root.name}"
    counts = (
        f"{len(run.images)} images, {sum(len(i.ok_rows) for i in run.images)} maps, "
        f"{failed} failed image{'s' if failed != 1 else ''}, methods: {', '.join(run.methods) or '—'}"
    )
    mask_legend = (
        '<p class="small muted"><span class="legend-outline"></span> cyan: the ground-truth mask\'s outline, drawn '
        "by the report over each picture (any other outline is part of the run's overlay). Left of each pair: "
        "the overlay written by the run; right: the plain heatmap (1 = most important).</p>"
        if any(image.mask_path for image in shown)
        else '<p class="small muted">Left of each pair: the overlay written by the run; right: the plain '
        "heatmap (1 = most important).</p>"
    )
    blocks = [_image_block(n, image, run, pictures) for n, image in enumerate(shown, start=1)]
    from medxai._version import __version__

    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    document = "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<header><h1>{_e(title)}</h1><div class=\"muted\">{_e(counts)}</div>",
            '<nav><a href="#provenance">run</a><a href="#quality">quality</a>'
            + ('<a href="#sanity">sanity check</a>' if run.sanity or run.evaluation else "")
            + '<a href="#images">images</a><a href="#failed">failed images</a>'
            '<a href="contact_sheet.png">contact sheet (PNG)</a></nav></header>',
            "".join(f'<p class="note">{_e(n)}</p>' for n in notes),
            _provenance(run),
            _summary(run),
            _sanity(run),
            f'<section id="images"><h2>Images ({len(shown)})</h2>{mask_legend}',
            "".join(blocks) if blocks else '<p class="muted">No image has a map.</p>',
            "</section>",
            _failures(run),
            f"<footer>Written by medxai {_e(__version__)} on {_e(generated)} from {_e(root)}. "
            "Self-contained: every picture is embedded.</footer>",
            "</body></html>\n",
        ]
    )
    write_text(html_path, document)
    return html_path, sheet_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m medxai.viz.report RUN_DIR [--max-images N]``: write the report, print its paths."""
    import argparse

    parser = argparse.ArgumentParser(prog="medxai report", description="write report.html and contact_sheet.png")
    parser.add_argument("run_dir", help="a folder written by `medxai run`")
    parser.add_argument("--max-images", type=int, default=None, help="show at most N images (default: all)")
    args = parser.parse_args(argv)
    try:
        html_path, sheet_path = write_report(args.run_dir, max_images=args.max_images)
    except (ReportError, ValueError) as err:
        print(f"medxai report: {err}", file=sys.stderr)
        return 2
    print(f"medxai: report -> {html_path}\nmedxai: contact sheet -> {sheet_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
