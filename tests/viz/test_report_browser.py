"""The report page's script: run in headless Chromium (the cards in the DOM), and its filter and sort in Node.

Each test is skipped where its program is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from test_report_scale import page_json, synthetic_run

from medxai.viz.report import write_report

IMAGES = 120
METHODS = ("integrated_gradients", "gradient")
BROWSER = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
     if (found := shutil.which(name))),
    None,
)  # fmt: skip
NODE = shutil.which("node")


class _Dom(HTMLParser):
    """The image blocks (their ids in order, the methods of their cards), the select options and the pager text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.methods: list[set[str]] = []
        self.options: dict[str, list[str]] = {}
        self.pager = ""
        self.matching: str | None = None
        self._in: list[str] = []
        self._select = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "div" and attr.get("id") == "cards":
            self.matching = attr.get("data-matching")
        if tag == "article" and "image" in (attr.get("class") or "").split():
            self.methods.append(set())
        if tag == "select":
            self._select = attr.get("id") or ""
            self.options[self._select] = []
        if tag == "option" and self._select:
            self.options[self._select].append(attr.get("value") or "")
        if tag == "div" and attr.get("id") == "pager-top":
            self._in.append("pager")
        elif tag in ("h3", "b", "span"):
            self._in.append(tag)
        if tag == "figcaption":
            self._in.append("figcaption")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = ""
        if tag in ("h3", "b", "span", "figcaption") and self._in and self._in[-1] == tag:
            self._in.pop()
        if tag == "div" and self._in and self._in[-1] == "pager":
            self._in.pop()

    def handle_data(self, data: str) -> None:
        where = self._in[-1] if self._in else ""
        if where == "h3":
            self.images.append(data)
        elif where == "b" and "figcaption" in self._in:
            self.methods[-1].add(data)
        elif "pager" in self._in:
            self.pager += data


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run = synthetic_run(tmp_path_factory.mktemp("browser") / "run", IMAGES, methods=METHODS, size=96, pool=6)
    return write_report(run, progress=False)[0]


def _expected(data: dict, *, method: str = "", outcome: str = "", sort: str = "", desc: bool = False) -> list[str]:
    """The image ids the page should show, in order (the page's rules written again in Python)."""
    rows = []
    for image in data["images"]:
        if outcome and (image["outcome"] or "unknown") != outcome:
            continue
        maps = [m for m in image["maps"] if not method or m["method"] == method]
        if not maps:
            continue
        values = [m["values"][sort] for m in maps if sort in m.get("values", {})]
        key = (max(values) if desc else min(values)) if values else None
        rows.append((image, key))
    if sort:
        rows.sort(key=lambda r: (r[1] is None, 0 if r[1] is None else (-r[1] if desc else r[1]), r[0]["n"]))
    return [image["id"] for image, _ in rows]


def node_json(code: str) -> Any:
    """What a Node.js program prints (one JSON value); its exit status must be 0."""
    assert NODE is not None
    done = subprocess.run([NODE, "-e", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _dom(report: Path, query: str = "") -> _Dom:
    done = subprocess.run(
        [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         f"--user-data-dir={report.parent / '.chromium'}", "--dump-dom", report.as_uri() + query],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Dom()
    dom.feed(done.stdout)
    return dom


@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome installed")
def test_the_page_renders_its_first_page_of_cards_and_fills_its_filters(report):
    data = page_json(report.read_text(encoding="utf-8"))
    dom = _dom(report)
    assert dom.images == [f"img{k:04d}" for k in range(50)]  # the first page of 50, in manifest order
    assert dom.matching == str(IMAGES) and "page 1 of 3" in dom.pager
    assert all(methods == set(METHODS) for methods in dom.methods[:49])
    assert dom.options["f-method"] == ["", *METHODS]
    assert dom.options["f-class"] == ["", "0", "1", "2", "3"]
    assert dom.options["f-sort"] == ["", "id"] + [k["key"] for k in data["sortKeys"]]
    assert {"mispredicted", "correct"} <= set(dom.options["f-outcome"])
    assert {"ok", "error"} <= set(dom.options["f-status"])


@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome installed")
def test_the_page_filters_sorts_and_pages_as_its_address_says(report):
    data = page_json(report.read_text(encoding="utf-8"))
    wrong = _dom(report, "?outcome=mispredicted")
    assert wrong.images == _expected(data, outcome="mispredicted") and wrong.images
    assert all(int(image[3:]) % 7 == 3 for image in wrong.images)
    worst = _dom(report, "?method=gradient&sort=score&order=desc&page=2&size=25")
    assert worst.images == _expected(data, method="gradient", sort="score", desc=True)[25:50]
    assert all(methods <= {"gradient"} for methods in worst.methods) and "page 2 of 5" in worst.pager


@pytest.mark.skipif(NODE is None, reason="Node.js not installed")
def test_the_scripts_filter_and_sort_match_their_description(report, tmp_path):
    data = page_json(report.read_text(encoding="utf-8"))
    (tmp_path / "data.json").write_text(json.dumps(data), encoding="utf-8")
    script = files("medxai.viz.report") / "templates" / "report.js"
    cases = [
        {},
        {"outcome": "mispredicted"},
        {"outcome": "correct", "method": "integrated_gradients", "sort": "completeness", "order": "desc"},
        {"sort": "gini"},
        {"sort": "id", "order": "desc"},
        {"status": "error"},
        {"cls": "2", "role": "label"},
    ]
    code = (
        f"const report = require({json.dumps(str(script))});"
        f"const data = require({json.dumps(str(tmp_path / 'data.json'))});"
        f"const cases = {json.dumps(cases)};"
        "console.log(JSON.stringify(cases.map(c => report.select(data, Object.assign({}, report.DEFAULTS, c))"
        ".map(r => [r.image.id, r.maps.map(m => m.method)]))));"
    )
    results = node_json(code)
    ids = [[image for image, _ in result] for result in results]
    assert ids[0] == [f"img{k:04d}" for k in range(IMAGES)]
    assert ids[1] == _expected(data, outcome="mispredicted")
    assert ids[2] == _expected(data, outcome="correct", method="integrated_gradients", sort="completeness", desc=True)
    assert all(methods == ["integrated_gradients"] for _, methods in results[2])
    assert ids[3] == _expected(data, sort="gini")
    assert ids[4] == sorted(ids[0], reverse=True)
    assert ids[5] == [f"img{k:04d}" for k in range(IMAGES) if k % 50 == 49]
    assert all(methods == ["gradient"] for _, methods in results[5])  # only the failed map
    assert ids[6] == [f"img{k:04d}" for k in range(IMAGES) if k % 4 == 2]
