"""The run folder is safe: one run at a time, a resume that never lies, inputs never overwritten,
no stale temporary files, a full disk that stops the run early and resumes, pictures of bounded size,
and the readers' limits and warnings reaching the index (issue 14)."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import skimage.io
import yaml
from analytic_models import tiny_model
from study_helpers import comparable, count_processed, read_index, write_config

import medxai
import medxai.pipeline.decoder as decoder_module
import medxai.pipeline.explainer as explainer_module
from medxai.cli import main
from medxai.errors import StudyError
from medxai.io import writers
from medxai.io.formats import file_columns
from medxai.pipeline.decoder import RunStoppedError
from medxai.pipeline.lock import LOCK_NAME, RunFolderBusy, RunLock
from medxai.viz.render import colour_bar_width

IDS = ["img0", "img1", "img2", "img3"]
#: One image per batch: an image computed again in a resumed run then meets the same batch companions
#: (none) as in a fresh run, so its floats agree bit for bit (TensorFlow's CPU kernels round by batch).
ONE_PER_BATCH = {"batch_size": 1, "progress": False}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    tiny_model().save(path)
    return path


def make_study(root: Path, model_file: Path, ids=IDS, size: int = 16) -> Path:
    """Images ``<id>.npy``, a manifest with labels and an (empty) mask column, the model."""
    shutil.copy(model_file, root / "model.keras")
    rng = np.random.default_rng(0)
    for image_id in ids:
        np.save(root / f"{image_id}.npy", rng.random((size, size)).astype(np.float32))
    np.save(root / "mask.npy", (rng.random((size, size)) > 0.5).astype(np.uint8))
    write_manifest(root, [(i, f"{i}.npy", k % 2, "") for k, i in enumerate(ids)])
    return root


def write_manifest(root: Path, rows) -> None:
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "path", "label", "mask"])
        writer.writerows(rows)


def manifest_rows(root: Path) -> list[list[str]]:
    with open(root / "manifest.csv", newline="") as handle:
        return list(csv.reader(handle))[1:]


def config(root: Path, out: str = "out", **changes) -> Path:
    base = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id", "label_column": "label", "mask_column": "mask"},
        "methods": ["gradient", {"name": "ig", "steps": 4}],
        "targets": "label",
        "output": {"dir": out},
        "runtime": {"batch_size": 2, "progress": False},
    }
    return write_config(root, out, base, **changes)


def assert_same_index_and_maps(out: Path, reference: Path) -> None:
    rows, expected = read_index(out / "index.csv"), read_index(reference / "index.csv")
    assert comparable(rows) == comparable(expected)
    for row in (r for r in rows if r["npy_path"]):
        np.testing.assert_array_equal(np.load(out / row["npy_path"]), np.load(reference / row["npy_path"]))


def map_file(out: Path, image_id: str, method: str, column: str) -> Path:
    row = next(r for r in read_index(out / "index.csv") if r["image_id"] == image_id and r["method"] == method)
    return out / row[column]


# ------------------------------------------------------------------------------------- the lock
HOLD = textwrap.dedent(
    """
    import sys, time
    from medxai.pipeline.lock import RunLock
    RunLock(sys.argv[1], "medxai run other.yaml").acquire()
    print("ready", flush=True)
    time.sleep(120)
    """
)


def test_a_second_run_on_the_folder_is_refused_naming_the_first(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    path = config(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert main(["run", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"output.dir: {tmp_path / 'out'} is in use by another medxai command (pid {holder.pid} on " in err
        assert ", since " in err and ": medxai run other.yaml)" in err and "Traceback" not in err
        assert not (tmp_path / "out" / "index.partial.csv").exists() and not (tmp_path / "out" / "run.json").exists()
        # validate still says the study is valid, with a note that a run would be refused now
        assert main(["validate", str(path)]) == 0
        assert f"is in use by another medxai command (pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder: the kernel drops its flock
        holder.wait()
    assert (tmp_path / "out" / LOCK_NAME).exists()  # its stale lock file is not in the way
    assert main(["run", str(path)]) == 0
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_the_python_api_refuses_a_folder_in_use_too(tmp_path, model_file):
    make_study(tmp_path, model_file)
    with RunLock(tmp_path / "out", "medxai evaluate out"):
        with pytest.raises(RunFolderBusy, match=r"output\.dir: .* \(pid \d+ on .*: medxai evaluate out\)"):
            medxai.run(config(tmp_path))
    assert medxai.run(config(tmp_path)).exit_code == 0


def test_evaluate_and_report_refuse_a_folder_a_run_is_writing(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    out = medxai.run(config(tmp_path)).output_dir
    with RunLock(out, "medxai run study.yaml"):
        for command in ("evaluate", "report"):
            assert main([command, str(out), "--no-progress"]) == 2
            err = capsys.readouterr().err
            assert (
                f"medxai {command}: {out} is in use by another medxai command" in err and "medxai run study.yaml" in err
            )
    assert not (out / "metrics.csv").exists() and not (out / "report.html").exists()
    assert main(["report", str(out), "--no-progress"]) == 0  # free again


# --------------------------------------------------------------------------- resume never lies
def edit_label(root, out):
    rows = manifest_rows(root)
    rows[1][2] = "0" if rows[1][2] == "1" else "1"
    write_manifest(root, rows)


def edit_path(root, out):
    np.save(root / "moved.npy", np.random.default_rng(1).random((16, 16)).astype(np.float32))
    rows = manifest_rows(root)
    rows[1][1] = "moved.npy"
    write_manifest(root, rows)


def edit_content(root, out):
    path = root / "img1.npy"
    stat = path.stat()
    np.save(path, np.random.default_rng(2).random((16, 16)).astype(np.float32))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse clocks: surely another mtime


def replace_keeping_size_and_time(root, out):
    """Other pixels, the same size and the old modification time: what ``cp -p``, ``rsync -a``, ``touch -r`` leave."""
    path = root / "img1.npy"
    stat = path.stat()
    np.save(path, np.random.default_rng(2).random((16, 16)).astype(np.float32))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def edit_mask(root, out):
    rows = manifest_rows(root)
    rows[1][3] = "mask.npy"
    write_manifest(root, rows)


def delete_map(root, out):
    map_file(out, "img1", "gradient", "png_path").unlink()


def truncate_npy(root, out):
    path = map_file(out, "img1", "integrated_gradients", "npy_path")
    path.write_bytes(path.read_bytes()[:-16])


@pytest.mark.parametrize(
    "edit,message",
    [
        (edit_label, "1 image(s) changed since the last run (label: img1)"),
        (edit_path, "1 image(s) changed since the last run (path: img1)"),
        (edit_content, "1 image(s) changed since the last run (file: img1)"),
        (
            replace_keeping_size_and_time,
            "1 image(s) changed since the last run (other content, same size and time: img1)",
        ),
        (edit_mask, "1 image(s) changed since the last run (mask: img1)"),
        (delete_map, "1 image(s) have missing or damaged map files (img1: maps/gradient/img1_c1.png is missing)"),
        (truncate_npy, "1 image(s) have missing or damaged map files (img1: "),
    ],
)
def test_resume_recomputes_exactly_the_images_whose_inputs_or_files_changed(
    tmp_path, model_file, monkeypatch, capsys, edit, message
):
    make_study(tmp_path, model_file)
    runtime = ONE_PER_BATCH
    first = medxai.run(config(tmp_path, runtime=runtime))
    assert first.exit_code == 0 and first.resumed == 0
    edit(tmp_path, first.output_dir)
    capsys.readouterr()
    processed = count_processed(monkeypatch)
    summary = medxai.run(config(tmp_path, runtime=runtime))
    assert set(processed) == {"img1"}
    assert summary.resumed == 3 and summary.exit_code == 0
    assert message in capsys.readouterr().err
    monkeypatch.undo()
    fresh = medxai.run(config(tmp_path, "fresh", runtime=runtime))
    assert_same_index_and_maps(summary.output_dir, fresh.output_dir)


def test_an_unchanged_study_resumes_everything(tmp_path, model_file, monkeypatch):
    make_study(tmp_path, model_file)
    medxai.run(config(tmp_path))
    processed = count_processed(monkeypatch)
    assert medxai.run(config(tmp_path)).resumed == 4 and processed == []


# ------------------------------------------------------------------ inputs never overwritten
@pytest.mark.parametrize(
    "name", ["index.csv", "index.partial.csv", "run.json", "metrics.csv", "report.html", "contact_sheet_2.png"]
)
def test_a_manifest_the_run_would_overwrite_is_refused(tmp_path, model_file, capsys, name):
    make_study(tmp_path, model_file)
    (tmp_path / "out").mkdir()
    shutil.copy(tmp_path / "manifest.csv", tmp_path / "out" / name)
    path = config(
        tmp_path, data={"manifest": f"out/{name}", "id_column": "image_id", "label_column": "label", "root": "."}
    )
    for command in ("validate", "run"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert (
            f"data.manifest: {tmp_path / 'out' / name} is inside output.dir ({tmp_path / 'out'}) where the run writes "
            f"{name}" in err
        )
    assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "manifest.csv").read_bytes()


def test_a_model_under_maps_is_refused_and_one_elsewhere_in_the_folder_is_fine(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    (tmp_path / "out" / "maps").mkdir(parents=True)
    shutil.copy(tmp_path / "model.keras", tmp_path / "out" / "maps" / "model.keras")
    assert main(["validate", str(config(tmp_path, model={"path": "out/maps/model.keras"}))]) == 2
    assert "model.path: " in capsys.readouterr().err
    shutil.copy(tmp_path / "model.keras", tmp_path / "out" / "model.keras")
    assert main(["validate", str(config(tmp_path, model={"path": "out/model.keras"}))]) == 0


# ------------------------------------------------------------- an output folder of its own (issue 19)
OWN = "the run needs a folder of its own that holds no data"


def test_a_manifest_anywhere_in_the_output_folder_is_refused(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    (tmp_path / "out" / "lists").mkdir(parents=True)
    shutil.copy(tmp_path / "manifest.csv", tmp_path / "out" / "lists" / "manifest.csv")
    data = {"manifest": "out/lists/manifest.csv", "id_column": "image_id", "label_column": "label", "root": "."}
    assert main(["validate", str(config(tmp_path, data=data))]) == 2
    err = capsys.readouterr().err
    assert (
        f"data.manifest: {tmp_path / 'out' / 'lists' / 'manifest.csv'} is inside output.dir ({tmp_path / 'out'}); {OWN}"
        in err
    )


@pytest.mark.parametrize("command", ["validate", "run"])
def test_the_data_folder_as_output_folder_is_refused_and_left_untouched(tmp_path, model_file, capsys, command):
    make_study(tmp_path, model_file)
    path = config(tmp_path, str(tmp_path))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert f"data.manifest: {tmp_path / 'manifest.csv'} is inside output.dir ({tmp_path}); {OWN}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no index, run.json, maps/ or lock


def test_a_folder_holding_the_images_but_not_the_manifest_is_refused(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    (tmp_path / "images").mkdir()
    for image_id in IDS:
        (tmp_path / f"{image_id}.npy").rename(tmp_path / "images" / f"{image_id}.npy")
    write_manifest(tmp_path, [(i, f"images/{i}.npy", k % 2, "") for k, i in enumerate(IDS)])
    path = config(tmp_path, "images")
    example = tmp_path / "images" / "img0.npy"
    message = f"output.dir: {tmp_path / 'images'} holds the manifest's images (e.g. {example}); {OWN}"
    assert main(["validate", str(path)]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(StudyError) as refused:
        medxai.run(path)  # the Python API too
    assert message in str(refused.value)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [f"{i}.npy" for i in IDS]


def test_the_root_and_the_home_folder_are_refused(tmp_path, model_file, capsys, monkeypatch):
    make_study(tmp_path, model_file)
    assert main(["validate", str(config(tmp_path, "/"))]) == 2
    assert f"output.dir: / is the root of the file system; {OWN}" in capsys.readouterr().err
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert main(["validate", str(config(tmp_path, "~"))]) == 2
    assert f"output.dir: {home} is the home folder; {OWN}" in capsys.readouterr().err
    assert list(home.iterdir()) == []
    assert main(["validate", str(config(tmp_path, "~/runs/study"))]) == 0


# -------------------------------------------------------------------- output folder not writable
def test_an_output_folder_that_cannot_be_created_is_exit_2_naming_output_dir(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    (tmp_path / "a_file").write_text("not a folder")
    path = config(tmp_path, output={"dir": "a_file/out"})
    for command in ("validate", "run"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert (
            f"output.dir: cannot create or write {tmp_path / 'a_file' / 'out'}" in err
            and "is a file, not a folder" in err
        )
        assert "Traceback" not in err
    with pytest.raises(StudyError, match="output.dir: "):
        medxai.run(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_output_folder_is_exit_2(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    (tmp_path / "out").mkdir()
    (tmp_path / "out").chmod(0o555)
    try:
        assert main(["validate", str(config(tmp_path))]) == 2
        assert "output.dir: cannot create or write" in capsys.readouterr().err
    finally:
        (tmp_path / "out").chmod(0o755)


def test_validate_leaves_no_trace_of_its_check(tmp_path, model_file):
    make_study(tmp_path, model_file)
    assert main(["validate", str(config(tmp_path, output={"dir": "new/out"}))]) == 0
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------- no formulas in the CSVs
FORMULAS = ['=HYPERLINK("http://x.example","click")', "+1+1", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)"]


def test_formula_ids_and_class_names_are_inert_in_every_csv_and_read_back_exactly(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file, ids=["img0", "img1", "img2", "img3", "plain"])
    write_manifest(
        tmp_path, [(i, f"img{k}.npy", k % 2, "") for k, i in enumerate(FORMULAS)] + [("plain", "plain.npy", 0, "")]
    )
    names = ["=cmd|' /C calc'!A0", "'-1+1"]
    path = config(tmp_path, model={"path": "model.keras", "class_names": names}, runtime=ONE_PER_BATCH)
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path)]) == 0
    assert "5 images (5 resumed)" in capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["evaluate", str(out), "--no-faithfulness", "--sanity-images", "0", "--no-progress"]) == 0
    assert main(["report", str(out), "--no-progress"]) == 0
    for name in ("index.csv", "metrics.csv", "summary.csv"):
        with open(out / name, newline="", encoding="utf-8") as handle:
            cells = [cell for line in csv.reader(handle) for cell in line]
        formulas = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(c)]
        assert formulas == [], name
    index = read_index(out / "index.csv")
    assert {r["image_id"] for r in index} == {*FORMULAS, "plain"} and {r["class_name"] for r in index} == set(names)
    assert all(r["status"] == "ok" and not Path(r["npy_path"]).name.startswith("-") for r in index)
    metrics = read_index(out / "metrics.csv")
    assert {r["image_id"] for r in metrics} == {*FORMULAS, "plain"} and any(r["gini"].startswith("0.") for r in metrics)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert (
        all(json.dumps(i) in report for i in FORMULAS) and f"0 ({names[0]})" in report and f"1 ({names[1]})" in report
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


# ------------------------------------------------------------------------- stale temporary files
def test_a_run_removes_the_temporary_files_a_killed_run_left(tmp_path, model_file, capsys):
    make_study(tmp_path, model_file)
    out = medxai.run(config(tmp_path)).output_dir
    stale = [out / ".index.csv.0123456789ab.tmp", out / "maps" / "gradient" / ".img0_c0.npy.abcdef012345.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    swap = out / "maps" / "gradient" / ".img0_c0.sc.abcdef012345.old"
    swap.mkdir()
    (swap / "0001.dcm").write_bytes(b"x")
    (out / "sub").mkdir()
    # the user's own files, even with names like the writers' temporary names, outside maps/ or not of a run file
    mine = [out / "notes.tmp", out / "sub" / ".notes.abcdef123456.tmp", out / ".notes.abcdef123456.tmp"]
    mine += [out / "sub" / ".index.csv.0123456789ab.tmp"]
    for path in mine:
        path.write_text("the user's")
    capsys.readouterr()
    medxai.run(config(tmp_path))
    assert not any(p.exists() for p in [*stale, swap]) and all(p.exists() for p in mine)
    assert "removed 3 temporary file(s) left by an interrupted run" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ a full disk
class SmallDisk:
    """Writers' files on a disk with ``free`` bytes left: a write past it fails with ENOSPC."""

    def __init__(self, monkeypatch, free: int):
        import threading

        self.free, self.lock = free, threading.Lock()
        real_fdopen = os.fdopen
        disk = self

        class Limited:
            def __init__(self, handle):
                self.handle = handle

            def write(self, data):
                with disk.lock:
                    if len(data) > disk.free:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    disk.free -= len(data)
                return self.handle.write(data)

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

        monkeypatch.setattr(writers.os, "fdopen", lambda fd, mode: Limited(real_fdopen(fd, mode)))


def files_of(out: Path, image_id: str) -> list[Path]:
    return [p for p in (out / "maps").rglob(f"{image_id}_c*") if p.exists()]


def test_a_full_disk_stops_the_run_early_keeps_the_journal_and_resumes(tmp_path, model_file, monkeypatch, capsys):
    ids = [f"img{i}" for i in range(10)]
    make_study(tmp_path, model_file, ids=ids)
    # Writes in order (no writer threads), so where the disk fills up does not depend on timing.
    in_order = {**ONE_PER_BATCH, "overlap_io": False}
    reference = medxai.run(config(tmp_path, "reference", runtime=in_order))
    per_image = sum(p.stat().st_size for p in files_of(reference.output_dir, "img0"))
    run_json = (reference.output_dir / "run.json").stat().st_size  # the run writes it first, on the same disk
    processed = count_processed(monkeypatch)
    SmallDisk(monkeypatch, free=run_json + per_image * 3 + per_image // 2)  # about three and a half images
    path = config(tmp_path, runtime=in_order)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    out = tmp_path / "out"
    assert (
        f"medxai: output.dir: the disk holding {out} is full; the run stopped early: no space left on the device "
        f"writing {out / 'maps'}" in err
    )
    assert "more is needed for the " in err and "free some space and run the same command again" in err
    assert "Traceback" not in err
    assert len(set(processed)) < len(ids)  # stopped early: the last chunks were never computed
    journal = read_index(out / "index.partial.csv")
    journaled = {r["image_id"] for r in journal}
    assert {"img0", "img1"} <= journaled <= {"img0", "img1", "img2", "img3"}
    assert all(r["status"] == "ok" and all((out / r[c]).is_file() for c in file_columns() if r[c]) for r in journal)
    assert all(files_of(out, i) == [] for i in ids if i not in journaled)  # failed writes left no file behind
    assert not list(out.rglob("*.tmp")) and not (out / "index.csv").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "running"

    monkeypatch.undo()  # space was freed
    processed = count_processed(monkeypatch)
    summary = medxai.run(path)
    assert summary.resumed == len(journaled) and set(processed) == set(ids) - journaled
    assert_same_index_and_maps(out, reference.output_dir)


def test_a_failed_map_write_gives_error_rows_that_name_no_file(tmp_path, model_file, monkeypatch):
    make_study(tmp_path, model_file)
    real_replace = writers.os.replace

    def refuse_img2_overlays(src, dst):
        if Path(dst).name.startswith("img2_") and Path(dst).name.endswith(".overlay.png"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(writers.os, "replace", refuse_img2_overlays)
    summary = medxai.run(config(tmp_path))
    assert summary.exit_code == 1 and summary.failed_ids == ["img2"]
    rows = [r for r in read_index(summary.output_dir / "index.csv") if r["image_id"] == "img2"]
    assert rows and all(r["status"] == "error" and not any(r[c] for c in (*file_columns(), "npy_bytes")) for r in rows)
    assert any(
        f"cannot write {summary.output_dir / 'maps'}" in r["error"] and "Permission denied" in r["error"] for r in rows
    )
    assert files_of(summary.output_dir, "img2") == []
    assert all(r["status"] == "ok" for r in read_index(summary.output_dir / "index.csv") if r["image_id"] != "img2")


def test_an_index_that_cannot_be_written_keeps_the_journal_and_says_how_to_resume(tmp_path, model_file, monkeypatch):
    make_study(tmp_path, model_file)
    real_write_text = decoder_module.write_text

    def full_for_the_index(path, text):
        if Path(path).name == "index.csv":
            raise writers.DiskFullError(errno.ENOSPC, f"no space left on the device writing {path}")
        return real_write_text(path, text)

    monkeypatch.setattr(decoder_module, "write_text", full_for_the_index)
    with pytest.raises(RunStoppedError) as stopped:
        medxai.run(config(tmp_path))
    out = tmp_path / "out"
    assert (
        f"output.dir: cannot write the index: [Errno 28] no space left on the device writing {out / 'index.csv'}"
        in str(stopped.value)
    )
    assert f"every finished map is recorded in {out / 'index.partial.csv'}" in str(stopped.value)
    assert "once you free some space" in str(stopped.value)
    assert len(read_index(out / "index.partial.csv")) == 8
    monkeypatch.undo()
    processed = count_processed(monkeypatch)
    summary = medxai.run(config(tmp_path))
    assert processed == [] and summary.resumed == 4 and len(read_index(out / "index.csv")) == 8


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs is Linux")
def test_a_real_full_tmpfs_stops_the_run_and_resumes_once_it_grows(tmp_path, model_file):
    ids = [f"img{i}" for i in range(8)]
    make_study(tmp_path, model_file, ids=ids, size=64)  # 16 KiB maps
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "160k"):
        pytest.skip("cannot mount a tmpfs here (needs root, and a container that allows it)")
    try:
        path = config(
            tmp_path, str(disk.relative_to(tmp_path) / "out"), preprocess={"size": [16, 16]}, runtime=ONE_PER_BATCH
        )
        with pytest.raises(RunStoppedError, match=f"the disk holding {disk / 'out'} is full"):
            medxai.run(path)
        journal = read_index(disk / "out" / "index.partial.csv")
        assert 0 < len({r["image_id"] for r in journal}) < len(ids)
        assert all(r["status"] == "ok" for r in journal) and not list(disk.rglob("*.tmp"))
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True, timeout=20)
        summary = medxai.run(path)
        assert summary.exit_code == 0 and summary.resumed == len({r["image_id"] for r in journal})
        reference = medxai.run(config(tmp_path, "reference", preprocess={"size": [16, 16]}, runtime=ONE_PER_BATCH))
        assert_same_index_and_maps(disk / "out", reference.output_dir)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=20)


# --------------------------------------------------------------------------------- picture size
def test_pictures_are_at_most_max_size_and_the_npy_is_exact(tmp_path, model_file):
    make_study(tmp_path, model_file, ids=["big"], size=40)
    summary = medxai.run(config(tmp_path, output={"dir": "out", "max_size": 12}, methods=["gradient"]))
    row = read_index(summary.output_dir / "index.csv")[0]
    assert np.load(summary.output_dir / row["npy_path"]).shape == (40, 40)
    for column in ("png_path", "overlay_path"):  # the map's picture, then its colour bar
        assert skimage.io.imread(summary.output_dir / row[column]).shape[:2] == (12, 12 + colour_bar_width(12))
    plain = medxai.run(config(tmp_path, "plain", methods=["gradient"]))
    row = read_index(plain.output_dir / "index.csv")[0]
    assert skimage.io.imread(plain.output_dir / row["png_path"]).shape[:2] == (40, 40 + colour_bar_width(40))


def test_a_volumes_montage_is_at_most_max_size(tmp_path):
    tiny_model((4, 8, 8, 1)).save(tmp_path / "model3d.keras")
    np.save(tmp_path / "vol.npy", np.random.default_rng(0).random((6, 10, 10)).astype(np.float32))
    (tmp_path / "m.csv").write_text("path\nvol.npy\n")
    data = {
        "model": {"path": "model3d.keras"},
        "data": {"manifest": "m.csv"},
        "methods": ["gradient"],
        "output": {"dir": "out", "max_size": 12},
        "runtime": {"progress": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    summary = medxai.run(tmp_path / "c.yaml")
    row = read_index(summary.output_dir / "index.csv")[0]
    assert np.load(summary.output_dir / row["npy_path"]).shape == (6, 10, 10)
    for column in ("png_path", "overlay_path"):
        picture = skimage.io.imread(summary.output_dir / row[column])
        bar = colour_bar_width(picture.shape[0])  # beside the montage, not counted in max_size
        assert picture.shape[:2] == (8, 12 + bar)  # 2 x 3 slices of 4 x 4


# ------------------------------------------------------------------------------- reader hooks
def test_the_readers_limits_are_passed_and_their_warnings_reach_the_index(tmp_path, model_file, monkeypatch, capsys):
    make_study(tmp_path, model_file)
    real_read = explainer_module.read_image
    calls = []

    def reader(path, *, series_uid=None, max_pixels=None, timeout=None, max_abandoned=None, on_corrupt=None):
        calls.append((max_pixels, timeout, max_abandoned, on_corrupt))
        image = real_read(path, series_uid=series_uid)
        if Path(path).name == "img1.npy":
            image.meta["warnings"] = ["the file is named as PNG but its content is NPY"]
        return image

    monkeypatch.setattr(explainer_module, "read_image", reader)
    path = config(
        tmp_path,
        data={
            "manifest": "manifest.csv",
            "id_column": "image_id",
            "label_column": "label",
            "max_pixels": 5000,
            "on_corrupt": "warn",
        },
        runtime={"batch_size": 2, "progress": False, "read_timeout": 7.5, "max_abandoned_reads": 3},
    )
    assert main(["run", str(path)]) == 0
    assert set(calls) == {(5000, 7.5, 3, "warn")}
    captured = capsys.readouterr()
    assert "1 with warnings" in captured.out and "1 image(s) with warnings" in captured.err
    rows = read_index(tmp_path / "out" / "index.csv")
    warned = {r["image_id"]: r["warning"] for r in rows if r["warning"]}
    assert set(warned) == {"img1"} and warned["img1"] == "the file is named as PNG but its content is NPY"


def test_any_reader_failure_is_an_error_row_naming_the_file_but_ctrl_c_stops(tmp_path, model_file, monkeypatch):
    make_study(tmp_path, model_file)
    real_read = explainer_module.read_image

    class PanicException(BaseException):  # what a pyo3 (Rust) decoder raises when it panics
        pass

    def panicking(path, **kwargs):
        if Path(path).name == "img1.npy":
            raise PanicException("called `Option::unwrap()` on a `None` value")
        if Path(path).name == "img2.npy":
            raise MemoryError()
        return real_read(path, **kwargs)

    monkeypatch.setattr(explainer_module, "read_image", panicking)
    summary = medxai.run(config(tmp_path))
    assert summary.failed_ids == ["img1", "img2"]
    errors = {r["image_id"]: r["error"] for r in read_index(summary.output_dir / "index.csv") if r["status"] == "error"}
    assert errors["img1"] == f"{tmp_path / 'img1.npy'}: PanicException: called `Option::unwrap()` on a `None` value"
    assert errors["img2"] == f"{tmp_path / 'img2.npy'}: MemoryError"

    def interrupted(path, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(explainer_module, "read_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        medxai.run(config(tmp_path, "again"))
