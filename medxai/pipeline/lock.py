"""One writer per run folder: the exclusive lock ``<output.dir>/.medxai.lock``.

``medxai run`` holds it for the whole run, and ``medxai evaluate`` and ``medxai report``
while they write into a run folder, so two commands never write the same folder at once:
the second one refuses with :class:`RunFolderBusy`, whose message names the holder
(pid, host, since when, command).

On POSIX the lock is ``fcntl.flock`` on the file. The kernel releases it when its
process ends however it ends (``kill -9`` included), so a lock left by a killed run is
never in the way: the file stays, unlocked, and the next run takes it. Where ``flock``
is missing (Windows) or refused (some network file systems), the lock is the file
itself, created with ``O_CREAT | O_EXCL``; a file left by a process that is no longer
running on this host is stale and is replaced. A lock file from another host cannot be
checked from here: the message says to delete it when that run is over.

The file holds the holder as JSON: ``{"pid", "host", "since", "command"}``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medxai.errors import StudyError

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunFolderBusy", "RunLock", "describe_holder", "lock_holder", "pid_alive"]

LOCK_NAME = ".medxai.lock"
#: An empty lock file younger than this may be a holder that has not written its name yet.
_FRESH_SECONDS = 10.0
#: errno values of a file system that does not do flock.
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


class RunFolderBusy(StudyError):
    """Another medxai command holds the run folder's lock; ``holder`` says who (may be empty)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None):
        super().__init__(message)
        self.holder = dict(holder or {})


def _command() -> str:
    """This process's command line, shortened the way people typed it (``medxai run study.yaml``)."""
    argv = list(sys.argv) or ["python"]
    name = Path(argv[0]).name
    if name in ("medxai", "__main__.py") or argv[0].endswith(os.path.join("medxai", "__main__.py")):
        argv[0] = "medxai"
    return shlex.join(argv)


def describe_holder(holder: dict[str, Any]) -> str:
    """A lock holder for people: ``pid 4242 on host, since 2026-01-01T10:00:00+01:00: medxai run study.yaml``."""
    if not holder:
        return "a process that has not said who it is yet"
    parts = [f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"]
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    text = ", ".join(parts)
    return text + (f": {holder['command']}" if holder.get("command") else "")


def _parse(text: str) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        holder = json.loads(text)
        if isinstance(holder, dict):
            return holder
    return {}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (True when that cannot be told)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return True
    return True


class RunLock:
    """The exclusive lock of a run folder, as a context manager.

    Args:
        folder: the run folder (``output.dir``).
        command: what the holder is doing, shown to anyone refused (default: this process's command line).
        create: create ``folder`` when missing (and remove it again on release if it stayed empty).
        use_flock: use ``fcntl.flock`` where available (False: the lock-file protocol of platforms without it).
        key: the config key that named ``folder``, which a refusal starts with (None: ``medxai evaluate``
            and ``report``, given the folder itself).

    Raises:
        RunFolderBusy: on entry, when another process holds the lock.
        OSError: on entry, when the lock file cannot be created (the folder cannot be written).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        command: str | None = None,
        *,
        create: bool = True,
        use_flock: bool = True,
        key: str | None = "output.dir",
    ):
        self.folder = Path(os.fspath(folder))
        self.path = self.folder / LOCK_NAME
        self.command = _command() if command is None else command
        self.create = create
        self.use_flock = use_flock and fcntl is not None
        self.key = key
        self._fd: int | None = None
        self._created_folder = False
        self.holder: dict[str, Any] = {}

    # ---- taking it
    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunFolderBusy` naming the holder (never waits)."""
        if self.create and not self.folder.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._created_folder = True
        self.holder = {
            "pid": os.getpid(),
            "host": platform.node(),
            "since": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
            "command": self.command,
        }
        try:
            if self.use_flock and self._acquire_flock():
                return
            self._acquire_file()
        except BaseException:
            self._forget_folder()
            raise

    def _acquire_flock(self) -> bool:
        """flock the lock file; False when the file system does not do flock."""
        assert fcntl is not None
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    holder = _parse(_read_fd(fd))
                    os.close(fd)
                    raise self._busy(holder, stale_hint=False) from None
                empty = os.fstat(fd).st_size == 0
                os.close(fd)
                if err.errno in _NO_FLOCK:
                    if empty:  # made just now by os.open above: the lock-file protocol must not find it
                        with contextlib.suppress(FileNotFoundError):
                            self.path.unlink()
                    return False
                raise
            # A holder deletes the file while still holding it when it releases; if this
            # descriptor's file is no longer the one at the path, lock the new one instead.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                with contextlib.suppress(OSError):  # who holds it is a courtesy (a full disk must not stop the lock)
                    os.ftruncate(fd, 0)
                    os.write(fd, json.dumps(self.holder).encode())
                self._fd = fd
                return True
            os.close(fd)
        raise OSError(errno.EAGAIN, f"cannot take the lock {self.path}: it keeps being replaced")

    def _acquire_file(self) -> None:
        """The lock file itself is the lock (O_CREAT | O_EXCL); a stale one on this host is replaced."""
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = self._existing_holder()
                if holder is None:
                    continue  # it was stale and is gone: try again
                raise self._busy(holder, stale_hint=holder.get("host") != platform.node()) from None
            try:
                os.write(fd, json.dumps(self.holder).encode())
            except OSError:
                os.close(fd)
                with contextlib.suppress(OSError):  # an empty lock file would soon look stale
                    self.path.unlink()
                raise
            os.close(fd)
            self._fd = -1  # held, without a descriptor
            return
        raise OSError(errno.EAGAIN, f"cannot take the lock {self.path}: it keeps being replaced")

    def _existing_holder(self) -> dict[str, Any] | None:
        """The holder of an existing lock file; None after removing it as stale."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        holder = _parse(text)
        stale = (not holder and age > _FRESH_SECONDS) or (
            holder.get("host") == platform.node()
            and isinstance(holder.get("pid"), int)
            and not pid_alive(holder["pid"])
        )
        if not stale:
            return holder
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        described = describe_holder(holder) if holder else "an unknown process"
        print(f"medxai: removed the stale lock of {described} (it is no longer running)", file=sys.stderr)
        return None

    def _busy(self, holder: dict[str, Any], *, stale_hint: bool) -> RunFolderBusy:
        message = f"{self.folder} is in use by another medxai command ({describe_holder(holder)}); wait until it ends"
        if self.key is not None:
            message = f"{self.key}: {message}, or give this run another {self.key}"
        if stale_hint:
            message += f". If that command no longer runs, delete {self.path}"
        return RunFolderBusy(message, holder)

    # ---- giving it back
    def release(self) -> None:
        """Give the lock back (deleting the lock file); a no-op when not held."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fd >= 0:
            # Delete while still holding it, so nobody locks a file that is about to disappear.
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    self.path.unlink()
            os.close(fd)
        else:
            with contextlib.suppress(OSError):
                if _parse(self.path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                    self.path.unlink()
        self._forget_folder()

    def _forget_folder(self) -> None:
        """Remove the folder this lock created if nothing else was put in it."""
        if self._created_folder:
            self._created_folder = False
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_fd(fd: int) -> str:
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 65536).decode("utf-8", errors="replace")
    return ""


def lock_holder(folder: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds ``folder``'s lock right now (``{}`` when unknown), or None when nobody does.

    Never creates anything: a folder without a lock file is free.
    """
    path = Path(os.fspath(folder)) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return _parse(_read_fd(fd))
                # no flock here: judge the file as the lock-file protocol does
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None  # a file nobody locks: left by a run that ended (or was killed)
        holder = _parse(_read_fd(fd))
        if (
            holder.get("host") == platform.node()
            and isinstance(holder.get("pid"), int)
            and not pid_alive(holder["pid"])
        ):
            return None
        return holder
    finally:
        os.close(fd)
