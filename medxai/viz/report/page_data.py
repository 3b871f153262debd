"""The image cards as the JSON the page's script renders, filters, sorts and pages.

The JSON sits in a ``<script type="application/json">`` element. ``<``, ``>`` and
``&`` are written as ``\\u003c``, ``\\u003e`` and ``\\u0026``, so no text from a run
(an id such as ``</script>``) can end the element; the script only ever puts the
values into the page as text (``textContent``), never as HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from medxai.viz.report.cards import Card, ImageBlock, Thumb
from medxai.viz.report.formatting import METRIC_COLUMNS, METRICS, metric_labels
from medxai.viz.report.outcomes import class_text
from medxai.viz.report.pictures import OUTLINE_COLOUR
from medxai.viz.report.viewer import colour_table

PAGE_SIZE = 50  # image blocks per page of the "Images" section


def _thumb(thumb: Thumb) -> dict[str, Any]:
    return {
        "w": thumb.width,
        "h": thumb.height,
        "src": thumb.src,
        "href": thumb.href,
        "alt": thumb.alt,
        "px": thumb.pixelated,
        "outline": thumb.outline,
        "problem": thumb.problem,
    }


def _card(card: Card) -> dict[str, Any]:
    region = {} if card.channel is None else {"channel": card.channel, "caption": card.caption}
    return {
        **region,
        "method": card.method,
        "class": card.class_index,
        "status": card.status,
        "score": card.score,
        "thumbs": [_thumb(t) for t in card.thumbs],
        "written": card.written,
        "figures": [[f.label, f.value, f.title, f.css] for f in card.figures],
        "values": card.values,
        "noMetrics": card.no_metrics_row,
        "metricError": card.metric_error,
        "error": card.error,
        **({"view": card.view} if card.view is not None else {}),
    }


def _image(block: ImageBlock) -> dict[str, Any]:
    outline = block.outline
    return {
        "n": block.number,
        "id": block.image_id,
        "label": block.label,
        "labels": block.labels,
        "predicted": block.predicted,
        "outcome": block.outcome,
        "status": block.status,
        "explained": block.explained,
        "classes": block.classes,
        "mask": block.mask,
        "outline": None if outline is None else {"w": outline.width, "h": outline.height, "lines": outline.polylines},
        "source": block.source_path,
        "notes": block.notes,
        "maps": [_card(c) for c in block.cards],
        **({"view": block.view} if block.view is not None else {}),
    }


def _sort_keys(blocks: Sequence[ImageBlock], spec: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The figures the page can sort by: those some map has, score first, then the metrics in display order."""
    present = {key for block in blocks for card in block.cards for key in card.values}
    order = ["score", *METRIC_COLUMNS]
    keys = [k for k in order if k in present] + sorted(present - set(order))
    labels = {"score": "score", **metric_labels(spec)}
    return [{"key": k, "label": labels.get(k, k), "better": METRICS.get(k, ("", "", ""))[1]} for k in keys]


def page_data(
    blocks: Sequence[ImageBlock],
    methods: Sequence[str],
    names: Mapping[int, str],
    spec: Mapping[str, Any] | None,
    page_size: int = PAGE_SIZE,
    colormap: str = "inferno",
) -> dict[str, Any]:
    """Everything the page's script needs: the images, and the choices of its filters and sort."""
    classes: set[int] = set()
    for block in blocks:
        classes.update(c for c in block.classes if c is not None)
        classes.update(block.labels or ())
        classes.update(block.predicted or ())
    channels = sorted({c.channel for block in blocks for c in block.cards if c.channel is not None})
    return {
        "methods": list(methods),
        "classes": [{"index": c, "text": class_text(c, names)} for c in sorted(classes)],
        **({"channels": [{"index": c, "text": class_text(c, names)} for c in channels]} if channels else {}),
        "sortKeys": _sort_keys(blocks, spec),
        "pageSize": page_size,
        "outlineColour": OUTLINE_COLOUR,
        "lut": colour_table(colormap),  # the viewer's map colours
        "images": [_image(b) for b in blocks],
    }


def script_json(data: Any) -> Markup:
    """``data`` as JSON that is safe inside a ``<script>`` element (see the module docstring)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
