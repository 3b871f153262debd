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


def test_an_old_summary_csv_with_ci_low_and_ci_high_reads_as_percentiles(tmp_path):
    """Before issue 22 the 2.5/97.5 percentiles were named ci_low/ci_high; old run folders still load."""
    from medxai.viz.report.sections import quality

    root = _write_run(tmp_path / "run", [_row("a")])
    (root / "summary.csv").write_text("method,metric,mean,median,ci_low,ci_high,n\ngradient,gini,0.5,0.4,0.1,0.9,3\n")
    run = load_run(root)
    assert run.summary == [
        {
            "method": "gradient",
            "metric": "gini",
            "mean": "0.5",
            "median": "0.4",
            "p2.5": "0.1",
            "p97.5": "0.9",
            "n": "3",
        }
    ]
    cell = quality(run).rows[0].cells[0]
    assert cell is not None and "[0.100, 0.900]" in cell[1] and "CI of the mean" not in cell[1]
    new = "method,metric,mean,mean_ci_low,mean_ci_high,median,p2.5,p97.5,n\ngradient,gini,0.5,0.45,0.55,0.4,0.1,0.9,3\n"
    (root / "summary.csv").write_text(new)
    cell = quality(load_run(root)).rows[0].cells[0]
    assert cell is not None and "95 % CI of the mean [0.450, 0.550]" in cell[1] and "[0.100, 0.900]" in cell[1]
