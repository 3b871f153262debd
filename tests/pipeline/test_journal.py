"""Resume bookkeeping: which images a previous run finished, and the fingerprint it ran under."""

import json

from medxai.io.index import INDEX_NAME, JOURNAL_NAME, RUN_NAME, index_text
from medxai.pipeline.journal import completed_rows, previous_fingerprint


def row(image_id, method, status="ok", npy=""):
    return {"image_id": image_id, "method": method, "class_index": 0, "status": status, "npy_path": npy}


def test_an_image_is_complete_only_with_every_method_ok_and_its_files(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"x")
    index = [row("a", "ig", npy="a.npy"), row("a", "gradient"), row("b", "ig"), row("c", "ig"), row("c", "gradient", npy="gone.npy")]
    (tmp_path / INDEX_NAME).write_text(index_text(index, header=True))
    journal = [row("b", "gradient"), row("b", "ig", status="error")]  # newer: b's ig failed on retry
    (tmp_path / JOURNAL_NAME).write_text(index_text(journal, header=True))
    done = completed_rows(tmp_path, {"ig", "gradient"})
    assert sorted(done) == ["a"]  # b: an error replaced its ok row; c: a file is missing
    assert {r["method"] for r in done["a"]} == {"ig", "gradient"}


def test_an_index_of_another_version_is_not_reused(tmp_path):
    (tmp_path / INDEX_NAME).write_text("image_id,method,status\na,ig,ok\n")
    assert completed_rows(tmp_path, {"ig"}) == {}


def test_previous_fingerprint(tmp_path):
    assert previous_fingerprint(tmp_path) is None
    (tmp_path / RUN_NAME).write_text("not json")
    assert previous_fingerprint(tmp_path) is None
    (tmp_path / RUN_NAME).write_text(json.dumps({"fingerprint": "abc"}))
    assert previous_fingerprint(tmp_path) == "abc"
