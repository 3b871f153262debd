"""The Dask executor: the local executor's index and maps (bit for bit), one model load
per worker, bad images, Ctrl-C and resume across executors, a worker killed mid-run, config errors.

One LocalCluster (2 worker processes, 1 thread each) serves the whole module.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from study_helpers import comparable, interrupt_on_call, read_index, write_config

import medxai
from medxai.cli import main
from medxai.pipeline import executors
from medxai.pipeline.config import Config, ConfigError
from medxai.pipeline.executors import partition_chunks

distributed = pytest.importorskip("distributed")

LOCAL = {"batch_size": 2, "progress": False}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local:
        with distributed.Client(local.scheduler_address, set_as_default=False) as client:
            yield local.scheduler_address, client


def on_dask(cluster, **dask) -> dict:
    """A ``runtime`` section: batches of 2 images, one batch per task unless told otherwise."""
    return {**LOCAL, "executor": "dask", "dask": {"address": cluster[0], "partition_size": 2, **dask}}


def assert_same_run(out: Path, reference: Path, methods: set[str] | None = None) -> None:
    """The same index (apart from `seconds`), the same .npy maps bit for bit and the same PNGs."""
    rows, expected = read_index(out / "index.csv"), read_index(reference / "index.csv")
    if methods is not None:
        expected = [r for r in expected if r["method"] in methods]
    assert comparable(rows) == comparable(expected)
    assert any(r["npy_path"] for r in rows)
    for row in (r for r in rows if r["npy_path"]):
        assert np.array_equal(np.load(out / row["npy_path"]), np.load(reference / row["npy_path"]))
        for column in ("png_path", "overlay_path"):
            assert (out / row[column]).read_bytes() == (reference / row[column]).read_bytes()
    assert not (out / "index.partial.csv").exists() and not list(out.rglob("*.tmp"))


def wait_until_idle(client, seconds: float = 30) -> None:
    """Wait for cancelled tasks that were already running (Dask lets them finish)."""
    deadline = time.monotonic() + seconds
    while any(client.call_stack().values()) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(study):
    return medxai.run(write_config(study, "dask_reference", runtime=LOCAL)).output_dir


@pytest.fixture(scope="module")
def dask_run(study, cluster):
    client = cluster[1]
    before = client.run(executors.worker_loads)
    summary = medxai.run(write_config(study, "dask_run", runtime=on_dask(cluster)))
    return summary, before, client.run(executors.worker_loads)


def test_partitions_are_whole_local_chunks():
    chunks = [["a", "b"], ["c", "d"], ["e", "f"], ["g"]]
    assert partition_chunks(chunks, 4) == [[["a", "b"], ["c", "d"]], [["e", "f"], ["g"]]]
    assert partition_chunks(chunks, 5) == [[["a", "b"], ["c", "d"]], [["e", "f"], ["g"]]]
    assert partition_chunks(chunks, 1) == [[chunk] for chunk in chunks]  # never splits a batch
    assert partition_chunks([], 4) == []


@pytest.mark.slow
def test_dask_gives_the_local_index_and_maps_bit_for_bit(dask_run, reference):
    summary, _, _ = dask_run
    assert summary.images == 7 and summary.errors == 3 and summary.maps == 12 and summary.exit_code == 1
    assert_same_run(summary.output_dir, reference)
    record = json.loads((summary.output_dir / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["fingerprint"] == json.loads((reference / "run.json").read_text())["fingerprint"]
    assert record["executor"]["name"] == "dask" and record["executor"]["partitions"] == 4
    assert json.loads((reference / "run.json").read_text())["executor"] == {"name": "local"}


@pytest.mark.slow
def test_each_worker_loads_the_model_once(dask_run):
    summary, before, after = dask_run
    workers = json.loads((summary.output_dir / "run.json").read_text())["executor"]["workers"]
    busy = [w for w in workers if w["partitions"]]
    assert len(after) == 2 and sum(w["partitions"] for w in workers) == 4  # more partitions than workers
    assert all(after[w] - before[w] <= 1 for w in after)  # at most one load per worker process...
    assert sum(after[w] - before[w] for w in after) == len(busy)  # ...and one for each that worked
    assert all(w["model_loads"] == after[w["address"]] for w in busy)


@pytest.mark.slow
def test_a_partition_with_a_bad_image_completes_its_good_ones(dask_run):
    summary, _, _ = dask_run
    rows = read_index(summary.output_dir / "index.csv")
    by_id = {r["image_id"]: r for r in rows}
    # batch_size 2, partition_size 2: "same" and "fake" share a task
    assert by_id["same"]["status"] == "ok" and by_id["fake"]["status"] == "error"
    assert "not a DICOM file" in by_id["fake"]["error"]
    assert all((summary.output_dir / r["npy_path"]).is_file() for r in rows if r["image_id"] == "same")


@pytest.mark.slow
@pytest.mark.parametrize("finish", ["dask", "local"])
def test_interrupted_dask_run_resumes(study, cluster, reference, monkeypatch, finish):
    name = f"dask_cut_{finish}"
    original = executors.DaskExecutor._deliver
    delivered: list[set[str]] = []

    def deliver_then_ctrl_c(self, future, part, done):
        original(self, future, part, done)
        delivered.append({row.image_id for chunk in part for row in chunk})
        raise KeyboardInterrupt

    monkeypatch.setattr(executors.DaskExecutor, "_deliver", deliver_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        medxai.run(write_config(study, name, runtime=on_dask(cluster, partition_size=4)))
    monkeypatch.undo()
    out = study / name
    assert not (out / "index.csv").exists() and json.loads((out / "run.json").read_text())["status"] == "running"
    journal = read_index(out / "index.partial.csv")
    assert len(delivered) == 1 and {r["image_id"] for r in journal} == delivered[0]
    assert delivered[0] in ({"wide", "ct", "same", "fake"}, {"gone", "nan", "../../escape"})
    wait_until_idle(cluster[1])

    runtime = on_dask(cluster) if finish == "dask" else LOCAL
    summary = medxai.run(write_config(study, name, runtime=runtime))
    assert summary.resumed == len({r["image_id"] for r in journal} - {"fake", "gone", "nan"})
    assert_same_run(out, reference)


@pytest.mark.slow
def test_a_run_started_locally_finishes_on_dask(study, cluster, reference, monkeypatch):
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        medxai.run(write_config(study, "local_then_dask", runtime=LOCAL))
    monkeypatch.undo()
    summary = medxai.run(write_config(study, "local_then_dask", runtime=on_dask(cluster)))
    assert summary.resumed == 2  # "wide" and "ct"
    assert_same_run(study / "local_then_dask", reference)
    assert json.loads((study / "local_then_dask" / "run.json").read_text())["executor"]["partitions"] == 3


@pytest.mark.slow
def test_cli_flags_and_progress(study, cluster, reference, capsys):
    path = write_config(study, "dask_cli", runtime=LOCAL)
    code = main(
        ["run", str(path), "--executor", "dask", "--dask-address", cluster[0], "--set", "runtime.progress=true"]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert "7 images" in captured.out and "7/7" in captured.err and f"Dask scheduler {cluster[0]}" in captured.err
    record = json.loads((study / "dask_cli" / "run.json").read_text())
    assert record["config"]["runtime"]["executor"] == "dask" and record["executor"]["address"] == cluster[0]
    assert_same_run(study / "dask_cli", reference)


@pytest.mark.slow
def test_address_local_starts_a_cluster(study, reference):
    runtime = {**LOCAL, "executor": "dask", "dask": {"address": "local", "workers": 1}}
    summary = medxai.run(write_config(study, "dask_own_cluster", methods=["gradient"], runtime=runtime))
    assert_same_run(summary.output_dir, reference, methods={"gradient"})
    executor = json.loads((summary.output_dir / "run.json").read_text())["executor"]
    assert executor["local_cluster"] and len(executor["workers"]) == 1 and executor["partitions"] == 1


def test_unreachable_scheduler_exits_2_naming_the_key(study, capsys):
    path = write_config(study, "dask_nowhere", runtime={**LOCAL, "dask": {"timeout": 0.5}})
    assert main(["run", str(path), "--dask-address", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert (
        "runtime.dask.address: cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err and "Traceback" not in err
    )
    assert not (study / "dask_nowhere").exists()


def test_missing_dask_is_a_clear_error(study, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now fails
    path = write_config(study, "dask_missing", runtime={**LOCAL, "executor": "dask"})
    assert main(["validate", str(path)]) == 2
    assert (
        "runtime.executor: 'dask' needs the dask and distributed packages: pip install medxai[dask]"
        in capsys.readouterr().err
    )


def _config(study, runtime) -> Config:
    data = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv"},
        "output": {"dir": "x"},
        "runtime": runtime,
    }
    return Config.from_dict(data, base_dir=study)


@pytest.mark.parametrize(
    "runtime,message",
    [
        ({"executor": "dsk"}, "runtime.executor: expected one of local, dask, got 'dsk' (did you mean 'dask'?)"),
        ({"dask": {"address": "tcp://no host"}}, "runtime.dask.address: expected 'local' or a Dask scheduler address"),
        ({"dask": {"address": 8786}}, "runtime.dask.address: expected 'local' or a Dask scheduler address"),
        ({"dask": {"workers": 0}}, "runtime.dask.workers: expected a positive integer, got 0"),
        ({"dask": {"partition_size": -4}}, "runtime.dask.partition_size: expected a positive integer, got -4"),
        ({"dask": {"timeout": 0}}, "runtime.dask.timeout: expected a positive number, got 0"),
        ({"dask": {"adress": "local"}}, "runtime.dask.adress: unknown key (did you mean 'address'?)"),
        ({"dask": "tcp://host:8786"}, "runtime.dask: expected a mapping"),
    ],
)
def test_bad_dask_settings_are_config_errors_naming_the_key(study, runtime, message):
    with pytest.raises(ConfigError) as caught:
        _config(study, runtime)
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_dask_settings_defaults_and_addresses(study):
    assert _config(study, {"dask": None}).runtime.dask == _config(study, {}).runtime.dask
    for given, kept in [
        ("LOCAL", "local"),
        ("10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("tls://[::1]:8786", "tls://[::1]:8786"),
    ]:
        assert _config(study, {"dask": {"address": given}}).runtime.dask.address == kept
    config = _config(study, {"executor": "dask", "dask": {"address": "tcp://h:1", "workers": 3}})
    assert Config.from_dict(config.to_dict()) == config


def test_cli_flags_map_onto_runtime_keys():
    from medxai.cli import _executor_overrides, _parser

    def overrides(*flags):
        return _executor_overrides(_parser().parse_args(["run", "c.yaml", *flags]))

    assert overrides() == []
    assert overrides("--dask-workers", "3") == ["runtime.executor=dask", "runtime.dask.workers=3"]
    assert overrides("--executor", "local", "--dask-address", "10.0.0.1:8786") == [
        "runtime.executor=local",
        'runtime.dask.address="10.0.0.1:8786"',
    ]


@pytest.mark.slow
def test_a_nifti_with_a_nan_affine_on_a_worker_gets_its_maps_and_so_does_its_task_companion(study, cluster):
    from _files import nifti_with_affine

    nifti_with_affine(study / "nan-affine.nii", float("nan"))  # the worker's nibabel raised LinAlgError here
    (study / "nan_affine.csv").write_text("image_id,path\nnan,nan-affine.nii\nsame,same.npy\n")
    config = write_config(
        study,
        "dask_nan_affine",
        data={"manifest": "nan_affine.csv", "id_column": "image_id"},
        methods=["gradient"],
        output={"dir": "dask_nan_affine", "formats": ["npy"]},
        runtime=on_dask(cluster),  # batch_size 2, partition_size 2: both images in one chunk, one task
    )
    summary = medxai.run(config)
    rows = {r["image_id"]: r for r in read_index(summary.output_dir / "index.csv")}
    assert summary.images == 2 and summary.errors == 0
    for row in rows.values():
        assert row["status"] == "ok" and (summary.output_dir / row["npy_path"]).is_file(), row["error"]
    assert rows["nan"]["orientation"] == rows["nan"]["spacing"] == "" and "NaN or infinite" in rows["nan"]["warning"]
    assert json.loads((summary.output_dir / "run.json").read_text())["executor"]["partitions"] == 1


@pytest.mark.slow
def test_a_worker_killed_mid_run_has_its_partition_computed_again(study, cluster, reference, monkeypatch):
    """kill -9 of a busy worker once the first partition is in: Dask runs its task again, no row twice.

    Last in the module: the killed worker's nanny starts a fresh one, which loads the model again.
    """
    client = cluster[1]
    wait_until_idle(client)
    pids = client.run(os.getpid)
    original = executors.DaskExecutor._deliver
    killed: list[str] = []

    def deliver_then_kill_a_busy_worker(self, future, part, done):
        original(self, future, part, done)
        if killed:
            return
        busy: list[str] = []
        deadline = time.monotonic() + 20
        while not busy and time.monotonic() < deadline:
            busy = [worker for worker, stack in client.call_stack().items() if stack and worker in pids]
            time.sleep(0.01)
        victim = busy[0] if busy else next(iter(pids))
        os.kill(pids[victim], signal.SIGKILL)
        killed.append(victim)

    monkeypatch.setattr(executors.DaskExecutor, "_deliver", deliver_then_kill_a_busy_worker)
    summary = medxai.run(write_config(study, "dask_killed", runtime=on_dask(cluster)))
    assert killed
    assert summary.images == 7 and summary.errors == 3 and summary.maps == 12
    rows = read_index(summary.output_dir / "index.csv")
    keys = [(r["image_id"], r["method"], r["class_index"]) for r in rows]
    assert len(keys) == len(set(keys))  # nothing twice
    assert_same_run(summary.output_dir, reference)
    assert json.loads((summary.output_dir / "run.json").read_text())["executor"]["partitions"] == 4


def test_a_partition_that_keeps_killing_workers_becomes_error_rows(study):
    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker

    from medxai.pipeline.config import load_config
    from medxai.pipeline.decoder import Decoder
    from medxai.pipeline.study import study_rows

    config = load_config(write_config(study, "dask_killed_rows", methods=["gradient"], runtime=LOCAL))
    executor = executors.DaskExecutor(config.runtime.dask)
    executor._decoder = Decoder(config)
    images = study_rows(config)[:2]

    class Lost:
        def result(self):
            raise KilledWorker("medxai-partition-x-0", SimpleNamespace(address="tcp://10.0.0.9:4000"), 3)

    delivered = []
    executor._deliver(Lost(), [images], lambda imgs, rows: delivered.append((imgs, rows)))
    ((imgs, rows),) = delivered
    assert imgs == images and [r["image_id"] for r in rows] == ["wide", "ct"]
    assert all(
        r["status"] == "error" and "the Dask workers computing this image's partition died" in r["error"] for r in rows
    )
    assert "tcp://10.0.0.9:4000" in rows[0]["error"] and not any(r.get("npy_path") for r in rows)
