"""``medxai.viz.report``'s templates: shipped as package data, rendered with every piece of run text escaped."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import numpy as np
from test_report_scale import page_json

from medxai.io.index import index_text
from medxai.io.writers import write_png
from medxai.viz.report import write_report
from medxai.viz.report.page_data import script_json
from medxai.viz.report.render import environment, script

SCRIPT_ID = "<script>alert('id')</script>"
SCRIPT_ERROR = 'cannot read <script>alert("error")</script> & more'


class _Page(HTMLParser):
    """The tags and the text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _hostile_run(root: Path) -> Path:
    """A hand-made run (no TensorFlow) whose image id, path and error message carry HTML."""
    root.mkdir()
    write_png(root / "maps" / "a.png", (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8))
    info = {"methods": [{"name": "gradient", "params": {"absolute": True}}], "model": {"path": "<b>model</b>"}}
    (root / "run.json").write_text(json.dumps(info))
    rows = [
        {
            "image_id": SCRIPT_ID,
            "source_path": "<i>a</i>.png",
            "method": "gradient",
            "class_index": 0,
            "score": 0.9,
            "label": "0",
            "status": "ok",
            "png_path": "maps/a.png",
        },
        {"image_id": "broken", "source_path": "b.dcm", "method": "gradient", "status": "error", "error": SCRIPT_ERROR},
    ]
    (root / "index.csv").write_text(index_text(rows, header=True))
    return root


def test_templates_are_package_data():
    templates = files("medxai.viz.report") / "templates"
    for name in ("report.html.j2", "report.css", "report.js", "_sections.html.j2", "_images.html.j2"):
        assert (templates / name).is_file(), name
    assert environment().get_template("report.html.j2") is not None


def test_the_environment_escapes_every_value():
    assert environment().from_string("{{ value }}").render(value="<script>&") == "&lt;script&gt;&amp;"


def test_script_in_an_image_id_or_error_is_escaped(tmp_path):
    html_path, _ = write_report(_hostile_run(tmp_path / "run"), progress=False)
    raw = html_path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(raw)
    page.close()
    # the page's own two scripts (the cards' JSON and its code), nothing from the run
    assert page.tags.count("script") == 2 and raw.count("<script") == 2 and "i" not in page.tags
    assert "<script>alert" not in raw and "<b>model</b>" not in raw and "<i>a</i>" not in raw
    text = "".join(page.text)
    assert SCRIPT_ERROR in text and "<b>model</b>" in text  # HTML-escaped in the failures and run sections
    assert raw.count("&lt;script&gt;alert(") >= 1
    image = page_json(raw)["images"][0]  # the cards' JSON: < > & written as \u escapes, read back intact
    assert image["id"] == SCRIPT_ID and image["source"] == "<i>a</i>.png"
    assert image["maps"][0]["thumbs"][0]["alt"].startswith(SCRIPT_ID)


def test_the_cards_json_cannot_end_its_script_element():
    closing = script_json({"id": "</script><script>alert(1)</script>", "note": "a & b <!-- c"})
    assert "<" not in closing and ">" not in closing and "&" not in closing
    assert json.loads(str(closing)) == {"id": "</script><script>alert(1)</script>", "note": "a & b <!-- c"}
    assert "</script" not in str(script()).lower()


def test_python_dash_m_writes_the_report(tmp_path):
    root = _hostile_run(tmp_path / "run")
    done = subprocess.run(
        [sys.executable, "-m", "medxai.viz.report", str(root), "--max-images", "1", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "report.html").is_file() and (root / "contact_sheet.png").is_file()
    missing = subprocess.run(
        [sys.executable, "-m", "medxai.viz.report", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "not a medxai run" in missing.stderr
