"""``medxai.viz.report``: a self-contained HTML report and a contact sheet from a real (tiny) run."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.io
import yaml
from analytic_models import tiny_model
from test_report_scale import page_json

import medxai
from medxai.data.study_files import write_ct_dicom
from medxai.viz.report import CONTACT_SHEET_LIMIT, ReportError, write_report

NASTY_ID = "<b>&x"
METHODS = [{"name": "ig", "steps": 4}, "gradient"]


class _Collector(HTMLParser):
    """Every src/href, every id, every tag and each script's type of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()
        self.tags: set[str] = set()
        self.scripts: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "script":
            assert "src" not in dict(attrs), "scripts are inline"
            self.scripts.append(dict(attrs).get("type"))
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action", "xlink:href"):
                self.links.append((tag, name, value or ""))
            if name == "id" and value:
                self.ids.add(value)


def _parse(path: Path) -> tuple[str, _Collector]:
    text = path.read_text(encoding="utf-8")
    collector = _Collector()
    collector.feed(text)
    collector.close()
    return text, collector


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Three good images (PNG with a mask, CT DICOM, NPY with an HTML-hostile id) and one fake DICOM."""
    root = tmp_path_factory.mktemp("report_study")
    tiny_model().save(root / "model.keras")
    rng = np.random.default_rng(0)
    skimage.io.imsave(root / "wide.png", (rng.random((20, 24)) * 255).astype(np.uint8), check_contrast=False)
    mask = np.zeros((20, 24), np.uint8)
    mask[5:11, 8:15] = 255
    skimage.io.imsave(root / "wide_mask.png", mask, check_contrast=False)
    write_ct_dicom(root / "ct.dcm", rng.normal(40, 200, size=(16, 16)).round(), uid_seed="report")
    np.save(root / "nasty.npy", rng.random((16, 16)).astype(np.float32))
    (root / "fake.dcm").write_text("this is not a DICOM file")
    rows = [
        ("wide", "wide.png", 0, "wide_mask.png"),
        ("ct", "ct.dcm", 1, ""),
        (NASTY_ID, "nasty.npy", 1, ""),
        ("fake", "fake.dcm", 0, ""),
    ]
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "path", "label", "mask"])
        writer.writerows(rows)
    return root


def _run(root: Path, out: str, **output) -> Path:
    config = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id", "label_column": "label", "mask_column": "mask"},
        "methods": METHODS,
        "output": {"dir": out, **output},
        "runtime": {"batch_size": 4, "progress": False},
    }
    path = root / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config))
    summary = medxai.run(path)
    assert summary.errors == 1 and summary.failed_ids == ["fake"]
    return root / out


@pytest.fixture(scope="module")
def run_dir(study) -> Path:
    return _run(study, "full")


@pytest.fixture(scope="module")
def report(run_dir) -> tuple[Path, Path]:
    return write_report(run_dir)


def _index(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "index.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _thumbs(html: str) -> list[dict]:
    """Every thumbnail of the page's image cards."""
    return [t for image in page_json(html)["images"] for m in image["maps"] for t in m["thumbs"] if t["src"]]


def _check_link(run_dir: Path, value: str, ids: set[str]) -> None:
    """A link of the page: an embedded picture, an in-page anchor or a file of the run folder (relative)."""
    assert not value.lower().startswith(("http:", "https:", "//", "file:", "ftp:", "javascript:")), value
    if value.startswith("data:"):
        return
    if value.startswith("#"):
        assert value[1:] in ids, f"dangling in-page link {value}"
        return
    target = (run_dir / unquote(value)).resolve()
    assert not Path(value).is_absolute() and target.is_relative_to(run_dir.resolve()) and target.is_file(), value


def test_report_opens_from_disk_with_embedded_thumbnails_and_relative_links(report, run_dir):
    # was test_report_is_self_contained: the page now has its own inline script, and its
    # thumbnails (in the cards' JSON) link to the full-size pictures in the run folder
    html_path, sheet_path = report
    assert html_path == run_dir / "report.html" and sheet_path == run_dir / "contact_sheet.png"
    text, doc = _parse(html_path)
    assert {"link", "iframe", "object", "embed"}.isdisjoint(doc.tags)
    assert doc.scripts == ["application/json", None]  # the cards' data, then the page's own code
    thumbs = _thumbs(text)
    assert thumbs and all(t["src"].startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for t in thumbs)
    assert all(t["href"] for t in thumbs)  # every map here has its PNG files
    for _, _, value in doc.links + [("a", "href", t["href"]) for t in thumbs]:
        _check_link(run_dir, value, doc.ids)
    assert "contact_sheet.png" in [v for _, _, v in doc.links]
    lowered = text.lower().replace('"http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
    assert "http://" not in lowered and "https://" not in lowered and "url(" not in lowered and "@import" not in lowered
    assert not list(run_dir.glob(".*.tmp"))


def test_every_map_and_provenance_is_shown(report, run_dir):
    text, _ = _parse(report[0])
    ok = [r for r in _index(run_dir) if r["status"] == "ok"]
    # one overlay and one heatmap thumbnail per map, linking to them
    thumbs = _thumbs(text)
    assert len(thumbs) == 2 * len(ok)
    assert {t["href"] for t in thumbs} == {r[c] for r in ok for c in ("overlay_path", "png_path")}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["model"]["sha256"][:12] in text
    assert "integrated_gradients" in text and "gradient" in text and "steps=4" in text
    assert info["versions"]["medxai"] in text
    assert "medxai evaluate" in text  # no metrics yet: the report says how to get them
    images = page_json(text)["images"]
    assert [i["id"] for i in images] == ["wide", "ct", NASTY_ID, "fake"]  # manifest order, failed one included
    wide = images[0]
    assert wide["outline"] and wide["outline"]["lines"]  # the mask of "wide" drawn as an outline...
    assert all(t["outline"] for m in wide["maps"] for t in m["thumbs"])  # ...over each of its pictures
    assert images[3]["status"] == "error" and all(m["status"] == "error" for m in images[3]["maps"])


def test_failed_images_have_their_own_section(report, run_dir):
    text, _ = _parse(report[0])
    error = next(r["error"] for r in _index(run_dir) if r["image_id"] == "fake")
    assert "not a DICOM file" in error
    failed = text[text.index('<section id="failed">') :]
    assert "fake" in failed and _escaped(error) in failed
    assert "<h3>fake</h3>" not in text  # no image block for an image without maps


def _escaped(value: str) -> str:
    import markupsafe

    return str(markupsafe.escape(value))  # the templates' escaping (autoescape)


def test_user_text_is_escaped(report):
    # the id is no longer in the page's HTML but in the cards' JSON, with < > & as \u escapes
    text, _ = _parse(report[0])
    assert NASTY_ID not in text
    assert "\\u003cb\\u003e\\u0026x" in text
    assert NASTY_ID in [i["id"] for i in page_json(text)["images"]]


def test_contact_sheet_is_rgb_and_grows_with_images(report, run_dir, tmp_path):
    sheet = iio.imread(report[1])
    assert sheet.ndim == 3 and sheet.shape[2] == 3 and sheet.dtype == np.uint8
    assert sheet.std() > 0  # not blank
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    html_one, sheet_one = write_report(copy, max_images=1)
    one = iio.imread(sheet_one)
    assert one.shape[1] == sheet.shape[1] and one.shape[0] < sheet.shape[0]
    text, _ = _parse(html_one)
    assert "Showing the first 1 of 3 images" in text
    assert [i["id"] for i in page_json(text)["images"]] == ["wide"]
    with pytest.raises(ValueError, match="max_images"):
        write_report(copy, max_images=0)
    assert CONTACT_SHEET_LIMIT >= 1


def _write_evaluation(run_dir: Path) -> None:
    ok = [r for r in _index(run_dir) if r["status"] == "ok"]
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "image_id",
                "method",
                "class_index",
                "completeness",
                "gini",
                "pointing_game",
                "relevance_mass",
                "topk_iou",
                "deletion_auc",
                "insertion_auc",
            ]
        )
        for k, row in enumerate(ok):
            localised = row["image_id"] == "wide"
            writer.writerow(
                [
                    row["image_id"],
                    row["method"],
                    row["class_index"],
                    row["relative_delta"],
                    f"0.{4242 + k}",
                    1.0 if localised else "",
                    0.5 if localised else "",
                    0.25 if localised else "",
                    0.123,
                    0.789,
                ]
            )
    with open(run_dir / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "metric", "mean", "median", "ci_low", "ci_high", "n"])
        writer.writerow(["integrated_gradients", "gini", 0.6171, 0.6, 0.5, 0.7, 3])
        writer.writerow(["gradient", "gini", 0.5272, 0.5, 0.4, 0.6, 3])
        writer.writerow(["gradient", "deletion_auc", "", "", "", "", 0])
    with open(run_dir / "sanity.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "step", "layer", "spearman"])
        for step, layer in enumerate(["dense", "conv2d"], start=1):
            writer.writerow(["integrated_gradients", step, layer, 0.95])
            writer.writerow(["gradient", step, layer, 0.5 / step])
    (run_dir / "evaluation.json").write_text(
        json.dumps(
            {
                "sanity": {
                    "integrated_gradients": {"passed": False, "final_spearman": 0.95, "final_spearman_abs": 0.9713},
                    "gradient": {"passed": True, "final_spearman": 0.25},
                    "flaky": {"verdict": "error", "passed": None, "error": "seed 0, step 1 (dense): out of memory"},
                    "flat": {"verdict": "undefined", "passed": None, "final_spearman": None},
                }
            }
        )
    )


def test_quality_figures_and_sanity_verdicts_appear(run_dir, tmp_path):
    copy = tmp_path / "evaluated"
    shutil.copytree(run_dir, copy)
    _write_evaluation(copy)
    html_path, _ = write_report(copy)
    text, doc = _parse(html_path)
    assert "0.617" in text and "0.527" in text  # summary.csv means
    assert "[0.500, 0.700]" in text  # an old summary.csv's ci_low/ci_high: read as the 2.5/97.5 percentiles
    assert "0.424" in text  # a per-map figure from metrics.csv
    assert "hit" in text  # pointing game of the masked image
    sanity = text[text.index('<section id="sanity">') : text.index('<section id="images">')]
    ig = sanity[sanity.index("<b>integrated_gradients</b>") :]
    assert ig.index("FAIL") < ig.index("</tr>")
    grad = sanity[sanity.index("<b>gradient</b>") :]
    assert grad.index("PASS") < grad.index("</tr>")
    assert "0.971" in ig[: ig.index("</tr>")]  # the correlation of absolute values
    flaky = sanity[sanity.index("<b>flaky</b>") :]
    assert flaky.index("error") < flaky.index("out of memory") < flaky.index("</tr>")
    flat = sanity[sanity.index("<b>flat</b>") :]
    assert flat.index("undefined") < flat.index("</tr>") and "PASS" not in flat[: flat.index("</tr>")]
    assert "medxai evaluate RUN_DIR</code>) for quality figures" not in text
    # the sanity chart is embedded too
    assert all(v.startswith("data:") or v.startswith("#") or v == "contact_sheet.png" for _, _, v in doc.links)


def test_npy_only_run_says_no_overlay_written(study):
    out = _run(study, "npy_only", formats=["npy"])
    html_path, sheet_path = write_report(out)
    text, _ = _parse(html_path)
    assert "no overlay written" in text and "rendered from the .npy map" in text
    thumbs = _thumbs(text)
    assert len(thumbs) == sum(1 for r in _index(out) if r["status"] == "ok")
    assert not any(t["href"] for t in thumbs)  # a .npy map has no picture to link to
    assert iio.imread(sheet_path).shape[2] == 3


def test_missing_map_files_do_not_end_the_report(run_dir, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(run_dir, copy)
    row = next(r for r in _index(copy) if r["status"] == "ok")
    (copy / row["overlay_path"]).unlink()
    (copy / row["png_path"]).write_bytes(b"not a png")
    text, _ = _parse(write_report(copy)[0])
    assert "file missing" in text and "unreadable" in text


def test_not_a_run_raises_report_error(tmp_path, run_dir):
    with pytest.raises(ReportError, match="not a medxai run"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="not a medxai run"):
        write_report(tmp_path / "does-not-exist")
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(run_dir / "index.csv", half / "index.csv")
    with pytest.raises(ReportError, match="run.json"):
        write_report(half)
    (half / "run.json").write_text("{not json")
    with pytest.raises(ReportError, match="run.json"):
        write_report(half)
    assert isinstance(ReportError("x"), ValueError)


def test_report_does_not_import_tensorflow_or_the_pipeline(run_dir, tmp_path):
    copy = tmp_path / "no_tf"
    shutil.copytree(run_dir, copy)
    code = (
        "import sys; from medxai.viz.report import write_report; write_report(sys.argv[1]); "
        "bad = [m for m in ('tensorflow', 'keras', 'medxai.pipeline') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(copy)], check=True, timeout=120)
