"""The run folder's lock: one holder at a time, a refusal that names it, stale locks never in the way."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import textwrap

import pytest

from medxai.pipeline import lock as lock_module
from medxai.pipeline.lock import LOCK_NAME, RunFolderBusy, RunLock, lock_holder, pid_alive

HOLD = textwrap.dedent(
    """
    import sys, time
    from medxai.pipeline.lock import RunLock
    lock = RunLock(sys.argv[1], "medxai run held.yaml", use_flock=sys.argv[2] == "flock")
    lock.acquire()
    print("ready", flush=True)
    time.sleep(120)
    """
)


def hold_in_subprocess(folder, protocol="flock") -> subprocess.Popen:
    """A process holding ``folder``'s lock until killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), protocol], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    return holder


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("use_flock", [True, False])
def test_one_holder_at_a_time_and_the_refusal_names_it(tmp_path, use_flock):
    with RunLock(tmp_path, "medxai run a.yaml", use_flock=use_flock) as first:
        assert first.held
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert (
            holder["pid"] == os.getpid()
            and holder["host"] == platform.node()
            and holder["command"] == "medxai run a.yaml"
        )
        with pytest.raises(RunFolderBusy) as refused:
            RunLock(tmp_path, "medxai run b.yaml", use_flock=use_flock).acquire()
        message = str(refused.value)
        assert message.startswith(
            f"output.dir: {tmp_path} is in use by another medxai command (pid {os.getpid()} on {platform.node()}, "
            "since "
        )
        assert message.endswith(": medxai run a.yaml); wait until it ends, or give this run another output.dir")
        assert refused.value.holder["command"] == "medxai run a.yaml"
        if use_flock:  # (lock_holder judges a lock file by flock wherever the file system has it)
            assert lock_holder(tmp_path)["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists() and lock_holder(tmp_path) is None
    with RunLock(tmp_path, use_flock=use_flock):  # free again
        pass


def test_another_process_holding_it_is_refused_and_its_death_frees_it(tmp_path):
    holder = hold_in_subprocess(tmp_path)
    try:
        with pytest.raises(RunFolderBusy, match=rf"pid {holder.pid} on .*: medxai run held.yaml\)"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_NAME).exists()  # left behind by kill -9, but no longer locked
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path, "medxai run again.yaml"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["command"] == "medxai run again.yaml"


def test_lock_file_protocol_detects_a_dead_holder_on_this_host(tmp_path, capsys):
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": dead_pid(), "host": platform.node(), "since": "x", "command": "medxai run old.yaml"})
    )
    with RunLock(tmp_path, use_flock=False):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "removed the stale lock of pid" in capsys.readouterr().err


def test_lock_file_protocol_respects_a_live_holder_and_another_hosts(tmp_path):
    holder = hold_in_subprocess(tmp_path, protocol="file")
    try:
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid}") as refused:
            RunLock(tmp_path, use_flock=False).acquire()
        assert "delete" not in str(refused.value)  # on this host it is known to be alive
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the killed holder's file stays, and is stale: a new holder replaces it
    with RunLock(tmp_path, use_flock=False):
        pass
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": 1, "host": "elsewhere", "since": "x", "command": "medxai run"})
    )
    with pytest.raises(RunFolderBusy, match=f"If that command no longer runs, delete {tmp_path / LOCK_NAME}"):
        RunLock(tmp_path, use_flock=False).acquire()


def test_a_folder_without_flock_support_falls_back_to_the_lock_file(tmp_path, monkeypatch):
    import errno

    class NoFlock:
        LOCK_EX = LOCK_NB = LOCK_SH = LOCK_UN = 0

        @staticmethod
        def flock(fd, operation):
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module, "fcntl", NoFlock)
    with RunLock(tmp_path) as held:
        assert held.held and json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert lock_holder(tmp_path)["pid"] == os.getpid()
        with pytest.raises(RunFolderBusy):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_that_created_its_folder_removes_it_if_nothing_was_written(tmp_path):
    folder = tmp_path / "new" / "out"
    with RunLock(folder):
        assert folder.is_dir()
    assert not folder.exists()
    with pytest.raises(OSError):
        RunLock(tmp_path / "missing", create=False).acquire()


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
