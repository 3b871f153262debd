"""``medxai.viz.report.outcomes``: labels against predictions, class names, and indexes without those columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medxai.viz.report.loading import load_run
from medxai.viz.report.outcomes import class_names, class_set, class_text, outcome

OLD_HEADER = "image_id,source_path,method,class_index,score,label,status,error,png_path\n"


def _run(root: Path, index: str, targets: object = "predicted", class_list: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    info = {"methods": [{"name": "gradient"}], "config": {"targets": targets}, "model": {"class_names": class_list}}
    (root / "run.json").write_text(json.dumps(info))
    (root / "index.csv").write_text(index)
    return root


@pytest.mark.parametrize(
    "cell, classes",
    [("", frozenset()), ("3", {3}), ("1.0", {1}), ("2;3;11", {2, 3, 11}), (" 2 ; 5 ", {2, 5}), ("pneumonia", None)],
)
def test_class_sets_of_index_cells(cell, classes):
    assert class_set(cell) == (None if classes is None else frozenset(classes))


def test_predicted_sets_decide_and_multi_hot_labels_compare_as_sets(tmp_path):
    header = "image_id,method,class_index,class_name,label,predicted,status\n"
    rows = (
        "same,gradient,2,Effusion,2;3;11,11;3;2,ok\n"
        "fewer,gradient,2,Effusion,2;3;11,2;3,ok\n"
        "other,gradient,5,,2,5,ok\n"
        "unlabelled,gradient,1,Nodule,,1,ok\n"
        "worded,gradient,1,Nodule,pneumonia,1,ok\n"
        "none,gradient,1,Nodule,1,,ok\n"
    )
    run = load_run(_run(tmp_path / "run", header + rows, targets="all"))
    found = {image.image_id: outcome(image, run) for image in run.images}
    assert found == {
        "same": "correct", "fewer": "mispredicted", "other": "mispredicted",
        "unlabelled": "", "worded": "", "none": "",  # "none": no predicted set, and targets were not the predictions
    }  # fmt: skip
    names = class_names(run)
    assert names == {2: "Effusion", 1: "Nodule"}
    assert class_text(1, names) == "1 (Nodule)" and class_text(5, names) == "5" and class_text(None, names) == "—"


def test_an_old_index_falls_back_to_the_explained_class_when_the_run_explained_predictions(tmp_path):
    rows = "a,a.png,gradient,1,0.9,1,ok,,\nb,b.png,gradient,1,0.8,0,ok,,\nc,c.png,gradient,,,0,error,boom,\n"
    run = load_run(_run(tmp_path / "old", OLD_HEADER + rows, class_list=["Normal", "Nodule"]))
    assert [(i.predicted, [r.class_name for r in i.rows]) for i in run.images] == [("", [""])] * 3
    assert [outcome(image, run) for image in run.images] == ["correct", "mispredicted", ""]
    assert class_names(run) == {0: "Normal", 1: "Nodule"}  # from run.json when the index has no names
    thresholded = load_run(_run(tmp_path / "threshold", OLD_HEADER + rows, targets={"threshold": 0.5}))
    assert outcome(thresholded.images[1], thresholded) == "mispredicted"
    listed = load_run(_run(tmp_path / "listed", OLD_HEADER + rows, targets=[1]))
    assert [outcome(image, listed) for image in listed.images] == ["", "", ""]  # class 1 was asked for, not predicted
