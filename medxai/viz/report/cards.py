"""View models of the "Images" section: per image, per explained class, one card per method."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from medxai.viz.report.formatting import METRIC_COLUMNS, METRICS, metric_labels, num, percent, score, text
from medxai.viz.report.loading import ImageEntry, MapRow, Run, to_class
from medxai.viz.report.pictures import (
    Picture,
    Pictures,
    data_uri,
    display_size,
    outline_points,
    png_bytes,
    thumbnail,
)

DELTA_WARN = 0.05  # relative IG completeness error shown as a warning above this


@dataclass
class Outline:
    """The mask outline drawn over a thumbnail, in mask pixels."""

    width: int
    height: int
    polylines: list[str]  # SVG points attributes


@dataclass
class Thumb:
    """One picture box: an embedded thumbnail (``src``), or ``problem`` saying why there is none."""

    width: int
    height: int
    src: str = ""
    alt: str = ""
    pixelated: bool = False
    outline: Outline | None = None
    problem: str = ""


@dataclass
class Figure:
    """One quality figure of a map: label (``title`` explains it), value, and "warn" or ""."""

    label: str
    value: str
    title: str
    css: str = ""


@dataclass
class Card:
    """One map: its thumbnails, what was not written, and its quality figures."""

    method: str
    class_index: str
    score: str
    thumbs: list[Thumb]
    written: list[str]
    figures: list[Figure]
    no_metrics_row: bool = False
    metric_error: str = ""


@dataclass
class ImageBlock:
    """One image: its header, a row of cards per explained class, its failed methods and notes."""

    number: int
    image_id: str
    label: str
    explained: str
    mask: str  # "outline", "empty" or ""
    mismatch: bool
    source_path: str
    class_rows: list[list[Card]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # method, error
    notes: list[str] = field(default_factory=list)


def _thumb(picture: Picture, mask: np.ndarray | None, alt: str) -> tuple[Thumb, str]:
    """One thumbnail box (image + mask outline) and a note when the outline could not be drawn."""
    if picture.rgb is None:
        width, height = display_size(1, 1)
        return Thumb(width, height, problem=picture.problem or "no picture written"), ""
    rgb = picture.rgb
    small = thumbnail(rgb)
    width, height = display_size(*small.shape[:2])
    outline, note = None, ""
    if mask is not None:
        if abs(mask.shape[0] / mask.shape[1] - rgb.shape[0] / rgb.shape[1]) < 0.02:
            polylines = outline_points(mask)
            outline = Outline(mask.shape[1], mask.shape[0], polylines) if polylines else None
        else:
            note = (
                f"mask {mask.shape[1]}x{mask.shape[0]} does not match the map "
                f"{rgb.shape[1]}x{rgb.shape[0]}; outline not drawn"
            )
    pixelated = width >= 2 * small.shape[1]  # show small maps' pixels, not a blur
    return Thumb(width, height, data_uri(png_bytes(small)), alt, pixelated, outline), note


def _figures(row: MapRow, run: Run) -> list[Figure]:
    """The quality figures of one map: IG's completeness error from the index, then metrics.csv."""
    items = []
    if math.isfinite(row.delta):
        css = "warn" if row.delta > DELTA_WARN else ""
        items.append(Figure(METRICS["completeness"][0], percent(row.delta), METRICS["completeness"][2], css))
    figures = (run.metrics or {}).get((row.image_id, row.method, row.class_index)) or {}
    labels = metric_labels(run.evaluation_spec)
    for metric in [m for m in METRIC_COLUMNS if m in figures] + sorted(set(figures) - set(METRIC_COLUMNS)):
        value = figures[metric]
        if not math.isfinite(value) or (metric == "completeness" and math.isfinite(row.delta)):
            continue  # the index's delta is the same figure
        if metric == "completeness":
            shown = percent(value)
        elif metric == "pointing_game":
            shown = "hit" if value == 1 else "miss" if value == 0 else f"{value:.2f} of tied peaks"
        else:
            shown = num(value)
        items.append(Figure(labels.get(metric, metric), shown, METRICS.get(metric, ("", "", ""))[2]))
    return items


def _card(
    row: MapRow, image: ImageEntry, mask: np.ndarray | None, run: Run, pictures: Pictures
) -> tuple[Card, list[str]]:
    """One map's card and the notes it raised about the mask outline."""
    overlay = pictures.picture(row, ("overlay",))
    heatmap = pictures.picture(row, ("heatmap", "npy"))
    thumbs, notes = [], []
    for picture, what in ((overlay, "overlay"), (heatmap, "heatmap")):
        if picture.rgb is not None:
            thumb, note = _thumb(picture, mask, f"{image.image_id} {row.method} {what}")
            thumbs.append(thumb)
            notes.append(note)
    if not thumbs:
        problem = "; ".join(p for p in (overlay.problem, heatmap.problem) if p) or "no picture written"
        thumbs.append(_thumb(Picture(None, "", problem), None, "")[0])
    written = []
    if overlay.rgb is None:
        written.append(overlay.problem if row.paths["overlay_path"] else "no overlay written")
    if heatmap.rgb is not None and heatmap.problem:
        written.append(heatmap.problem)
    if heatmap.kind == "heatmap from .npy":
        written.append("heatmap rendered from the .npy map")
    key = (row.image_id, row.method, row.class_index)
    card = Card(
        method=row.method,
        class_index=text(row.class_index),
        score=score(row.score),
        thumbs=thumbs,
        written=[w for w in written if w],
        figures=_figures(row, run),
        no_metrics_row=run.metrics is not None and key not in run.metrics,
        metric_error=run.metric_errors.get(key, ""),
    )
    return card, notes


def image_block(number: int, image: ImageEntry, run: Run, pictures: Pictures) -> ImageBlock:
    """One image: its header, then per explained class one card per method."""
    mask, mask_problem = pictures.mask(image.mask_path)
    notes = [mask_problem] if mask_problem else []
    if mask is not None and not mask.any():
        mask_state, mask = "empty", None
    else:
        mask_state = "outline" if mask is not None else ""
    scores: dict[int | None, float] = {}
    for row in image.ok_rows:
        scores.setdefault(row.class_index, row.score)
    label = to_class(image.label)
    block = ImageBlock(
        number=number,
        image_id=image.image_id,
        label=image.label,
        explained=", ".join(f"class {text(c)} (p = {score(scores[c])})" for c in image.classes),
        mask=mask_state,
        mismatch=bool(run.predicted_targets and label is not None and image.classes and label != image.classes[0]),
        source_path=image.source_path,
    )
    for class_index in image.classes:
        cards = []
        for row in [r for r in image.ok_rows if r.class_index == class_index]:
            card, card_notes = _card(row, image, mask, run, pictures)
            cards.append(card)
            notes.extend(card_notes)
        block.class_rows.append(cards)
    block.errors = [(row.method, row.error) for row in image.error_rows]
    block.notes = sorted({n for n in notes if n})
    return block
