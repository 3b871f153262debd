"""Resume bookkeeping: which images a previous run finished, the fingerprint it ran under, and
what tells an image's finished rows from a changed manifest row or source file."""

import json
import os

import numpy as np

from medxai.io import ManifestRow
from medxai.io.index import INDEX_NAME, JOURNAL_NAME, RUN_NAME, index_text
from medxai.io.writers import write_npy
from medxai.pipeline.journal import completed_rows, content_digest, previous_fingerprint, source_key, stale_reason


def row(image_id, method, status="ok", npy="", npy_bytes=""):
    return {
        "image_id": image_id,
        "method": method,
        "class_index": 0,
        "status": status,
        "npy_path": npy,
        "npy_bytes": npy_bytes,
    }


def a_map(folder, name="a.npy"):
    write_npy(folder / name, np.zeros((4, 4), np.float32))
    return name, str((folder / name).stat().st_size)


def test_an_image_is_complete_only_with_every_method_ok_and_its_files(tmp_path):
    name, size = a_map(tmp_path)
    index = [
        row("a", "ig", npy=name, npy_bytes=size), row("a", "gradient"), row("b", "ig"), row("c", "ig"),
        row("c", "gradient", npy="gone.npy", npy_bytes=size),
    ]  # fmt: skip
    (tmp_path / INDEX_NAME).write_text(index_text(index, header=True))
    journal = [row("b", "gradient"), row("b", "ig", status="error")]  # newer: b's ig failed on retry
    (tmp_path / JOURNAL_NAME).write_text(index_text(journal, header=True))
    damaged = {}
    done = completed_rows(tmp_path, {"ig", "gradient"}, damaged)
    assert sorted(done) == ["a"]  # b: an error replaced its ok row; c: a file is missing
    assert {r["method"] for r in done["a"]} == {"ig", "gradient"}
    assert damaged == {"c": "gone.npy is missing"}


def test_the_journal_replaces_an_images_index_rows_as_a_whole(tmp_path):
    name, size = a_map(tmp_path)
    index = [row("a", "ig", npy=name, npy_bytes=size), row("a", "gradient", npy=name, npy_bytes=size)]
    (tmp_path / INDEX_NAME).write_text(index_text(index, header=True))
    # a later run journaled "a" again with other classes: its rows are the journal's only
    journal = [{**r, "class_index": 1} for r in index]
    (tmp_path / JOURNAL_NAME).write_text(index_text(journal, header=True))
    assert [r["class_index"] for r in completed_rows(tmp_path, {"ig", "gradient"})["a"]] == ["1", "1"]


def test_a_truncated_or_resized_map_is_not_finished(tmp_path):
    name, size = a_map(tmp_path)
    (tmp_path / INDEX_NAME).write_text(index_text([row("a", "ig", npy=name, npy_bytes=size)], header=True))
    assert sorted(completed_rows(tmp_path, {"ig"})) == ["a"]
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[:-10])
    damaged = {}
    assert completed_rows(tmp_path, {"ig"}, damaged) == {}
    assert "truncated or damaged" in damaged["a"] and name in damaged["a"]
    write_npy(tmp_path / name, np.zeros((5, 5), np.float32))  # whole, but not the file the index recorded
    damaged.clear()
    assert completed_rows(tmp_path, {"ig"}, damaged) == {} and "the index recorded" in damaged["a"]


def test_an_index_of_another_version_is_not_reused(tmp_path):
    (tmp_path / INDEX_NAME).write_text("image_id,method,status\na,ig,ok\n")
    assert completed_rows(tmp_path, {"ig"}) == {}


def test_previous_fingerprint(tmp_path):
    assert previous_fingerprint(tmp_path) is None
    (tmp_path / RUN_NAME).write_text("not json")
    assert previous_fingerprint(tmp_path) is None
    (tmp_path / RUN_NAME).write_text(json.dumps({"fingerprint": "abc"}))
    assert previous_fingerprint(tmp_path) == "abc"


def test_source_key_follows_the_manifest_row_and_the_files_content(tmp_path):
    image = tmp_path / "a.npy"
    np.save(image, np.zeros((4, 4), np.float32))
    base = ManifestRow("a", str(image), 1, None, 0)
    key = source_key(base)
    assert len(key) == 33 and key[16] == "-" and source_key(base) == key
    for changed in (
        ManifestRow("a", str(image), 0, None, 0),
        ManifestRow("a", str(image), 1, str(tmp_path / "mask.png"), 0),
        ManifestRow("a", str(image), 1, None, 0, series_uid="1.2.3"),
        ManifestRow("a", str(tmp_path / "b.npy"), 1, None, 0),
        ManifestRow("b", str(image), 1, None, 0),
    ):
        assert source_key(changed) != key
    assert source_key(ManifestRow("a", str(image), 1, None, 7)) == key  # the row number is not the content
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert source_key(base) != key  # touched: the content may have changed


def test_source_key_of_a_series_folder_covers_every_file(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("1.dcm", "2.dcm"):
        (folder / name).write_bytes(b"x" * 10)
    row = ManifestRow("s", str(folder), None, None, 0)
    key = source_key(row)
    (folder / ".hidden").write_bytes(b"ignored, as the reader ignores it")
    assert source_key(row) == key
    (folder / "2.dcm").write_bytes(b"y" * 11)
    assert source_key(row) != key
    key = source_key(row)
    (folder / "3.dcm").write_bytes(b"z")
    assert source_key(row) != key


def test_stale_reason_names_what_changed(tmp_path):
    image = tmp_path / "a.npy"
    np.save(image, np.zeros((4, 4), np.float32))
    now = ManifestRow("a", str(image), 1, None, 0)
    key = source_key(now)
    rows = [{"source_path": str(image), "label": "1", "mask_path": "", "series_uid": "", "source_key": key}]
    assert stale_reason(rows, now) is None
    assert stale_reason([{**rows[0], "label": "0"}], now) == "label"
    assert stale_reason([{**rows[0], "source_path": "/else.npy"}], now) == "path"
    assert stale_reason([{**rows[0], "mask_path": "/m.png"}], now) == "mask"
    assert stale_reason([{**rows[0], "series_uid": "1.2"}], now) == "series_uid"
    assert stale_reason([rows[0], {**rows[0], "source_key": "0" * 16}], now) == "file"
    assert stale_reason([{**rows[0], "source_key": key[:17] + "0" * 16}], now) == "other content, same size and time"
    assert stale_reason([{**rows[0], "source_key": key[:16]}], now) == "no content hash recorded (an older medxai)"


def _replace_keeping_size_and_time(path, data: bytes) -> None:
    """What ``cp -p``, ``rsync -a`` or ``touch -r`` leave: other bytes, the same size and modification time."""
    stat = path.stat()
    assert len(data) == stat.st_size
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_a_file_replaced_with_its_size_and_time_kept_is_stale(tmp_path):
    image = tmp_path / "a.npy"
    np.save(image, np.zeros((4, 4), np.float32))
    row = ManifestRow("a", str(image), 1, None, 0)
    rows = [{"source_path": str(image), "label": "1", "mask_path": "", "series_uid": "", "source_key": source_key(row)}]
    replaced = image.read_bytes()[:-4] + np.float32(7).tobytes()
    _replace_keeping_size_and_time(image, replaced)
    assert stale_reason(rows, row) == "other content, same size and time"
    rows[0]["source_key"] = source_key(row)
    assert stale_reason(rows, row) is None


def test_content_digest_of_a_series_covers_every_file_and_never_reads_a_fifo(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("1.dcm", "2.dcm"):
        (folder / name).write_bytes(b"x" * 10)
    digest = content_digest(str(folder))
    _replace_keeping_size_and_time(folder / "2.dcm", b"y" * 10)
    assert content_digest(str(folder)) != digest
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert content_digest(str(fifo)).startswith("unreadable")  # returns: never blocks on the pipe
    assert content_digest(str(tmp_path / "missing.png")).startswith("unreadable")
