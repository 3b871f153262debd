"""The pipeline end to end: real files in, maps + index + provenance out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage.io
import yaml
from analytic_models import tiny_model
from study_helpers import comparable, count_processed, interrupt_on_call, read_index, write_config

import medxai
from medxai.errors import StudyError
from medxai.io import read_image
from medxai.io.index import index_columns
from medxai.preprocess import Preprocessor, PreprocessSpec
from medxai.viz.render import colour_bar_width


@pytest.fixture(scope="module")
def finished(study):
    summary = medxai.run(write_config(study, "full"))
    return summary, study / "full"


def test_run_writes_every_map_and_an_index(finished, study):
    summary, out = finished
    assert summary.exit_code == 1 and summary.errors == 3 and summary.images == 7
    assert sorted(summary.failed_ids) == ["fake", "gone", "nan"]
    index = read_index(out / "index.csv")
    assert list(index[0]) == list(index_columns())
    assert len(index) == 7 * 3
    assert [r["image_id"] for r in index[::3]] == ["wide", "ct", "same", "fake", "gone", "nan", "../../escape"]
    ok = [r for r in index if r["status"] == "ok"]
    assert len(ok) == summary.maps == 4 * 3
    for row in ok:
        for column in ("npy_path", "png_path", "overlay_path"):
            assert not Path(row[column]).is_absolute() and (out / row[column]).is_file()
        heatmap = np.load(out / row["npy_path"])
        source = read_image(row["source_path"]).spatial_shape
        assert heatmap.shape == source and heatmap.dtype == np.float32
        assert heatmap.min() >= 0 and heatmap.max() <= 1
        # the picture at the source's size, then its colour bar
        assert skimage.io.imread(out / row["overlay_path"]).shape == (
            source[0],
            source[1] + colour_bar_width(source[0]),
            3,
        )
        assert 0 <= float(row["score"]) <= 1 and row["class_index"] in ("0", "1")
        assert (row["relative_delta"] != "") == (row["method"] == "integrated_gradients")
        assert row["reduce"] == "abs_sum" and row["polarity"] == "absolute"
    assert not list(out.rglob("*.tmp*")) and not (out / "index.partial.csv").exists()


def test_bad_images_get_error_rows_with_reasons(finished):
    _, out = finished
    errors = {r["image_id"]: r["error"] for r in read_index(out / "index.csv") if r["status"] == "error"}
    assert "not a DICOM file" in errors["fake"]
    assert "file not found" in errors["gone"]
    assert "NaN" in errors["nan"]


def test_unsafe_ids_stay_inside_the_output_folder(finished):
    _, out = finished
    rows = [r for r in read_index(out / "index.csv") if r["image_id"] == "../../escape"]
    for row in rows:
        resolved = (out / row["npy_path"]).resolve()
        assert resolved.is_relative_to(out.resolve()) and resolved.parent.name == row["method"]


def test_maps_equal_the_python_api(finished, study):
    _, out = finished
    row = next(
        r for r in read_index(out / "index.csv") if r["image_id"] == "same" and r["method"] == "integrated_gradients"
    )
    model = keras.saving.load_model(study / "model.keras")
    tensor, _ = Preprocessor(PreprocessSpec(), (16, 16, 1))(read_image(study / "same.npy"))
    expected = medxai.IntegratedGradients(model, steps=8).compute_heatmap(tensor, int(row["class_index"]))
    np.testing.assert_allclose(np.load(out / row["npy_path"]), expected, atol=1e-5)
    assert np.load(out / row["npy_path"]).max() == 1.0  # same geometry: the peak is kept


def test_predicted_class_and_score_are_the_models(finished, study):
    _, out = finished
    model = keras.saving.load_model(study / "model.keras")
    tensor, _ = Preprocessor(PreprocessSpec(), (16, 16, 1))(read_image(study / "ct.dcm"))
    probabilities = model(tensor[None]).numpy()[0]
    row = next(r for r in read_index(out / "index.csv") if r["image_id"] == "ct")
    assert int(row["class_index"]) == probabilities.argmax()
    assert float(row["score"]) == pytest.approx(probabilities.max(), rel=1e-5)


def test_run_json_records_provenance(finished, study):
    _, out = finished
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["counts"] == {**record["counts"], "images": 7, "maps": 12, "errors": 3}
    assert record["model"]["sha256"] == hashlib.sha256((study / "model.keras").read_bytes()).hexdigest()
    assert {"medxai", "tensorflow", "keras", "numpy"} <= set(record["versions"])
    assert [m["name"] for m in record["methods"]] == ["integrated_gradients", "gradient", "smoothgrad"]
    assert record["methods"][0]["params"]["steps"] == 8
    assert record["config"]["output"]["dir"] == str(out)


@pytest.mark.parametrize("targets,expected", [("all", [0, 1]), ([1], [1]), ("label", None)])
def test_targets(study, targets, expected):
    summary = medxai.run(write_config(study, f"targets_{targets!s:.3}", targets=targets, methods=["gradient"]))
    index = [r for r in read_index(summary.output_dir / "index.csv") if r["status"] == "ok"]
    for image_id in ("wide", "ct", "same"):
        classes = [int(r["class_index"]) for r in index if r["image_id"] == image_id]
        if expected is None:
            assert classes == [int(next(r["label"] for r in index if r["image_id"] == image_id))]
        else:
            assert classes == expected


def test_an_out_of_range_target_stops_the_run_before_any_image(study):
    with pytest.raises(StudyError, match=r"targets: class 5 is out of range: the model has 2 classes \(0\.\.1\)"):
        medxai.run(write_config(study, "target_range", targets=[5], methods=["gradient"]))
    assert not (study / "target_range" / "index.csv").exists()


def test_resume_after_an_interrupted_run_gives_the_same_index(study, monkeypatch):
    reference = medxai.run(write_config(study, "uninterrupted", runtime={"batch_size": 2, "progress": False}))
    config = write_config(study, "interrupted", runtime={"batch_size": 2, "progress": False})
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        medxai.run(config)
    out = study / "interrupted"
    assert not (out / "index.csv").exists() and (out / "index.partial.csv").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not list(out.rglob("*.tmp*"))

    processed = count_processed(monkeypatch)  # the third group is long past: no second Ctrl-C
    summary = medxai.run(config)
    assert summary.resumed == 2  # "wide" and "ct" were complete; the failed ones are retried
    assert "wide" not in processed and "ct" not in processed and "same" in processed
    resumed_rows = read_index(out / "index.csv")
    reference_rows = read_index(reference.output_dir / "index.csv")
    assert comparable(resumed_rows) == comparable(reference_rows)
    for row in (r for r in resumed_rows if r["npy_path"]):
        np.testing.assert_array_equal(np.load(out / row["npy_path"]), np.load(reference.output_dir / row["npy_path"]))


def test_changed_config_recomputes_everything(study, monkeypatch, capsys):
    config = write_config(study, "changed", methods=["gradient"])
    medxai.run(config)
    processed = count_processed(monkeypatch)
    medxai.run(config)  # unchanged: only the failed images are retried
    assert sorted(processed) == ["fake", "gone", "nan"]
    processed.clear()
    summary = medxai.run(config, overrides=["heatmap.reduce=max_abs"])
    assert "recomputing" in capsys.readouterr().err
    assert summary.resumed == 0 and len(processed) == 7
    assert {r["reduce"] for r in read_index(summary.output_dir / "index.csv")} == {"max_abs"}


def test_resume_false_recomputes(study, monkeypatch):
    config = write_config(study, "noresume", methods=["gradient"], runtime={"resume": False, "progress": False})
    medxai.run(config)
    assert medxai.run(config).resumed == 0


def test_3d_volumes(tmp_path):
    tiny_model((4, 8, 8, 1)).save(tmp_path / "model3d.keras")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "vol.npy", rng.random((6, 10, 10)).astype(np.float32))
    (tmp_path / "manifest.csv").write_text("path\nvol.npy\n")
    config = {
        "model": {"path": "model3d.keras"},
        "data": {"manifest": "manifest.csv"},
        "methods": [{"name": "ig", "steps": 4}],
        "output": {"dir": "out"},
        "runtime": {"progress": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    summary = medxai.run(tmp_path / "c.yaml")
    assert summary.exit_code == 0
    row = read_index(tmp_path / "out" / "index.csv")[0]
    assert row["image_id"] == "0"
    assert np.load(tmp_path / "out" / row["npy_path"]).shape == (6, 10, 10)
    montage = skimage.io.imread(tmp_path / "out" / row["png_path"])
    assert montage.ndim == 3 and montage.shape[2] == 3 and montage.shape[0] >= 10


def test_duplicate_method_is_a_study_error(study):
    with pytest.raises(ValueError, match=r"methods\[1\]: integrated_gradients is configured twice"):
        medxai.run(write_config(study, "dup", methods=["ig", {"name": "integrated_gradients", "steps": 4}]))


def test_formats_subset(study):
    summary = medxai.run(
        write_config(study, "npy_only", methods=["gradient"], output={"dir": "npy_only", "formats": ["npy"]})
    )
    rows = [r for r in read_index(summary.output_dir / "index.csv") if r["status"] == "ok"]
    assert rows and all(r["npy_path"] and not r["png_path"] and not r["overlay_path"] for r in rows)
    assert not list(summary.output_dir.rglob("*.png"))


def test_overlay_outlines_reach_the_written_overlays(study):
    outline = {"top_percent": 10, "cleanup": False, "color": [0, 255, 0]}
    summary = medxai.run(
        write_config(study, "outlined", methods=["gradient"], output={"dir": "outlined", "overlay_outline": outline})
    )
    plain = medxai.run(write_config(study, "not_outlined", methods=["gradient"]))
    for rows_dir in (summary.output_dir, plain.output_dir):
        rows = [r for r in read_index(rows_dir / "index.csv") if r["status"] == "ok"]
        green = [np.all(skimage.io.imread(rows_dir / r["overlay_path"]) == (0, 255, 0), axis=-1).sum() for r in rows]
        assert all(g > 0 for g in green) if rows_dir == summary.output_dir else all(g == 0 for g in green)


def test_image_of_the_wrong_shape_is_a_per_image_error(tmp_path):
    tiny_model().save(tmp_path / "model.keras")
    np.save(tmp_path / "two_channels.npy", np.zeros((16, 16, 2), np.float32))
    np.save(tmp_path / "good.npy", np.random.default_rng(0).random((16, 16)).astype(np.float32))
    (tmp_path / "m.csv").write_text("path\ntwo_channels.npy\ngood.npy\n")
    config = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "m.csv"},
        "methods": ["gradient"],
        "output": {"dir": "o"},
        "runtime": {"progress": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    summary = medxai.run(tmp_path / "c.yaml")
    rows = read_index(tmp_path / "o" / "index.csv")
    assert summary.exit_code == 1 and [r["status"] for r in rows] == ["error", "ok"]
    assert "image is 3D (16x16x2) but the model takes 2D input" in rows[0]["error"]


def test_overlapped_io_gives_the_same_index_and_maps(study):
    runs = {}
    for overlap in (True, False):
        runtime = {"batch_size": 2, "progress": False, "overlap_io": overlap}
        runs[overlap] = medxai.run(write_config(study, f"overlap_{overlap}", runtime=runtime)).output_dir
    with_overlap, without = (read_index(runs[flag] / "index.csv") for flag in (True, False))
    assert comparable(with_overlap) == comparable(without)
    for row in (r for r in with_overlap if r["npy_path"]):
        np.testing.assert_array_equal(np.load(runs[True] / row["npy_path"]), np.load(runs[False] / row["npy_path"]))
        assert (runs[True] / row["overlay_path"]).read_bytes() == (runs[False] / row["overlay_path"]).read_bytes()


def test_adaptive_steps_and_warnings_reach_the_index(study):
    methods = [{"name": "ig", "steps": "auto", "rule": "trapezoid", "tolerance": 1e-12, "max_steps": 9}]
    summary = medxai.run(write_config(study, "adaptive", methods=methods))
    rows = [r for r in read_index(summary.output_dir / "index.csv") if r["status"] == "ok"]
    assert rows and all(r["steps"] == "9" and "not met within max_steps=9" in r["warning"] for r in rows)
    summary = medxai.run(
        write_config(study, "adaptive_ok", methods=[{"name": "ig", "steps": "auto", "max_steps": 512}])
    )
    rows = [r for r in read_index(summary.output_dir / "index.csv") if r["status"] == "ok"]
    assert all(r["warning"] == "" and r["relative_delta"] != "" and int(r["steps"]) >= 5 for r in rows)


def test_what_was_explained_is_recorded_and_a_hidden_softmax_is_refused(study):
    summary = medxai.run(write_config(study, "explained", methods=["gradient"]))
    record = json.loads((summary.output_dir / "run.json").read_text())
    assert "softmax removed" in record["model"]["explained"]
    assert "softmax removed" in record["methods"][0]["params"]["explained"]
    rows = [r for r in read_index(summary.output_dir / "index.csv") if r["status"] == "ok"]
    assert rows and {r["explained"] for r in rows} == {record["model"]["explained"]}
    inputs = keras.Input((16, 16, 1))
    scores = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
    hidden = keras.Model(inputs, keras.layers.Lambda(lambda t: keras.ops.softmax(t))(scores))
    with pytest.raises(medxai.pipeline.decoder.StudyError, match="model.output: .*look like .*probabilities"):
        medxai.run(write_config(study, "hidden", methods=["gradient"]), model=hidden)
    summary = medxai.run(
        write_config(study, "hidden_p", methods=["gradient"], model={"path": "model.keras", "output": "probabilities"}),
        model=hidden,
    )
    assert summary.maps > 0


def test_the_progress_bar_moves_as_each_method_finishes_not_once_per_chunk(study, monkeypatch):
    import medxai.pipeline.decoder as decoder_module

    updates: list[float] = []
    postfix: list[str] = []

    class Bar:
        n = 0.0

        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, amount):
            updates.append(amount)
            self.n += amount

        def set_postfix_str(self, text, refresh=True):
            postfix.append(text)

    monkeypatch.setattr(decoder_module, "progress_bar", Bar)
    # 7 images in one chunk (batch_size 32), three methods
    medxai.run(write_config(study, "progress", runtime={"batch_size": 32, "progress": True}))
    moving = [u for u in updates if u > 0]
    assert len(moving) >= 3  # at least once per method within the single chunk
    assert sum(updates) == pytest.approx(7)
    assert postfix and postfix[-1].endswith("maps/s")
