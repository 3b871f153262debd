"""What the report draws itself with matplotlib (Agg canvas, no pyplot): the contact sheet and the sanity chart."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np

from medxai.viz.report.formatting import score, shorten
from medxai.viz.report.loading import ImageEntry, Run, to_float
from medxai.viz.report.pictures import OUTLINE_COLOUR, Picture, Pictures, data_uri, mask_contours

#: The most images the contact sheet shows (the HTML says when more were left off).
CONTACT_SHEET_LIMIT = 40
SHEET_MAX_ROWS = 200  # image/class rows of the contact sheet (27,000 px tall at most)
_SHEET_CELL = 128  # pixels of a contact sheet cell


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


def contact_sheet(run: Run, images: Sequence[ImageEntry], pictures: Pictures) -> tuple[np.ndarray, int]:
    """The contact sheet as an RGB uint8 array: one row per image and class, one column per method.

    Returns:
        The picture and the number of (image, class) rows left off to stay within
        :data:`SHEET_MAX_ROWS` (many classes per image).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cell, pad, label_width, header = _SHEET_CELL, 6, 220, 34
    methods = [m for m in run.methods if any(r.method == m for image in images for r in image.ok_rows)]
    lines = [(image, c) for image in images for c in image.classes]
    dropped = max(0, len(lines) - SHEET_MAX_ROWS)
    lines = lines[:SHEET_MAX_ROWS]
    columns = max(len(methods), 1)
    width = label_width + columns * (cell + pad) + 2 * pad
    height = header + max(len(lines), 1) * (cell + pad) + 2 * pad
    canvas = np.full((height, width, 3), 255, np.uint8)
    text: list[tuple[float, float, str, dict]] = []
    outlines: list[np.ndarray] = []
    title = f"medxai · {run.root.name} · {len(images)} image{'s' if len(images) != 1 else ''}"
    text.append((10, header / 2, shorten(title, 30), {"ha": "left", "va": "center", "fontsize": 9, "color": "#555"}))
    for c, method in enumerate(methods):
        x = label_width + pad + c * (cell + pad)
        style = {"ha": "center", "va": "baseline", "fontsize": 9, "weight": "bold"}
        text.append((x + cell / 2, header - 10, shorten(method, 20), style))
    for r, (image, class_index) in enumerate(lines):
        y = header + pad + r * (cell + pad)
        if r % 2 == 0:
            canvas[y - pad // 2 : y + cell + pad // 2, :] = 244
        image_id = shorten(image.image_id, 30)
        value = next((row.score for row in image.ok_rows if row.class_index == class_index), math.nan)
        label = f"label {image.label}" if image.label != "" else "no label"
        text.append((10, y + cell / 2 - 9, image_id, {"ha": "left", "va": "center", "fontsize": 9.5, "weight": "bold"}))
        text.append((10, y + cell / 2 + 9, f"{label} · class {class_index} · p={score(value)}",
                     {"ha": "left", "va": "center", "fontsize": 8.5, "color": "#444"}))
        mask, _ = pictures.mask(image.mask_path)
        for c, method in enumerate(methods):
            x = label_width + pad + c * (cell + pad)
            row = next((q for q in image.ok_rows if q.method == method and q.class_index == class_index), None)
            picture = pictures.picture(row, ("overlay", "heatmap", "npy")) if row else Picture(None, "", "no map")
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
                for outline in mask_contours(mask):
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
        ax.plot(outline[:, 0], outline[:, 1], color=OUTLINE_COLOUR, lw=0.9)
    for x, y, words, style in text:
        ax.text(x, y, words, parse_math=False, **style)
    agg.draw()
    rgba = np.asarray(agg.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3]), dropped


def sanity_chart(rows: list[dict[str, str]], methods: Sequence[str], threshold: float = math.nan) -> str:
    """A line chart of the rank correlation per randomisation step as a PNG ``data:`` URI ("" without steps)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps: dict[float, str] = {}
    for row in rows:
        steps.setdefault(to_float(row.get("step")), row.get("layer", ""))
    order = sorted(s for s in steps if math.isfinite(s))
    if not order:
        return ""
    fig = Figure(figsize=(8.6, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method in methods:
        points = sorted(
            (to_float(r.get("step")), to_float(r.get("spearman"))) for r in rows if r.get("method") == method
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
    for entry in legend.get_texts():
        entry.set_parse_math(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return data_uri(buffer.getvalue())
