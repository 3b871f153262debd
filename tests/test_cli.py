"""The ``medxai`` command: exit codes, messages (never a traceback), overrides."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import yaml
from analytic_models import tiny_model
from study_helpers import write_config

from medxai.cli import main


def test_validate_ok(study, capsys):
    assert main(["validate", str(write_config(study, "cli_ok"))]) == 0
    out = capsys.readouterr().out
    assert "valid (7 images" in out and "integrated_gradients, gradient, smoothgrad" in out


def test_validate_reports_every_problem_without_traceback(study, capsys):
    path = study / "broken.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"path": "nope.keras"},
                "data": {"manifest": "manifest.csv", "pathcolumn": "x"},
                "methods": [{"name": "smoothgard"}, {"name": "ig", "stepz": 3}],
                "output": {"dir": "x"},
                "runtime": {"batch_size": -3},
            }
        )
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for expected in (
        "model.path",
        "data.pathcolumn",
        "did you mean 'path_column'",
        "smoothgrad",
        "stepz",
        "runtime.batch_size",
    ):
        assert expected in err


def test_validate_catches_a_broken_model_and_manifest(study, capsys):
    (study / "broken.keras").write_text("not a model")
    (study / "bad_manifest.csv").write_text("image_id,file\na,b.png\n")
    path = write_config(study, "cli_bad_model", model={"path": "broken.keras"}, data={"manifest": "bad_manifest.csv"})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "model.path: cannot load model" in err and "path" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("targets", "message"),
    [([5], "targets: class 5 is out of range: the model has 2 classes (0..1)"), ({"top_k": 3}, "targets: top_k is 3")],
)
def test_validate_checks_targets_against_the_model(study, capsys, targets, message):
    assert main(["validate", str(write_config(study, "cli_targets", targets=targets))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_exit_code_and_set_override(study, capsys):
    path = write_config(study, "cli_run")
    code = main(
        ["run", str(path), "--set", "methods=[gradient]", "--set", f"output.dir={study / 'cli_set'}", "--no-progress"]
    )
    assert code == 1  # some images in the study are broken on purpose
    captured = capsys.readouterr()
    assert "7 images" in captured.out and "3 errors" in captured.out
    assert "fake" in captured.err
    with open(study / "cli_set" / "index.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["method"] for r in rows} == {"gradient"}


def test_run_says_what_it_does_before_each_long_silent_step_unless_told_not_to(study, capsys):
    path = write_config(study, "cli_notes", methods=["gradient"], runtime={"progress": True})
    assert main(["run", str(path)]) == 1
    captured = capsys.readouterr()
    notes = ["medxai: starting TensorFlow", f"medxai: loading the model {study / 'model.keras'}", "building 1 method"]
    positions = [captured.err.index(note) for note in notes]
    assert positions == sorted(positions)  # in the order they happen, before the maps
    assert "medxai: 7/7 images (100 %)" in captured.err  # stderr is no terminal here: plain progress lines
    assert captured.out.startswith("medxai: 7 images (0 resumed), 4 maps, 3 errors in ")
    assert main(["run", str(path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert not any(note in captured.err for note in notes) and "/7 images" not in captured.err
    assert captured.out.startswith("medxai: 7 images (4 resumed)")


def test_run_all_good_exits_zero(tmp_path, capsys):
    tiny_model().save(tmp_path / "model.keras")
    import numpy as np

    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((16, 16)).astype("float32"))
    (tmp_path / "m.csv").write_text("path\na.npy\n")
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(
            {
                "model": {"path": "model.keras"},
                "data": {"manifest": "m.csv"},
                "methods": ["gradient"],
                "output": {"dir": "o"},
            }
        )
    )
    assert main(["run", str(tmp_path / "c.yaml"), "--no-progress"]) == 0


def test_bad_override_is_exit_2(study, capsys):
    assert main(["run", str(write_config(study, "cli_bad_set")), "--set", "runtime.batchsize=3"]) == 2
    assert "did you mean 'runtime.batch_size'" in capsys.readouterr().err


def test_methods_lists_the_registry(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "integrated_gradients (aliases: ig)",
        "steps = 32",
        "rule = None",
        "smoothgrad",
        "samples = 25",
        "saliency",
    ):
        assert expected in out


def test_console_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "medxai", "run", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "--set KEY=VALUE" in result.stdout
    assert subprocess.run([sys.executable, "-m", "medxai"], capture_output=True, text=True, timeout=120).returncode == 2


@pytest.mark.slow
def test_console_script_runs_end_to_end(study):
    path = write_config(study, "subprocess", methods=["gradient"])
    result = subprocess.run(
        [sys.executable, "-m", "medxai", "run", str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stderr
    assert "3 errors" in result.stdout
    assert "cuInit" not in result.stderr and "Traceback" not in result.stderr


def test_the_demo_config_validates(capsys, tmp_path):
    from pathlib import Path

    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    # validate probes that output.dir can be written: point it outside the checkout (which may be read-only)
    assert main(["validate", str(demo), "--set", f"output.dir={tmp_path / 'demo'}"]) == 0
    out = capsys.readouterr().out
    assert (
        "valid (36 images; model input (64, 64, 1), 2 classes; methods: integrated_gradients, gradient, smoothgrad"
        in out
    )
    assert "explains logits: the pre-activation of Dense" in out and "(softmax removed)" in out
    assert "scores probabilities: softmax of the logits" in out and "(witness: graph)" in out


def test_the_demo_export_config_writes_nifti_and_dicom_maps_of_the_ct_slices(tmp_path, capsys):
    import csv
    from pathlib import Path

    import nibabel as nib
    import pydicom

    config = Path(__file__).resolve().parents[1] / "configs" / "demo_export.yaml"
    assert main(["run", str(config), "--no-progress", "--set", f"output.dir={tmp_path}"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "index.csv", encoding="utf-8")))
    assert len(rows) == 48 and {r["status"] for r in rows} == {"ok"}
    for row in rows[:4]:
        source = pydicom.dcmread(row["source_path"])
        pm = pydicom.dcmread(tmp_path / row["dicom_map_path"])
        sc = pydicom.dcmread(tmp_path / row["dicom_overlay_path"])
        assert pm.StudyInstanceUID == sc.StudyInstanceUID == source.StudyInstanceUID
        assert len({pm.SeriesInstanceUID, sc.SeriesInstanceUID, source.SeriesInstanceUID}) == 3
        nifti = nib.load(tmp_path / row["nifti_path"])
        assert nifti.shape == (int(source.Columns), int(source.Rows))
        assert row["orientation"] == "PL" and row["source_shape"] == f"{source.Rows}x{source.Columns}"


def test_evaluate_refuses_a_run_with_a_truncated_map_naming_it(tmp_path, capsys):
    import numpy as np

    tiny_model().save(tmp_path / "model.keras")
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((16, 16)).astype("float32"))
    (tmp_path / "m.csv").write_text("path\na.npy\n")
    config = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "m.csv"},
        "methods": ["gradient"],
        "output": {"dir": "o"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "c.yaml"), "--no-progress"]) == 0
    npy = next((tmp_path / "o" / "maps" / "gradient").glob("*.npy"))
    npy.write_bytes(npy.read_bytes()[:-100])  # e.g. a copy cut short
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "o"), "--no-progress", "--sanity-images", "0"]) == 2
    err = capsys.readouterr().err
    assert (
        f"medxai evaluate: 1 map file(s) of {tmp_path / 'o'} are missing or damaged ({npy} is truncated or damaged"
        in err
    )
    assert "runtime.resume: true computes just those maps again" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "metrics.csv").exists()
