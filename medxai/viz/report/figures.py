"""What the report draws itself: the contact sheet (Pillow) and the sanity chart (matplotlib, Agg canvas, no pyplot)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from medxai.viz.report.formatting import shorten
from medxai.viz.report.loading import to_float
from medxai.viz.report.pictures import OUTLINE_COLOUR, data_uri, shrink

#: The most image/class rows on one contact sheet; a run with more gets several sheets.
CONTACT_SHEET_LIMIT = 50
SHEET_CELL = 128  # pixels of a contact sheet cell


@dataclass
class SheetCell:
    """One cell of the contact sheet: a picture fitted to :data:`SHEET_CELL` with mask outlines, or a text."""

    rgb: np.ndarray | None
    text: str = ""
    outlines: list[np.ndarray] = field(default_factory=list)  # (N, 2) x, y in cell pixels


@dataclass
class SheetRow:
    """One image and explained class: its id, caption lines ("\\n"-separated) and one cell per method."""

    image_id: str
    caption: str
    cells: list[SheetCell]


def fit_cell(rgb: np.ndarray, cell: int = SHEET_CELL) -> np.ndarray:
    """Scale a picture so its longer side is ``cell`` (nearest when enlarging, smooth when shrinking)."""
    from PIL import Image

    height, width = rgb.shape[:2]
    scale = cell / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    if shape == (height, width):
        return rgb
    if scale < 1:
        return shrink(rgb, cell)
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(picture.resize((shape[1], shape[0]), Image.Resampling.NEAREST))


@cache
def _font(size: int, bold: bool = False) -> Any:
    """DejaVu Sans (shipped with matplotlib) at ``size`` pixels, else Pillow's own font."""
    from PIL import ImageFont

    try:
        import matplotlib

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def contact_sheet(title: str, methods: Sequence[str], rows: Sequence[SheetRow]) -> np.ndarray:
    """One contact sheet as an RGB uint8 array: one row per image and class, one column per method.

    ``title`` has up to two lines ("\\n"-separated), drawn above the image ids.

    Drawn with Pillow: a sheet of 50 rows is a large canvas, and matplotlib would resample it.
    """
    from PIL import Image, ImageDraw

    cell, pad, label_width, header = SHEET_CELL, 6, 220, 40
    columns = max(len(methods), 1)
    width = label_width + columns * (cell + pad) + 2 * pad
    height = header + max(len(rows), 1) * (cell + pad) + 2 * pad
    canvas = np.full((height, width, 3), 255, np.uint8)
    for r in range(0, len(rows), 2):
        y = header + pad + r * (cell + pad)
        canvas[y - pad // 2 : y + cell + pad // 2, :] = 244
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for k, line in enumerate(title.split("\n")[:2]):
        draw.text((10, 4 + 14 * k), shorten(line, 30), fill="#555555", font=_font(11), anchor="lt")
    for c, method in enumerate(methods):
        x = label_width + pad + c * (cell + pad)
        draw.text((x + cell / 2, header - 10), shorten(method, 20), fill="#000000", font=_font(12, True), anchor="ms")
    for r, row in enumerate(rows):
        y = header + pad + r * (cell + pad)
        lines = row.caption.split("\n")
        top = y + cell / 2 - 8 * len(lines)
        draw.text((10, top), shorten(row.image_id, 26), fill="#000000", font=_font(13, True), anchor="lm")
        for k, line in enumerate(lines, start=1):
            draw.text((10, top + 16 * k), shorten(line, 32), fill="#444444", font=_font(11), anchor="lm")
        for c, item in enumerate(row.cells):
            x = label_width + pad + c * (cell + pad)
            if item.rgb is None:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(225, 225, 225))
                draw.text((x + cell / 2, y + cell / 2), item.text, fill="#666666", font=_font(11), anchor="mm")
                continue
            h, w = item.rgb.shape[:2]
            oy, ox = y + (cell - h) // 2, x + (cell - w) // 2
            picture.paste(Image.fromarray(np.ascontiguousarray(item.rgb)), (ox, oy))
            for outline in item.outlines:
                draw.line([(float(px) + ox, float(py) + oy) for px, py in outline], fill=OUTLINE_COLOUR, width=1)
    if not rows:
        draw.text((width / 2, header + cell / 2), "no maps to show", fill="#000000", font=_font(14), anchor="mm")
    return np.asarray(picture)


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
