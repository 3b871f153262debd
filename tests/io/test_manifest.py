"""read_manifest (CSV/TSV via pandas) and safe_id."""

from __future__ import annotations

import os
import re

import pytest

from medxai.io import ManifestError, ManifestRow, read_manifest, safe_id
from medxai.io.manifest import MAX_ID_LENGTH


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_ids_labels_masks_and_root_resolution(tmp_path):
    manifest = write(
        tmp_path / "data" / "manifest.csv",
        "image_id,path,label,mask\np1,images/a.dcm,1,masks/a.png\np2,/abs/b.png,0,\np3,../c.npy,,\n",
    )
    rows = read_manifest(manifest, id_column="image_id", label_column="label", mask_column="mask")
    base = tmp_path / "data"
    assert rows == [
        ManifestRow("p1", str(base / "images" / "a.dcm"), 1, str(base / "masks" / "a.png"), 0),
        ManifestRow("p2", "/abs/b.png", 0, None, 1),
        ManifestRow("p3", str(tmp_path / "c.npy"), None, None, 2),
    ]
    assert all(os.path.isabs(r.path) for r in rows)


def test_explicit_root_and_row_number_ids(tmp_path):
    manifest = write(tmp_path / "m.csv", "path\nx.png\ny.png\n")
    rows = read_manifest(manifest, root=tmp_path / "images")
    assert [r.image_id for r in rows] == ["0", "1"]
    assert [r.path for r in rows] == [str(tmp_path / "images" / "x.png"), str(tmp_path / "images" / "y.png")]
    assert rows[0].label is None and rows[0].mask_path is None


def test_tsv_and_other_column_names(tmp_path):
    manifest = write(tmp_path / "m.tsv", "file\tcase\tclass\nimg 1.png\tcase,1\t2\n")
    rows = read_manifest(manifest, path_column="file", id_column="case", label_column="class")
    assert rows == [ManifestRow("case,1", str(tmp_path / "img 1.png"), 2, None, 0)]


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("1.0", 1), (" 3 ", 3), ("-1", -1), ("", None)])
def test_integer_labels(tmp_path, text, expected):
    manifest = write(tmp_path / "m.csv", f'path,label\na.png,"{text}"\n')
    assert read_manifest(manifest, label_column="label")[0].label == expected


@pytest.mark.parametrize("bad", ["1.5", "cat", "nan", "inf"])
def test_bad_label_names_the_row(tmp_path, bad):
    manifest = write(tmp_path / "m.csv", f"path,label\na.png,0\nb.png,{bad}\n")
    with pytest.raises(ManifestError, match=r"line 3: label " + re.escape(repr(bad))):
        read_manifest(manifest, label_column="label")


def test_missing_column_lists_the_columns(tmp_path):
    manifest = write(tmp_path / "m.csv", "file,label\na.png,1\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(manifest, label_column="diagnosis")
    message = str(info.value)
    assert "'path'" in message and "'diagnosis'" in message
    assert "'file', 'label'" in message
    assert isinstance(info.value, ValueError)


def test_duplicate_ids_are_named(tmp_path):
    manifest = write(tmp_path / "m.csv", "id,path\na,1.png\nb,2.png\na,3.png\nc,4.png\nb,5.png\n")
    with pytest.raises(ManifestError, match="2 problem") as info:
        read_manifest(manifest, id_column="id")
    assert "duplicate image id 'a' (lines 2, 4)" in str(info.value)
    assert "duplicate image id 'b' (lines 3, 6)" in str(info.value)
    assert "'c'" not in str(info.value)


@pytest.mark.parametrize("text", ["", "path\n", "path,label\n"])
def test_empty_manifest(tmp_path, text):
    with pytest.raises(ManifestError, match="empty|no rows"):
        read_manifest(write(tmp_path / "m.csv", text))


def test_missing_manifest_and_empty_path_cell(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.csv")
    with pytest.raises(ManifestError, match="line 3: empty 'path'"):
        read_manifest(write(tmp_path / "m.csv", "path,x\na.png,1\n,2\n"))


# ------------------------------------------------------------------- safe_id

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
NASTY = [
    "../x",
    "../../etc/passwd",
    "a/b",
    "a\\b",
    "a_b",
    "..",
    ".",
    "",
    ".hidden",
    "x.",
    "patient 1",
    "pätient",
    "患者",
    "CON",
    "nul.txt",
    "a" * 500,
    "a" * 500 + "b",
    "/",
    "\x00",
    "C:\\dir\\f",
    "-rf",
    "--help",
    "-2+3+cmd|' /C calc'!A0",
]


def test_plain_ids_are_kept():
    for image_id in ["case_001", "IM-0001.dcm", "a.b-c_D9"]:
        assert safe_id(image_id) == image_id


def test_nasty_ids_become_plain_unique_file_names(tmp_path):
    made = [safe_id(i) for i in NASTY]
    assert len(set(made)) == len(NASTY)
    for original, name in zip(NASTY, made):
        assert SAFE.match(name), (original, name)
        assert name not in ("", ".", "..")
        assert not name.startswith(".") and not name.startswith("-")  # never a hidden file or a command's option
        assert "/" not in name and "\\" not in name and os.sep not in name
        assert len(name) <= MAX_ID_LENGTH
        # Writing it inside a folder stays inside that folder.
        target = (tmp_path / name).resolve()
        assert target.parent == tmp_path.resolve()
        target.write_text("x")
    assert len(list(tmp_path.iterdir())) == len(NASTY)


def test_safe_id_is_deterministic_and_marks_changes():
    assert safe_id("a/b") == safe_id("a/b")
    assert safe_id("a/b") != "a_b" and safe_id("a/b").startswith("a_b_")
    assert safe_id("../x").startswith("_x_") or safe_id("../x").startswith("x_")
    long = safe_id("a" * 500)
    assert len(long) == MAX_ID_LENGTH
    assert safe_id("a" * MAX_ID_LENGTH) == "a" * MAX_ID_LENGTH


def test_every_row_problem_is_listed_by_line_number(tmp_path):
    text = "id,path,label\na,1.png,0\n,2.png,1\nc,,x\nd,4.png,1.5\na,5.png,0\n"
    with pytest.raises(ManifestError) as info:
        read_manifest(write(tmp_path / "m.csv", text), id_column="id", label_column="label")
    lines = str(info.value).splitlines()
    assert lines[0].endswith("5 problem(s):")
    assert [line.strip() for line in lines[1:]] == [
        "line 3: empty 'id'",
        "line 4: empty 'path'",
        "line 4: label 'x' in column 'label' is not an integer",
        "line 5: label '1.5' in column 'label' is not an integer",
        "duplicate image id 'a' (lines 2, 6)",
    ]


def test_ids_that_would_share_a_file_name_are_refused(tmp_path):
    manifest = write(tmp_path / "m.csv", f"id,path\na b,1.png\n{safe_id('a b')},2.png\n")
    with pytest.raises(ManifestError, match=r"image ids 'a b' and 'a_b_[0-9a-f]+' would share the file name"):
        read_manifest(manifest, id_column="id")


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_the_delimiter_is_sniffed(tmp_path, sep):
    manifest = write(tmp_path / "m.csv", f"id{sep}path{sep}label\na{sep}x,1.png{sep}1\n")
    rows = read_manifest(manifest, id_column="id", label_column="label")
    assert [(r.image_id, os.path.basename(r.path), r.label) for r in rows] == [("a", "x,1.png", 1)]


def test_a_given_delimiter_and_a_wrong_one_with_a_hint(tmp_path):
    manifest = write(tmp_path / "m.csv", "id;path\na;1.png\n")
    assert read_manifest(manifest, id_column="id", delimiter=";")[0].image_id == "a"
    with pytest.raises(
        ManifestError, match=r"missing column.*one column only: is the delimiter right\? set data.delimiter"
    ):
        read_manifest(manifest, id_column="id", delimiter=",")


def test_encodings_latin1_utf16_and_a_bom(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,path\nk\xf6rper,1.png\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"line 2 is not valid utf-8.*set data.encoding.*latin-1"):
        read_manifest(latin, id_column="id")
    assert read_manifest(latin, id_column="id", encoding="latin-1")[0].image_id == "k\xf6rper"
    wide = tmp_path / "wide.csv"
    wide.write_bytes("id,path\n\u00e9,1.png\n".encode("utf-16"))  # with its byte-order mark
    assert read_manifest(wide, id_column="id")[0].image_id == "\u00e9"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,path\na,1.png\n")  # as spreadsheets save it
    assert read_manifest(bom, id_column="id")[0].image_id == "a"
    with pytest.raises(ManifestError, match="unknown encoding 'klingon'"):
        read_manifest(bom, id_column="id", encoding="klingon")
