"""View models of the "Images" section: per image a block, per map (method and target) a card with its thumbnails.

Each picture is read once: :func:`image_block` makes the card's embedded thumbnails and,
from the same pixels, the image's rows of the contact sheet. A region target's card
(a segmentation model) has its region's outline drawn into its pictures (from the
run's ``regions/<image>_<tag>.npy``, the index's ``region_path``) and says which
channel, region and component it explains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from medxai.viz.report.figures import SheetCell, SheetRow, fit_cell
from medxai.viz.report.formatting import (
    METRIC_COLUMNS,
    METRICS,
    metric_labels,
    num,
    percent,
    score,
)
from medxai.viz.report.loading import ImageEntry, MapRow, Run
from medxai.viz.report.outcomes import class_set, class_text, classes_text, outcome
from medxai.viz.report.pictures import (
    SD_TOP,
    THUMBNAIL_SIZE,
    Picture,
    Pictures,
    display_size,
    encoded_thumbnail,
    file_link,
    mask_contours,
    outline_points,
    outline_region,
    shrink,
    tiled,
)
from medxai.viz.report.viewer import image_viewer

DELTA_WARN = 0.05  # relative IG completeness error shown as a warning above this
STABILITY_TITLE = (
    "max-sensitivity under small input noise (Yeh et al. 2019, as Quantus computes it): lower is more stable, "
    "0 = the same map; in the method's units, so compare it within a method"
)


@dataclass
class Outline:
    """The mask outline drawn over an image's thumbnails, in mask pixels."""

    width: int
    height: int
    polylines: list[str]  # SVG points attributes


@dataclass
class Thumb:
    """One picture box: an embedded thumbnail (``src``) linking to its full-size file (``href``), or a ``problem``."""

    width: int
    height: int
    src: str = ""
    href: str = ""
    alt: str = ""
    pixelated: bool = False
    outline: bool = False  # draw the image's mask outline over it
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
    """One map (or one failed map, ``status`` "error"): thumbnails, what was not written, quality figures.

    ``values`` holds the raw figures the page sorts by (finite ones only).
    """

    method: str
    class_index: int | None
    status: str
    score: str = ""
    channel: int | None = None  # a region target's channel (the channel filter); None for a class
    caption: str = ""  # a region target's caption: channel, region, size and score
    thumbs: list[Thumb] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    no_metrics_row: bool = False
    metric_error: str = ""
    error: str = ""
    view: dict | None = None  # the viewer's map (packed values, peak voxel); None: not in the viewer


@dataclass
class ImageBlock:
    """One image: its header, every map's card (computed and failed), notes, and its filter facts."""

    number: int
    image_id: str
    label: str  # as shown, with class names
    labels: list[int] | None  # the label's classes; None when the label is not class indices
    predicted: list[int] | None  # the classes the model called positive; None when unknown
    outcome: str  # "correct", "mispredicted" or "" (unknown)
    status: str  # "ok", or "error" when a map failed
    explained: str
    classes: list[int | None]  # the explained classes, in index order
    mask: str  # "outline", "empty" or ""
    outline: Outline | None
    source_path: str
    cards: list[Card] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    view: dict | None = None  # the viewer's source (:mod:`~medxai.viz.report.viewer`); None: thumbnails only
    viewer_problem: str = ""  # why an image meant to have the viewer has none


@dataclass
class _Mask:
    """An image's mask, read once: the array, its outline for the page and its contours for the contact sheet.

    A volume's mask is laid out (:func:`tiled`) like the first picture drawn with it: the slices of
    that map's montage; a map whose montage shows other slices gets no outline (and a note).
    """

    array: np.ndarray | None
    state: str
    outline: Outline | None
    contours: list[np.ndarray]
    problem: str
    volume: np.ndarray | None = None  # a 3D mask, before it is laid out
    slices: tuple[int, ...] | None = None
    bound: bool = True

    def bind(self, slices: tuple[int, ...] | None) -> None:
        """Lay a volume's mask out as a montage of ``slices`` (the first call only)."""
        if self.bound or self.volume is None:
            return
        self.bound, self.slices = True, slices
        self.array = tiled(self.volume, slices)
        polylines = outline_points(self.array)
        self.outline = Outline(self.array.shape[1], self.array.shape[0], polylines) if polylines else None
        self.contours = mask_contours(self.array)

    def fits(self, rgb: np.ndarray, slices: tuple[int, ...] | None = None) -> bool:
        """Whether the mask has the picture's aspect ratio (and a volume's, its slices), so its outline can be drawn."""
        self.bind(slices)
        same_slices = self.volume is None or self.slices == slices
        return self.array is not None and same_slices and _same_aspect(self.array, rgb)

    def mismatch_note(self, rgb: np.ndarray, slices: tuple[int, ...] | None = None) -> str:
        """Why the outline is not drawn over ``rgb`` ("" when it is, or there is no mask)."""
        if self.array is None or self.fits(rgb, slices):
            return ""
        if self.volume is not None and self.slices != slices:
            return "mask outline not drawn over a map whose montage shows other slices than the image's first map"
        mask = self.array
        return (
            f"mask {mask.shape[1]}x{mask.shape[0]} does not match the map "
            f"{rgb.shape[1]}x{rgb.shape[0]}; outline not drawn"
        )


def _same_aspect(mask: np.ndarray, rgb: np.ndarray) -> bool:
    """Whether a 2D mask has the picture's aspect ratio (so it can be drawn over it)."""
    return abs(mask.shape[0] / mask.shape[1] - rgb.shape[0] / rgb.shape[1]) < 0.02


def _read_mask(image: ImageEntry, pictures: Pictures) -> _Mask:
    mask, problem = pictures.mask(image.mask_path)
    if mask is None:
        return _Mask(None, "", None, [], problem)
    if not mask.any():
        return _Mask(None, "empty", None, [], problem)
    if mask.ndim == 3:
        return _Mask(None, "outline", None, [], problem, volume=mask, bound=False)  # laid out by the first map
    polylines = outline_points(mask)
    outline = Outline(mask.shape[1], mask.shape[0], polylines) if polylines else None
    return _Mask(mask, "outline", outline, mask_contours(mask), problem)


def _thumb(
    rgb: np.ndarray,
    href: str,
    mask: _Mask,
    alt: str,
    size: int,
    region: np.ndarray | None = None,
    slices: tuple[int, ...] | None = None,
) -> Thumb:
    """One thumbnail box of a picture that was read, linking to ``href`` (``region``'s outline drawn in)."""
    small = shrink(rgb, size)
    if region is not None:
        small = outline_region(small, region)
    width, height = display_size(*small.shape[:2])
    pixelated = width >= 2 * small.shape[1]  # show small maps' pixels, not a blur
    outline = mask.fits(rgb, slices) and mask.outline is not None
    return Thumb(width, height, encoded_thumbnail(small), href, alt, pixelated, outline)


def _figures(row: MapRow, run: Run) -> tuple[list[Figure], dict[str, float]]:
    """The quality figures of one map (IG's completeness error from the index, then metrics.csv) and their values."""
    items, values = [], {}
    if math.isfinite(row.score):
        values["score"] = row.score
    if math.isfinite(row.delta):
        css = "warn" if row.delta > DELTA_WARN else ""
        items.append(Figure(METRICS["completeness"][0], percent(row.delta), METRICS["completeness"][2], css))
        values["completeness"] = row.delta
    if math.isfinite(row.stability):
        items.append(Figure("stability", num(row.stability), STABILITY_TITLE))
        values["stability"] = row.stability
    figures = (run.metrics or {}).get(row.key) or {}
    labels = metric_labels(run.evaluation_spec)
    for metric in [m for m in METRIC_COLUMNS if m in figures] + sorted(set(figures) - set(METRIC_COLUMNS)):
        value = figures[metric]
        if not math.isfinite(value) or (metric == "completeness" and math.isfinite(row.delta)):
            continue  # the index's delta is the same figure
        values[metric] = value
        if metric == "completeness":
            shown = percent(value)
        elif metric == "pointing_game":
            shown = "hit" if value == 1 else "miss" if value == 0 else f"{value:.2f} of tied peaks"
        else:
            shown = num(value)
        items.append(Figure(labels.get(metric, metric), shown, METRICS.get(metric, ("", "", ""))[2]))
    return items, values


def region_caption(row: MapRow, names: dict[int, str]) -> str:
    """A region target's caption: ``channel 1 (lesion) · connected 2 · 352 voxels · score 9.94 · p = 0.507``.

    The score is the explained region score (sum or mean of the channel's logits over the region);
    p the channel's mean probability over it.
    """
    parts = [f"channel {class_text(row.class_index, names)}", f"{row.region} {row.component}".strip()]
    if row.region_voxels:
        parts.append(f"{row.region_voxels} voxels")
    return " · ".join([*parts, f"score {num(row.region_score)}", f"p = {score(row.score)}"])


def _region(row: MapRow, pictures: Pictures, slices: tuple[int, ...] | None) -> tuple[np.ndarray | None, str]:
    """A region row's region mask for its pictures' outline (None for a class row), or why it is not drawn.

    A volume's region is tiled with ``slices``, its pictures' montage slices.
    """
    if not row.region:
        return None, ""
    if not row.region_path:
        return None, "region outline not drawn: the index names no region file (a run before region_path)"
    return pictures.region(row.region_path, slices)


def _card(
    row: MapRow, image: ImageEntry, mask: _Mask, run: Run, pictures: Pictures, size: int, names: dict[int, str]
) -> tuple[Card, Picture, np.ndarray | None, list[str]]:
    """One map's card, the picture for its contact sheet cell, the region drawn into it, and notes about outlines."""
    overlay = pictures.picture(row, ("overlay",))
    heatmap = pictures.picture(row, ("heatmap", "npy"))
    first = overlay if overlay.rgb is not None else heatmap
    region, problem = _region(row, pictures, first.slices)
    thumbs, notes = [], [problem]
    for picture, what in ((overlay, "overlay"), (heatmap, "heatmap")):
        if picture.rgb is not None:
            # a heatmap drawn from the .npy has no file a browser can show
            href = file_link(run.root, picture.source) if picture.kind in ("overlay", "heatmap") else ""
            same = picture.slices == first.slices
            drawn = region if region is not None and same and _same_aspect(region, picture.rgb) else None
            alt = f"{image.image_id} {row.method} {what}"
            thumbs.append(_thumb(picture.rgb, href, mask, alt, size, drawn, picture.slices))
            notes.append(mask.mismatch_note(picture.rgb, picture.slices))
            if region is not None and drawn is None:
                notes.append(f"region {region.shape[1]}x{region.shape[0]} does not match the map; outline not drawn")
    if not thumbs:
        problem = "; ".join(p for p in (overlay.problem, heatmap.problem) if p) or "no picture written"
        width, height = display_size(1, 1)
        thumbs.append(Thumb(width, height, problem=problem))
    written = []
    spread = pictures.sd(row, first.slices)  # uncertainty: true wrote an SD map beside the map
    if spread.rgb is not None:
        alt = f"{image.image_id} {row.method} SD map (0 to {SD_TOP:g} of the map's range)"
        thumbs.append(_thumb(spread.rgb, "", mask, alt, size, None, spread.slices))
    elif spread.problem:
        written.append(f"SD map {spread.problem}")
    if overlay.rgb is None:
        written.append(overlay.problem if row.paths["overlay_path"] else "no overlay written")
    if heatmap.rgb is not None and heatmap.problem:
        written.append(heatmap.problem)
    if heatmap.kind == "heatmap from .npy":
        written.append("heatmap rendered from the .npy map")
    key = row.key
    figures, values = _figures(row, run)
    card = Card(
        method=row.method,
        class_index=row.class_index,
        status="ok",
        score=score(row.score),
        thumbs=thumbs,
        written=[w for w in written if w],
        figures=figures,
        values=values,
        no_metrics_row=run.metrics is not None and key not in run.metrics,
        metric_error=run.metric_errors.get(key, ""),
        channel=row.class_index if row.region else None,
        caption=region_caption(row, names) if row.region else "",
    )
    return card, overlay if overlay.rgb is not None else heatmap, region, notes


def _sheet_cell(picture: Picture, mask: _Mask, region: np.ndarray | None = None) -> SheetCell:
    """A contact sheet cell from a picture already read (no second read of the file), ``region`` outlined."""
    if picture.rgb is None:
        return SheetCell(None, "no picture")
    cell = fit_cell(picture.rgb)
    if region is not None and _same_aspect(region, cell):
        cell = outline_region(cell, region)
    outlines = []
    if mask.fits(cell, picture.slices) and mask.array is not None:
        sy, sx = cell.shape[0] / mask.array.shape[0], cell.shape[1] / mask.array.shape[1]
        outlines = [np.stack([c[:, 0] * sx, c[:, 1] * sy], axis=1) for c in mask.contours]
    return SheetCell(cell, "", outlines)


def image_block(
    number: int,
    image: ImageEntry,
    run: Run,
    pictures: Pictures,
    names: dict[int, str],
    methods: list[str],
    size: int = THUMBNAIL_SIZE,
    viewer: bool = False,
) -> tuple[ImageBlock, list[SheetRow]]:
    """One image's block, and its contact sheet rows (one per explained class, one cell per method in ``methods``);
    with ``viewer``, the block and its cards carry the interactive viewer's data."""
    mask = _read_mask(image, pictures)
    notes = [mask.problem] if mask.problem else []
    scores: dict[int | None, float] = {}
    for row in image.ok_rows:
        scores.setdefault(row.class_index, row.score)
    labels, predicted = class_set(image.label), class_set(image.predicted) if image.predicted else None
    shown_label = classes_text(labels, names) if labels else image.label
    block = ImageBlock(
        number=number,
        image_id=image.image_id,
        label=shown_label,
        labels=sorted(labels) if labels is not None else None,
        predicted=sorted(predicted) if predicted is not None else None,
        outcome=outcome(image, run),
        status="error" if image.error_rows else "ok",
        explained=", ".join(f"class {class_text(c, names)} (p = {score(scores[c])})" for c in image.classes),
        classes=image.classes,
        mask=mask.state,
        outline=None,  # below: a volume's mask is laid out like its first map
        source_path=image.source_path,
    )
    sheet_rows = []
    ok_cards: list[tuple[Card, MapRow]] = []
    label_text = f"label {shown_label}" if image.label != "" else "no label"
    targets = dict.fromkeys((r.class_index, r.region, r.component) for r in image.ok_rows)  # index order
    for class_index, region, component in targets:
        cells: dict[str, SheetCell] = {}
        caption = f"{label_text}\nclass {class_text(class_index, names)} · p={score(scores[class_index])}"
        for row in [
            r for r in image.ok_rows if (r.class_index, r.region, r.component) == (class_index, region, component)
        ]:
            card, picture, drawn, card_notes = _card(row, image, mask, run, pictures, size, names)
            ok_cards.append((card, row))
            block.cards.append(card)
            notes.extend(card_notes)
            cells.setdefault(row.method, _sheet_cell(picture, mask, drawn))
            if card.caption:
                caption = f"{label_text}\n{card.caption}"
        sheet_rows.append(SheetRow(image.image_id, caption, [cells.get(m, SheetCell(None, "no map")) for m in methods]))
    for row in image.error_rows:
        channel = row.class_index if row.region else None  # the channel filter shows a region's failures too
        block.cards.append(
            Card(method=row.method, class_index=row.class_index, status="error", error=row.error, channel=channel)
        )
    if viewer:
        block.view, views, viewer_notes, block.viewer_problem = image_viewer(image, run, pictures)
        notes.extend(viewer_notes)
        for card, row in ok_cards:
            card.view = views.get(row.key)
    mask.bind(None)  # an image without a picture: the montage of runs before the choice of slices
    block.outline = mask.outline
    block.notes = sorted({n for n in notes if n})
    return block, sheet_rows
