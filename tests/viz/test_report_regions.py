"""``medxai report`` of a region run (a segmentation model): outlines drawn in, a channel filter, region captions."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image
from study_helpers import region_run as study_run
from test_report_scale import page_json, synthetic_run

from medxai.pipeline.evaluation import EvaluationSpec, evaluate_run
from medxai.regions import inner_border
from medxai.viz.render import colour_bar_width
from medxai.viz.report import write_report
from medxai.viz.report.pictures import REGION_COLOUR, as_rgb, encoded_thumbnail, outline_region

NODE = shutil.which("node")
#: What a classifier's card held before region targets: its JSON is unchanged.
CLASS_CARD_KEYS = {
    "method", "class", "status", "score", "thumbs", "written", "figures", "values", "noMetrics", "metricError", "error",
}  # fmt: skip


@pytest.fixture(scope="module")
def region_report(tmp_path_factory):
    run_dir = study_run(tmp_path_factory.mktemp("report_regions"), ["gradient"], ["npy", "png"])
    evaluate_run(run_dir, EvaluationSpec(faithfulness=False, sanity_images=0), progress=False)
    html = write_report(run_dir, progress=False)[0]
    return run_dir, html.read_text(encoding="utf-8")


def _index(run_dir):
    import csv

    with open(run_dir / "index.csv", newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["status"] == "ok"]


def _decoded(src: str) -> np.ndarray:
    return as_rgb(np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))))


def test_each_region_card_shows_its_regions_outline(region_report):
    run_dir, html = region_report
    data = page_json(html)
    rows = {(r["image_id"], r["component"]): r for r in _index(run_dir)}
    cards = [(image["id"], card) for image in data["images"] for card in image["maps"]]
    assert len(cards) == len(rows) >= 3
    for image_id, card in cards:
        row = rows[(image_id, card["caption"].split(" · ")[1].split()[-1])]
        plain = as_rgb(np.asarray(Image.open(run_dir / row["png_path"])))  # the run's picture, no outline
        plain = plain[:, : plain.shape[1] - colour_bar_width(plain.shape[0])]  # the report shows it without its bar
        region = np.load(run_dir / row["region_path"])
        src = card["thumbs"][0]["src"]
        assert src == encoded_thumbnail(outline_region(plain, region))  # the region's outline drawn in
        shown, unlined = _decoded(src), _decoded(encoded_thumbnail(plain))
        assert shown.shape == plain.shape == (*region.shape, 3)  # small maps: no shrinking
        border = inner_border(region)
        assert border.any() and (~border).any()
        on = np.abs(shown[border].astype(int) - unlined[border]).mean()
        off = np.abs(shown[~border].astype(int) - unlined[~border]).mean()
        assert on > 40 and off < on / 2  # it differs from the no-outline picture on the outline pixels (JPEG blurs)
        drawn = outline_region(plain, region)
        assert (drawn[border] == REGION_COLOUR).all() and np.array_equal(drawn[~border], plain[~border])


def test_region_cards_are_keyed_by_map_key_and_captioned(region_report):
    run_dir, html = region_report
    data = page_json(html)
    rows = _index(run_dir)
    captions = sorted(card["caption"] for image in data["images"] for card in image["maps"])
    expected = sorted(
        f"channel 1 · connected {r['component']} · {r['region_voxels']} voxels · "
        f"score {float(r['region_score']):.3f} · p = {float(r['score']):.3f}"
        for r in rows
    )
    assert captions == expected
    for image in data["images"]:
        components = [card["caption"].split(" · ")[1] for card in image["maps"]]
        assert len(set(components)) == len(components)  # two regions of one channel: two cards, two keys
        for card in image["maps"]:  # metrics.csv's figures reach the card of its own region
            assert card["channel"] == 1 and "relevance_mass" in card["values"]
    assert '<span class="legend-region">' in html


def test_the_channel_filter_lists_the_channels(region_report):
    _, html = region_report
    data = page_json(html)
    assert '<select id="f-channel">' in html
    assert data["channels"] == [{"index": 1, "text": "1"}]


@pytest.mark.skipif(NODE is None, reason="Node.js not installed")
def test_the_channel_filter_selects_the_channels_maps(region_report, tmp_path):
    _, html = region_report
    (tmp_path / "data.json").write_text(json.dumps(page_json(html)), encoding="utf-8")
    script = files("medxai.viz.report") / "templates" / "report.js"
    code = (
        f"const report = require({json.dumps(str(script))});"
        f"const data = require({json.dumps(str(tmp_path / 'data.json'))});"
        "const counts = ['', '1', '0'].map(c => report.select(data, Object.assign({}, report.DEFAULTS, {channel: c}))"
        ".reduce((n, r) => n + r.maps.length, 0));"
        "console.log(JSON.stringify(counts));"
    )
    done = subprocess.run([NODE, "-e", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    every, one, none = json.loads(done.stdout)
    assert every == one > 0 and none == 0


def test_a_classifier_report_is_unchanged(tmp_path):
    run = synthetic_run(tmp_path / "run", 4, methods=("gradient",), size=24, pool=2)
    html = write_report(run, progress=False)[0].read_text(encoding="utf-8")
    data = page_json(html)
    assert "channels" not in data and '<select id="f-channel">' not in html  # no channel filter
    assert '<span class="legend-region">' not in html
    assert all(set(card) == CLASS_CARD_KEYS for image in data["images"] for card in image["maps"])
