"""``medxai report`` at scale: a 200-image synthetic run stays small, and its page has every card's facts.

:func:`synthetic_run` writes a run folder without TensorFlow (maps, overlays,
index.csv, run.json, metrics.csv); ``benchmarks/bench_report.py`` uses it too.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from medxai.io.index import index_text
from medxai.io.writers import write_png
from medxai.viz.render import colorize
from medxai.viz.report import write_report

METHODS = ("integrated_gradients", "gradient", "gradcam")
CLASS_NAMES = ("Normal", "Nodule", "Effusion", "Mass")
SCALE_IMAGES = 200
#: The whole page for 200 images x 3 methods (6 thumbnails an image).
REPORT_BUDGET_BYTES = 20_000_000
#: What one more image of 3 methods may add to the page (its 6 thumbnails and its JSON).
IMAGE_BUDGET_BYTES = 60_000
#: One embedded thumbnail (base64); a full-size 384 px overlay is 20 times that.
THUMB_BUDGET_BYTES = 12_000
MAP_SIZE = 384


def _pictures(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A heatmap and an overlay that compress like real ones: smooth blobs over a textured grey image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    grey = 0.5 + 0.3 * np.sin(6 * x + seed) * np.cos(4 * y + seed) + 0.04 * rng.standard_normal((size, size))
    heat = np.zeros((size, size))
    for cx, cy, spread in rng.random((3, 3)):
        heat += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.05 + 0.1 * spread) ** 2))
    heat = (heat / heat.max()).astype(np.float32)
    coloured = colorize(heat, "inferno")
    alpha = 0.6 * heat[..., None]
    background = np.repeat((np.clip(grey, 0, 1) * 255)[..., None], 3, axis=-1)
    return coloured, ((1 - alpha) * background + alpha * coloured).round().astype(np.uint8)


def synthetic_run(
    root: Path, images: int, *, methods: tuple[str, ...] = METHODS, size: int = MAP_SIZE, pool: int | None = 8
) -> Path:
    """A run folder of ``images`` images x ``methods``: heatmap and overlay PNGs, index.csv, run.json, metrics.csv.

    Args:
        root: The folder to write (created).
        images: How many images; every 50th has a failed map, labels and predictions disagree on every 7th.
        methods: The methods (one map each per image).
        size: The maps' side in pixels.
        pool: Write this many distinct pictures and point the rows at them in turn
            (quick to set up; the report still reads every row's files), or None
            to write a file for every map.
    """
    root.mkdir(parents=True, exist_ok=True)
    rows, metrics = [], []
    written: dict[int, tuple[str, str]] = {}
    for k in range(images):
        image_id = f"img{k:04d}"
        label = k % len(CLASS_NAMES)
        predicted = (label + 1) % len(CLASS_NAMES) if k % 7 == 3 else label
        for m, method in enumerate(methods):
            if k % 50 == 49 and m == len(methods) - 1:
                rows.append(
                    {
                        "image_id": image_id,
                        "source_path": f"images/{image_id}.png",
                        "method": method,
                        "label": label,
                        "predicted": predicted,
                        "status": "error",
                        "error": f"{method} ran out of memory",
                    }
                )
                continue
            number = k * len(methods) + m
            slot = number % pool if pool else number
            if slot not in written:
                heatmap, overlay = _pictures(size, slot)
                stem = f"maps/{method}/{image_id}_c{predicted}" if pool is None else f"maps/pool/{slot}"
                write_png(root / f"{stem}.png", heatmap)
                write_png(root / f"{stem}.overlay.png", overlay)
                written[slot] = (f"{stem}.png", f"{stem}.overlay.png")
            png, overlay_path = written[slot]
            delta = 0.002 * ((number * 37) % 50) if method == "integrated_gradients" else ""
            rows.append({
                "image_id": image_id, "source_path": f"images/{image_id}.png", "method": method,
                "class_index": predicted, "class_name": CLASS_NAMES[predicted], "score": 0.5 + (number % 47) / 100,
                "label": label, "predicted": predicted, "status": "ok", "png_path": png,
                "overlay_path": overlay_path, "relative_delta": delta,
            })  # fmt: skip
            metrics.append(
                [
                    image_id,
                    method,
                    predicted,
                    f"{(number * 13 % 97) / 97:.4f}",
                    f"{(number * 7 % 89) / 89:.4f}",
                    f"{(number * 5 % 83) / 83:.4f}",
                ]
            )
    (root / "index.csv").write_text(index_text(rows, header=True), encoding="utf-8")
    info = {
        "status": "finished",
        "config": {"targets": "predicted"},
        "methods": [{"name": m, "params": {}} for m in methods],
        "model": {"path": "model.keras", "classes": len(CLASS_NAMES), "class_names": list(CLASS_NAMES)},
    }
    (root / "run.json").write_text(json.dumps(info), encoding="utf-8")
    with open(root / "metrics.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "method", "class_index", "gini", "deletion_auc", "insertion_auc"])
        writer.writerows(metrics)
    return root


def page_json(html: str) -> dict:
    """The image cards' data embedded in a report page."""
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.DOTALL)
    assert found, "no report-data script in the page"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("scale") / "run", SCALE_IMAGES)


@pytest.fixture(scope="module")
def scale_report(scale_run) -> Path:
    return write_report(scale_run, progress=False)[0]


@pytest.mark.slow
def test_a_200_image_report_stays_within_its_size_budget(scale_run, scale_report, tmp_path):
    size = scale_report.stat().st_size
    assert size < REPORT_BUDGET_BYTES, f"{size / 1e6:.1f} MB for {SCALE_IMAGES} images"
    small = write_report(synthetic_run(tmp_path / "small", 20), progress=False)[0].stat().st_size
    per_image = (size - small) / (SCALE_IMAGES - 20)
    assert per_image < IMAGE_BUDGET_BYTES, f"{per_image / 1e3:.1f} KB per image"
    full_size = (scale_run / "maps" / "pool" / "0.overlay.png").stat().st_size
    data = page_json(scale_report.read_text(encoding="utf-8"))
    sources = [t["src"] for image in data["images"] for m in image["maps"] for t in m["thumbs"]]
    assert len(sources) == 2 * (SCALE_IMAGES * len(METHODS) - SCALE_IMAGES // 50)
    assert max(map(len, sources)) < min(THUMB_BUDGET_BYTES, full_size)  # thumbnails, never the full-size PNG


@pytest.mark.slow
def test_every_card_has_the_facts_the_filters_and_sorts_use(scale_run, scale_report):
    data = page_json(scale_report.read_text(encoding="utf-8"))
    assert data["methods"] == list(METHODS)
    assert [c["text"] for c in data["classes"]] == [f"{k} ({name})" for k, name in enumerate(CLASS_NAMES)]
    assert {k["key"] for k in data["sortKeys"]} == {"score", "completeness", "gini", "deletion_auc", "insertion_auc"}
    images = data["images"]
    assert [i["id"] for i in images] == [f"img{k:04d}" for k in range(SCALE_IMAGES)]
    for k, image in enumerate(images):
        assert image["outcome"] == ("mispredicted" if k % 7 == 3 else "correct"), image["id"]
        assert image["status"] == ("error" if k % 50 == 49 else "ok")
        assert image["labels"] == [k % 4] and len(image["predicted"]) == 1
        for m in image["maps"]:
            assert m["method"] in METHODS and m["status"] in ("ok", "error")
            if m["status"] == "ok":
                assert m["class"] == image["predicted"][0]
                assert {"score", "gini", "deletion_auc", "insertion_auc"} <= set(m["values"])
                assert ("completeness" in m["values"]) == (m["method"] == "integrated_gradients")
                hrefs = [t["href"] for t in m["thumbs"]]
                assert len(hrefs) == 2 and all((scale_run / h).is_file() for h in hrefs)
    sheets = sorted(p.name for p in scale_run.glob("contact_sheet*.png"))
    assert len(sheets) == 4 and "contact_sheet_4.png" in sheets  # 200 image rows, 50 a sheet


def test_contact_sheets_cover_every_image_and_the_bar_counts_images(tmp_path, capsys):
    run = synthetic_run(tmp_path / "run", 120, methods=("gradient",), size=64, pool=4)
    html, first = write_report(run)
    bar = capsys.readouterr().err
    # stderr is no terminal here: the plain progress lines, a tenth of the images each
    assert "report: 12/120 images (10 %)" in bar and "report: 120/120 images (100 %)" in bar and "images/s" in bar
    sheets = sorted(p.name for p in run.glob("contact_sheet*.png"))
    assert first.name == "contact_sheet.png"
    assert sheets == ["contact_sheet.png", "contact_sheet_2.png", "contact_sheet_3.png"]
    text = html.read_text(encoding="utf-8")
    # 50 rows a sheet; img0049 and img0099 failed (no row), so the sheets hold 51, 51 and 18 images
    assert 'href="contact_sheet_3.png"' in text and "images 103–120" in text
    write_report(run, max_images=10, progress=False)
    assert sorted(p.name for p in run.glob("contact_sheet*.png")) == ["contact_sheet.png"]  # stale sheets removed
    assert capsys.readouterr().err == ""
