"""The README's and the docs/ pages' examples run, and print what the pages show.

The pages are README.md and every ``docs/*.md``.

**Python examples.** Every ```python block that prints and is followed by an indented block (its
output, possibly after a line of text) is run from the repository root in a fresh Python; its
output is compared with the page's token by token: words exactly, numbers to 1e-3 relative (a
float printed on another CPU may differ in its last digits), so a page cannot drift from what the
program does. The examples and the transcripts' process (below) run two at a time.

**Command transcripts.** Every ```console block is a transcript: a line starting with ``$ `` is a
command (a trailing ``\\`` continues it on the next line), the lines up to the next command are
what it prints, stdout and stderr together in the order written. Each command must start with
``medxai``. The transcripts are run through ``medxai.cli.main`` (what the ``medxai`` script
calls), all of them in one Python process (TensorFlow starts once), with ``COLUMNS=80``, from a
scratch folder holding links to the repository's ``configs/`` and ``data_samples/`` (a command
writes nothing into the checkout). A ```yaml block whose first line is ``# file: NAME`` is
written to the scratch folder as ``NAME`` first, so a transcript can use a config its page shows.
A transcript too slow for the suite (a whole run) has the marker line
``<!-- transcript: not run (why) -->`` right before its fence; every other one is run, so the
suite stays fast (well under a minute for this file on 2 cores). The masking rules, applied to
both sides before they are compared:

- the repository's and the scratch folder's absolute paths are removed
  (``/home/me/medxai/runs/demo`` reads ``runs/demo``);
- timings and rates vary, so ``in 3.2 s``, ``[00:03<00:00, 55.8 maps/s]``, ``ETA 1m30s`` and
  ``4.1 images/s`` become placeholders;
- runs of spaces count as one space, and trailing spaces and blank lines are ignored;
- in the page, ``...`` stands for any text within a line, and a line of ``...`` alone for any
  number of lines (what the page leaves out).

Everything else, numbers included, must be equal.

**Links.** Every relative link in the pages (``[text](docs/methods.md#adaptive-steps)``) must
name a file that exists and, with ``#anchor``, a heading of that file (GitHub's anchors), and the
README links every docs page.

**Lists.** The pages' lists follow the code's tables: docs/methods.md has a row for every built-in
method with exactly its aliases (and the README's intro their number), docs/outputs.md names every
index column, docs/evaluation.md every figure and every column of summary.csv and sanity.csv.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```python\n(?P<code>.*?)```\n(?P<after>.*?)(?=```|\n#)", re.S)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```\n", re.S | re.M)
NOT_RUN = re.compile(r"<!-- transcript: not run \(.+\) -->\n$")


def page_name(page: Path) -> str:
    return str(page.relative_to(REPO))


def examples() -> list[tuple[str, int, str, str]]:
    """``(page, line, code, expected output)`` of every Python example that shows its output."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            code, after = match["code"], match["after"]
            if "print(" not in code:
                continue
            shown = re.search(r"(?:^|\n)((?:    .*\n?)+)", after)
            if shown is None:
                continue
            expected = "\n".join(line[4:] for line in shown.group(1).splitlines())
            found.append((page_name(page), text[: match.start()].count("\n") + 1, code, expected))
    return found


def same_tokens(got: str, want: str) -> bool:
    got_tokens, want_tokens = got.split(), want.split()
    if len(got_tokens) != len(want_tokens):
        return False
    for g, w in zip(got_tokens, want_tokens):
        g_numbers, w_numbers = _NUMBER.findall(g), _NUMBER.findall(w)
        if _NUMBER.sub("#", g) != _NUMBER.sub("#", w) or len(g_numbers) != len(w_numbers):
            return False
        for a, b in zip(g_numbers, w_numbers):
            if not math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-6):
                return False
    return True


EXAMPLES = examples()


def test_the_pages_show_their_python_examples_with_their_output():
    assert len(EXAMPLES) >= 3  # the Python API, the notebook API, segmentation models
    assert any(page == "README.md" for page, *_ in EXAMPLES)


@pytest.mark.parametrize("page, line, code, expected", EXAMPLES, ids=[f"{e[0]} line {e[1]}" for e in EXAMPLES])
def test_a_python_example_prints_what_its_page_shows(page, line, code, expected, started):
    done = started[(page, line)].result()
    assert done.returncode == 0, done.stderr[-3000:]
    assert same_tokens(done.stdout, expected), f"{page} line {line} shows:\n{expected}\nthe code prints:\n{done.stdout}"


def test_the_comparison_accepts_last_digits_and_refuses_real_drift():
    assert same_tokens("(64, 64) float32 1.0 [0.06469351]", "(64, 64) float32 1.0 [0.0646936]")
    assert not same_tokens("gap 289.951", "gap 290.951")
    assert not same_tokens("up1_conv2 (64, 64)", "up2_conv2 (64, 64)")
    assert not same_tokens("8 results", "8 results more")


# ---------------------------------------------------------------------------------------------
# command transcripts


def fences(text: str):
    """``(start offset, language, body)`` of every fenced block of a page."""
    return [(m.start(), m["lang"], m["body"]) for m in _FENCE.finditer(text)]


def transcripts() -> list[dict]:
    """Every ```console block of the pages: its commands, what each prints, whether it is run."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        files = {}
        for start, lang, body in fences(text):
            if lang == "yaml" and body.startswith("# file: "):
                name, _, rest = body.partition("\n")
                files[name[len("# file: ") :].strip()] = body
            if lang != "console":
                continue
            line = text[:start].count("\n") + 1
            commands: list[dict] = []
            pending = ""
            for row in body.splitlines():
                if pending or row.startswith("$ "):
                    command = pending + (row[2:] if not pending else row.strip())
                    pending = command[:-1] + " " if command.endswith("\\") else ""
                    if not pending:
                        commands.append({"argv": shlex.split(command), "shown": []})
                elif commands:
                    commands[-1]["shown"].append(row)
                else:
                    raise AssertionError(f"{page_name(page)} line {line}: a transcript starts with a '$ ' command")
            run = not NOT_RUN.search(text[:start])
            found.append(
                {"page": page_name(page), "line": line, "commands": commands, "run": run, "files": dict(files)}
            )
    return found


TRANSCRIPTS = transcripts()
RUN = [t for t in TRANSCRIPTS if t["run"]]

_DRIVER = """
import contextlib, io, json, os, sys
from medxai.cli import main
results = []
for argv in json.loads(sys.stdin.read()):
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code
    results.append({"output": shown.getvalue(), "status": status})
print(json.dumps(results))
"""


def run_transcripts(scratch: Path) -> subprocess.CompletedProcess:
    for folder in ("configs", "data_samples"):
        (scratch / folder).symlink_to(REPO / folder, target_is_directory=True)
    for transcript in RUN:
        for name, body in transcript["files"].items():
            (scratch / name).write_text(body, encoding="utf-8")
    argvs = [c["argv"][1:] for t in RUN for c in t["commands"]]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-c", _DRIVER],
        input=json.dumps(argvs),
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_example(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """Every Python example (by ``(page, line)``) and the transcripts (``"transcripts"``), started.

    Each is its own Python process (TensorFlow's start-up is most of their time), two at a time,
    so the file takes about half its CPU time on 2 cores.
    """
    scratch = tmp_path_factory.mktemp("transcripts")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {"transcripts": pool.submit(run_transcripts, scratch)}
        futures.update({(page, line): pool.submit(run_example, code) for page, line, code, _ in EXAMPLES})
        futures["scratch"] = str(scratch)  # type: ignore[assignment]
        yield futures


@pytest.fixture(scope="module")
def ran(started) -> dict:
    """What every command of the transcripts that are run printed, by ``(page, line)``."""
    done = started["transcripts"].result()
    assert done.returncode == 0, done.stderr[-3000:]
    results = iter(json.loads(done.stdout.splitlines()[-1]))
    found: dict = {(t["page"], t["line"]): [next(results) for _ in t["commands"]] for t in RUN}
    found["scratch"] = started["scratch"]
    return found


_TIMINGS = [
    (re.compile(r"\[\d+:\d+(?::\d+)?<[^\]]*\]"), "[TIME]"),  # tqdm's [00:03<00:00, 55.8 maps/s]
    (re.compile(r"\bin \d+(?:\.\d+)? s\b"), "in T s"),
    (re.compile(r"\bETA \w+"), "ETA T"),
    (re.compile(r"\d+(?:\.\d+)? ?(?:maps|images|img|explanations)/s\b"), "R/s"),
]


def masked(text: str, roots: list[str]) -> list[str]:
    """``text`` as the comparison sees it: paths, timings and spacing masked (the module's rules)."""
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "")
    for pattern, placeholder in _TIMINGS:
        text = pattern.sub(placeholder, text)
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def shows(got: list[str], shown: list[str]) -> bool:
    """Whether the printed lines ``got`` are what the page ``shown`` says (with its ``...``)."""
    parts = []
    for line in shown:
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.fullmatch("".join(parts), "".join(line + "\n" for line in got)) is not None


def test_the_pages_have_transcripts_that_run():
    assert sum(len(t["commands"]) for t in RUN) >= 5
    commands = {" ".join(c["argv"][:2]) for t in RUN for c in t["commands"]}
    assert {"medxai --help", "medxai methods", "medxai validate"} <= commands
    for transcript in TRANSCRIPTS:
        assert transcript["commands"], f"{transcript['page']} line {transcript['line']}: an empty transcript"
        for command in transcript["commands"]:
            assert command["argv"][0] == "medxai", f"{transcript['page']} line {transcript['line']}: {command['argv']}"


@pytest.mark.parametrize("transcript", RUN, ids=[f"{t['page']} line {t['line']}" for t in RUN])
def test_a_transcript_prints_what_its_page_shows(transcript, ran):
    roots = [str(REPO), ran["scratch"], os.path.realpath(ran["scratch"])]
    for command, result in zip(transcript["commands"], ran[(transcript["page"], transcript["line"])]):
        got, shown = masked(result["output"], roots), masked("\n".join(command["shown"]), roots)
        where = f"{transcript['page']} line {transcript['line']}, $ {shlex.join(command['argv'])}"
        diff = "\n".join(difflib.unified_diff(shown, got, "the page shows", "the command prints", lineterm=""))
        assert shows(got, shown), f"{where}:\n{diff}"


def test_the_masks_keep_what_matters():
    roots = ["/home/me/medxai"]
    printed = "medxai: 36 images (0 resumed), 180 maps, 0 errors in 7.9 s -> /home/me/medxai/runs/demo/index.csv"
    page = "medxai: 36 images (0 resumed), 180 maps, 0 errors in 3.2 s -> runs/demo/index.csv"
    assert shows(masked(printed, roots), masked(page, roots))
    assert not shows(masked(printed.replace("180 maps", "181 maps"), roots), masked(page, roots))
    assert shows(["a", "b", "c", "d"], ["a", "...", "d"])
    assert shows(["x (1, 2, 3) y"], ["x (1, ...) y"])
    assert not shows(["a", "b", "c"], ["a", "c"])  # no line left out without a '...'
    assert not shows(["a", "b"], ["a"])
    bar = "medxai: 100%|##########| 36/36 [00:03<00:00, 55.8 maps/s]"
    assert masked(bar, roots) == masked(bar.replace("00:03", "00:09").replace("55.8", "12.0"), roots)


# ---------------------------------------------------------------------------------------------
# links


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.M):
        base, n = slug(heading), 0
        while (name := base if n == 0 else f"{base}-{n}") in found:
            n += 1
        found.add(name)
    return found


def links() -> list[tuple[str, str]]:
    """``(page, target)`` of every relative link of the pages, outside code."""
    found = []
    for page in PAGES:
        text = _FENCE.sub("", page.read_text(encoding="utf-8"))
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                found.append((page_name(page), target))
    return found


LINKS = links()


def test_the_readme_links_every_docs_page():
    linked = {Path(target.partition("#")[0]).name for page, target in LINKS if page == "README.md"}
    missing = [p.name for p in PAGES[1:] if p.name not in linked]
    assert not missing, f"README.md links no docs page {missing}"
    assert len(LINKS) > 20


@pytest.mark.parametrize("page, target", LINKS, ids=[f"{p}->{t}" for p, t in LINKS])
def test_a_relative_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    file = (REPO / page).parent / path if path else REPO / page
    assert file.exists(), f"{page}: {target} names no file"
    if anchor:
        assert file.suffix == ".md", f"{page}: {target}: an anchor into a file that is not a page"
        assert anchor in anchors(file), f"{page}: {target}: no such heading in {path or page}"


def test_anchors_follow_github():
    assert slug("Running on a cluster (Dask)") == "running-on-a-cluster-dask"
    assert slug("How good is a map? (`medxai evaluate`)") == "how-good-is-a-map-medxai-evaluate"
    assert slug("On this machine (`address: local`)") == "on-this-machine-address-local"


# ---------------------------------------------------------------------------------------------
# what the pages list


def test_the_methods_page_has_every_method_and_alias_and_the_readme_their_number():
    from medxai.methods import registry

    rows = [
        row for row in (REPO / "docs" / "methods.md").read_text(encoding="utf-8").splitlines() if row.startswith("| `")
    ]
    names = {
        row.split("|")[1].strip().split()[0].strip("`"): set(re.findall(r"`([^`]+)`", row.split("|")[1]))
        for row in rows
    }
    builtin = registry.builtin_methods()
    for cls in builtin:
        assert cls.name in names, f"docs/methods.md's table has no row for {cls.name}"
        assert set(cls.aliases) | {cls.name} == names[cls.name], f"docs/methods.md: {cls.name}'s aliases"
    assert len(names) == len(builtin)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"{len(builtin)} methods" in readme.split("## ")[0], "the README's intro counts the methods"


def code_words(page: str) -> set[str]:
    """The words of a page's inline code (`a, b` names a and b)."""
    text = _FENCE.sub("", (REPO / page).read_text(encoding="utf-8"))
    return {word for span in re.findall(r"`([^`]+)`", text) for word in re.split(r"[\s,;/]+", span) if word}


def test_the_outputs_page_names_every_index_column():
    from medxai.io.index import index_columns

    missing = [c for c in index_columns() if c not in code_words("docs/outputs.md")]
    assert not missing, f"docs/outputs.md does not name the index columns {missing}"


def test_the_evaluation_page_names_every_figure_and_summary_column():
    from medxai.pipeline.evaluation import METRICS, SANITY_COLUMNS, SUMMARY_COLUMNS

    missing = [c for c in (*METRICS, *SUMMARY_COLUMNS, *SANITY_COLUMNS) if c not in code_words("docs/evaluation.md")]
    assert not missing, f"docs/evaluation.md does not name {missing}"
