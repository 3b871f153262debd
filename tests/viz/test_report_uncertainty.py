"""The report shows a map's uncertainty beside it: the SD map's picture and the stability figure."""

from __future__ import annotations

import csv

import matplotlib
import numpy as np
from test_report_scale import page_json
from test_report_viewer import viewer_run

from medxai.viz.report import write_report
from medxai.viz.report.pictures import SD_COLORMAP, SD_TOP, as_rgb


def _with_uncertainty(root, sd: np.ndarray, stability: float):
    """The viewer run with an SD map and a stability figure on its first row (IG of the volume)."""
    np.save(root / "maps" / "vol_ig.sd.npy", sd)
    with open(root / "index.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[0].update(sd_path="maps/vol_ig.sd.npy", stability=str(stability))
    for row in rows[1:]:
        row.update(sd_path="", stability="")
    with open(root / "index.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def _decoded(src: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    return as_rgb(np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))))


def test_a_maps_sd_picture_and_stability_are_shown_beside_it(tmp_path):
    root = viewer_run(tmp_path / "run")
    shape = np.load(root / "maps" / "vol_integrated_gradients.npy").shape
    sd = np.full(shape, SD_TOP, np.float32)  # the top of the SD colour scale everywhere
    data = page_json(write_report(_with_uncertainty(root, sd, 0.125), progress=False)[0].read_text("utf-8"))
    ig, gradient = data["images"][0]["maps"]
    assert len(ig["thumbs"]) == len(gradient["thumbs"]) + 1  # the gradient row has no SD map
    assert "SD map" in ig["thumbs"][-1]["alt"] and not any("SD" in t["alt"] for t in gradient["thumbs"])
    top = np.array(matplotlib.colormaps[SD_COLORMAP](1.0)[:3]) * 255
    picture = _decoded(ig["thumbs"][-1]["src"]).reshape(-1, 3).astype(float)
    numbered = np.abs(picture - top).max(axis=1) <= 12  # JPEG; the montage's slice numbers are drawn on it
    assert numbered.mean() > 0.8
    assert ["stability", "0.125"] == ig["figures"][-1][:2] and ig["values"]["stability"] == 0.125
    assert "stability" not in gradient["values"]


def test_a_missing_sd_map_is_said_not_fatal(tmp_path):
    root = _with_uncertainty(viewer_run(tmp_path / "run"), np.zeros((2, 2), np.float32), 0.5)
    (root / "maps" / "vol_ig.sd.npy").unlink()
    ig = page_json(write_report(root, progress=False)[0].read_text("utf-8"))["images"][0]["maps"][0]
    assert (
        not any("SD" in t["alt"] for t in ig["thumbs"]) and "SD map maps/vol_ig.sd.npy: file missing" in ig["written"]
    )
