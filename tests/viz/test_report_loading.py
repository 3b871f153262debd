"""``medxai.viz.report.loading``: a run folder read into the report's model, without TensorFlow or pictures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medxai.errors import ReportError
from medxai.io.index import index_text
from medxai.viz.report.loading import load_run


def _write_run(root: Path, rows: list[dict[str, object]], methods: list[str] = ("gradient",)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "run.json").write_text(json.dumps({"methods": [{"name": m, "params": {}} for m in methods]}))
    (root / "index.csv").write_text(index_text(rows, header=True))
    return root


def _row(image_id: str, method: str = "gradient", **cells: object) -> dict[str, object]:
    return {"image_id": image_id, "method": method, "class_index": 0, "status": "ok", "score": 0.5, **cells}


def test_rows_are_grouped_by_image_in_index_order_and_ids_stay_text(tmp_path):
    run = load_run(
        _write_run(
            tmp_path / "run",
            [
                _row("NA", label="1", relative_delta="0.01"),
                _row("b", class_index="1.0", status=""),
                _row("NA", method="ig", class_index=""),
            ],
            methods=["ig", "gradient"],
        )
    )
    assert [image.image_id for image in run.images] == ["NA", "b"]
    assert run.methods == ["ig", "gradient"]
    first, second = run.images
    assert [r.method for r in first.rows] == ["gradient", "ig"] and first.label == "1"
    assert first.classes == [0, None] and first.rows[0].delta == pytest.approx(0.01) and math.isnan(first.rows[1].delta)
    assert second.rows[0].class_index == 1 and second.rows[0].status == "error" and second.error_rows
    assert run.metrics is None and run.summary is None and run.sanity is None and run.evaluation is None
    assert run.notes == []


def test_unusable_evaluation_files_become_notes_not_errors(tmp_path):
    root = _write_run(tmp_path / "run", [_row("a")])
    (root / "metrics.csv").write_text("image_id,method,class_index,gini,error\na,gradient,0,0.5,out of memory\n")
    (root / "summary.csv").write_text("method,metric\ngradient,gini\n")
    (root / "evaluation.json").write_text("[1, 2]")
    run = load_run(root)
    assert run.metrics == {("a", "gradient", 0, "", ""): {"gini": 0.5}}  # a file without region columns
    assert run.metric_errors == {("a", "gradient", 0, "", ""): "out of memory"}
    assert run.summary is None and run.evaluation is None
    assert any("summary.csv lacks the column(s) mean" in note for note in run.notes)
    assert any("evaluation.json could not be read" in note for note in run.notes)


def test_an_index_without_its_columns_is_not_a_run(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / "run.json").write_text("{}")
    (root / "index.csv").write_text("image_id,score\na,1\n")
    with pytest.raises(ReportError, match="not a medxai index: no column"):
        load_run(root)
    (root / "run.json").write_text("[]")
    with pytest.raises(ReportError, match="expected a JSON object"):
        load_run(root)
