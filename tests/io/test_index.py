"""The index format: one writer, one reader, tolerant of a killed run's torn last line."""

from medxai.io.index import INDEX_COLUMNS, index_text, read_index


def test_round_trip_in_column_order_with_empty_cells(tmp_path):
    rows = [{"image_id": "a", "method": "ig", "class_index": 1, "score": None}, {"method": "gradient", "image_id": "b,c"}]
    path = tmp_path / "index.csv"
    path.write_text(index_text(rows, header=True))
    header, read = read_index(path)
    assert header == list(INDEX_COLUMNS)
    assert [(r["image_id"], r["method"], r["class_index"], r["score"]) for r in read] == [("a", "ig", "1", ""), ("b,c", "gradient", "", "")]
    assert all(set(r) == set(INDEX_COLUMNS) for r in read)


def test_torn_last_line_and_malformed_rows_are_dropped(tmp_path):
    path = tmp_path / "index.partial.csv"
    text = index_text([{"image_id": "a"}, {"image_id": "b"}], header=True)
    path.write_text(text + "x,y\n" + text.splitlines()[1][:5])
    header, rows = read_index(path)
    assert header == list(INDEX_COLUMNS) and [r["image_id"] for r in rows] == ["a", "b"]


def test_missing_file_has_no_rows(tmp_path):
    assert read_index(tmp_path / "none.csv") == ([], [])
