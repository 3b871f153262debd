"""The index format: one writer, one reader, tolerant of a killed run's torn last line."""

import csv

import pytest

from medxai.io.index import csv_cell, csv_text, csv_value, index_columns, index_text, is_run_file, read_index


def test_round_trip_in_column_order_with_empty_cells(tmp_path):
    rows = [
        {"image_id": "a", "method": "ig", "class_index": 1, "score": None},
        {"method": "gradient", "image_id": "b,c"},
    ]
    path = tmp_path / "index.csv"
    path.write_text(index_text(rows, header=True))
    header, read = read_index(path)
    assert header == list(index_columns())
    assert [(r["image_id"], r["method"], r["class_index"], r["score"]) for r in read] == [
        ("a", "ig", "1", ""),
        ("b,c", "gradient", "", ""),
    ]
    assert all(set(r) == set(index_columns()) for r in read)


def test_torn_last_line_and_malformed_rows_are_dropped(tmp_path):
    path = tmp_path / "index.partial.csv"
    text = index_text([{"image_id": "a"}, {"image_id": "b"}], header=True)
    path.write_text(text + "x,y\n" + text.splitlines()[1][:5])
    header, rows = read_index(path)
    assert header == list(index_columns()) and [r["image_id"] for r in rows] == ["a", "b"]


def test_missing_file_has_no_rows(tmp_path):
    assert read_index(tmp_path / "none.csv") == ([], [])


PAYLOADS = [
    '=HYPERLINK("http://x.example","click")',
    "+1+1",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "\tcmd",
    "\rcmd",
    "'quoted",
    "''",
    "'",
]


@pytest.mark.parametrize("value", PAYLOADS)
def test_formula_cells_are_written_as_text_and_read_back_exactly(tmp_path, value):
    path = tmp_path / "index.csv"
    path.write_text(index_text([{"image_id": value, "class_name": value, "error": value}], header=True))
    with open(path, newline="") as handle:
        raw = list(csv.DictReader(handle))[0]
    assert raw["image_id"] == "'" + value  # a spreadsheet shows it as text
    header, rows = read_index(path)
    assert (rows[0]["image_id"], rows[0]["class_name"], rows[0]["error"]) == (value, value, value)


@pytest.mark.parametrize("value", ["-0.5", "+1", "-1e-05", "0.25", "-inf", "nan", "", "a=b", "plain", "2;3"])
def test_numbers_and_plain_text_are_written_as_they_are(value):
    assert csv_cell(value) == value and csv_value(csv_cell(value)) == value


def test_csv_text_writes_any_columns_the_same_way():
    text = csv_text([{"method": "=x", "mean": -0.25, "extra": "ignored"}, {"method": None}], ("method", "mean"))
    assert text == "method,mean\n'=x,-0.25\n,\n"


def test_is_run_file_knows_the_run_files_and_their_temporary_names_only():
    for name in (
        "index.csv",
        "run.json",
        "contact_sheet_2.png",
        ".index.csv.0123456789ab.tmp",
        ".medxai-probe.abcdef012345.tmp",
    ):
        assert is_run_file(name), name
    for name in ("notes.csv", ".notes.abcdef123456.tmp", ".index.csv.0123.tmp", "medxai-probe", "maps"):
        assert not is_run_file(name), name
