"""Limits that keep a hostile image file from taking a run down.

Three guards, used by :func:`medxai.io.read_image`:

* **size**: :func:`check_declared_size` refuses an image whose header declares
  more values than ``max_pixels`` (the ``data.max_pixels`` setting), before any
  pixel is decoded, so memory follows the settings rather than the input;
* **file type**: :func:`regular_file` refuses FIFOs, sockets and devices, which
  would block a reader forever or stream without end;
* **time**: :func:`call_with_timeout` gives up on a read that takes longer than
  ``timeout`` seconds (the ``runtime.read_timeout`` setting), and never lets more
  than ``max_abandoned`` given-up reads run (``runtime.max_abandoned_reads``), so
  the memory they hold is bounded.

And one policy, :func:`convert_failure`: anything an image can raise becomes an
:class:`~medxai.errors.ImageReadError` naming the file, including Rust panics
from decoder plugins (``pyo3_runtime.PanicException`` is a ``BaseException``)
and ``MemoryError``; only ``KeyboardInterrupt``, ``SystemExit`` and
``GeneratorExit`` go through.
"""

from __future__ import annotations

import math
import os
import stat
import threading
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar, get_args

from medxai.errors import ImageReadError
from medxai.io.image import describe

__all__ = [
    "DEFAULT_MAX_ABANDONED_READS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_READ_TIMEOUT",
    "MAX_ABANDONED_SETTING",
    "MAX_PIXELS_SETTING",
    "OnCorrupt",
    "READ_TIMEOUT_SETTING",
    "ROOM_WAIT",
    "abandoned_reads",
    "call_with_timeout",
    "check_declared_size",
    "check_on_corrupt",
    "convert_failure",
    "is_regular_file",
    "must_propagate",
    "regular_file",
    "stop_waiting",
]

T = TypeVar("T")

#: The default of the ``data.max_pixels`` setting: 2**27 values (512 MiB as float32).
#: :func:`medxai.io.read_image` applies no size limit unless given one.
DEFAULT_MAX_PIXELS = 1 << 27
#: The default of the ``runtime.read_timeout`` setting, in seconds.
DEFAULT_READ_TIMEOUT = 120.0
#: The default of the ``runtime.max_abandoned_reads`` setting.
DEFAULT_MAX_ABANDONED_READS = 2
#: The setting the messages name.
MAX_PIXELS_SETTING = "data.max_pixels"
READ_TIMEOUT_SETTING = "runtime.read_timeout"
MAX_ABANDONED_SETTING = "runtime.max_abandoned_reads"
#: What a reader does with malformed pixel data: refuse the image, or read it with a warning.
OnCorrupt = Literal["error", "warn"]

#: Exceptions that must stop the program, never become an error row.
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)

_FILE_TYPES = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def regular_file(path: str | os.PathLike, *, allow_dir: bool = False) -> os.stat_result:
    """``os.stat`` of ``path`` (following links) when it is a regular file (or a folder, with ``allow_dir``).

    Raises:
        ImageReadError: missing, a link loop, no permission to look, or not a
            regular file (a FIFO, socket or device would block or never end).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(f"file not found: {os.fspath(path)}", path) from None
    except OSError as exc:
        raise ImageReadError(f"cannot open file: {os.fspath(path)} ({describe(exc)})", path) from None
    if stat.S_ISREG(st.st_mode) or (allow_dir and stat.S_ISDIR(st.st_mode)):
        return st
    what = next((name for test, name in _FILE_TYPES if test(st.st_mode)), "a special file")
    raise ImageReadError(f"not a regular file: {os.fspath(path)} (it is {what})", path)


def is_regular_file(path: str | os.PathLike) -> bool:
    """True when ``path`` (following links) is a regular file; False for anything else or an error."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def check_declared_size(
    dims: Sequence[int],
    path: str | os.PathLike,
    max_pixels: int | None,
    *,
    channels: int = 1,
    files: int | None = None,
) -> int:
    """Refuses an image whose header declares more than ``max_pixels`` values; returns the count.

    Args:
        dims: the declared spatial sizes, e.g. ``(rows, cols)`` or ``(frames,
            rows, cols)``; sizes of 1 are left out of the message.
        path: the file (or series folder), for the message.
        max_pixels: the limit; None: no limit.
        channels: samples per pixel (counted: each becomes a float32 value).
        files: for a series whose ``dims[0]`` counts files, that count (message only).

    Raises:
        ImageReadError: over the limit, e.g. ``"image too large: 13000 x 13000 =
            169000000 pixels, over data.max_pixels = 134217728: <path>"``.
    """
    total = math.prod(int(d) for d in dims) * int(channels)
    if max_pixels is None or total <= max_pixels:
        return total
    shown = [str(int(d)) for d in dims if int(d) != 1] or ["1"]
    if files is not None:
        shown[0] = f"{files} files" if len(dims) > 1 else f"{files} files of different sizes"
    unit = "pixels"
    if channels != 1:
        shown.append(f"{channels} channels")
        unit = "values"
    raise ImageReadError(
        f"image too large: {' x '.join(shown)} = {total} {unit}, over {MAX_PIXELS_SETTING} = {max_pixels}: "
        f"{os.fspath(path)}",
        path,
    )


def convert_failure(exc: BaseException, path: str | os.PathLike, problem: str = "cannot read image") -> ImageReadError:
    """The :class:`ImageReadError` that stands for ``exc``, raised while reading ``path``.

    ``exc`` itself when it already is one. ``KeyboardInterrupt``, ``SystemExit`` and
    ``GeneratorExit`` must be re-raised by the caller, not converted: check with
    :func:`must_propagate` first.
    """
    if isinstance(exc, ImageReadError):
        return exc
    if isinstance(exc, MemoryError):
        problem = "not enough memory to read the image"
    return ImageReadError(f"{problem}: {os.fspath(path)} ({describe(exc)})", path)


def check_on_corrupt(on_corrupt: object) -> OnCorrupt:
    """``on_corrupt`` when it is one of :data:`OnCorrupt`'s values.

    Raises:
        ValueError: any other value (a caller's bug), naming the allowed ones.
    """
    allowed: tuple[OnCorrupt, ...] = get_args(OnCorrupt)
    for value in allowed:
        if on_corrupt == value:
            return value
    raise ValueError(f"on_corrupt must be one of {', '.join(map(repr, allowed))}, got {on_corrupt!r}")


def must_propagate(exc: BaseException) -> bool:
    """True for the exceptions that stop the program (Ctrl-C, ``sys.exit``, generator close)."""
    return isinstance(exc, _PASS_THROUGH)


#: How many times ``timeout`` a read waits for an abandoned read to end (see :func:`call_with_timeout`).
ROOM_WAIT = 10


class _Reads:
    """Timed reads still running: ``running`` within their limit, ``abandoned`` past it.

    ``changed`` is notified whenever one of them ends.
    """

    lock = threading.Lock()
    changed = threading.Condition(lock)
    running = 0
    abandoned = 0
    stuck = False  # a read waited for room in vain, and none has ended since
    generation = 0  # raised by stop_waiting


def abandoned_reads() -> int:
    """How many reads that ran past their time limit are still running in the background."""
    return _Reads.abandoned


def stop_waiting() -> None:
    """Wake the reads waiting for room among abandoned ones (see :func:`call_with_timeout`): each gives up at once.

    For a program that stops (Ctrl-C): a thread waiting there would hold its exit back.
    """
    with _Reads.changed:
        _Reads.generation += 1
        _Reads.changed.notify_all()


def call_with_timeout(
    func: Callable[[], T], timeout: float | None, path: str | os.PathLike, max_abandoned: int | None = None
) -> T:
    """``func()``, given up after ``timeout`` seconds; None: called directly, no limit.

    With a limit, ``func`` runs in a new daemon thread while this one waits.
    Python cannot kill a thread: a read that runs past the limit is abandoned
    and finishes (or hangs) in the background, keeping its memory and CPU until
    it ends (:func:`abandoned_reads` counts them); being a daemon it never holds
    the program's exit back. A decoder that holds the GIL in a C loop holds
    the waiting thread back too: the limit then fires when the decoder next
    lets go of the GIL. Whatever ``func`` raises (any ``BaseException``) is
    raised here, in the caller's thread.

    ``max_abandoned`` bounds what abandoned reads hold: a read starts only while
    fewer than that many timed reads run (abandoned or not, from any thread), so
    abandoned ones never number more. It waits up to :data:`ROOM_WAIT` times
    ``timeout`` for room (a slow read usually ends soon after it is abandoned) and
    gives up without calling ``func`` if none comes; until one ends, later calls then
    give up at once (the abandoned reads look hung). None: no bound.

    Raises:
        ImageReadError: ``"reading took longer than N s (runtime.read_timeout): <path>"``,
            ``"not read: N earlier read(s) still run past runtime.read_timeout ...: <path>"``, or
            ``"not read: the program is stopping: <path>"`` (woken by :func:`stop_waiting`).
    """
    if timeout is None:
        return func()
    with _Reads.changed:
        wait, generation = (0.0 if _Reads.stuck else ROOM_WAIT * timeout), _Reads.generation

        def room() -> bool:
            return max_abandoned is None or _Reads.running + _Reads.abandoned < max_abandoned

        _Reads.changed.wait_for(lambda: room() or _Reads.generation != generation, wait)
        if _Reads.generation != generation:
            raise ImageReadError(f"not read: the program is stopping: {os.fspath(path)}", path)
        if not room():
            _Reads.stuck = True
            since = f"none ended within {wait:g} s" if wait else "none has ended since an earlier image waited for one"
            raise ImageReadError(
                f"not read: {_Reads.abandoned} earlier read(s) still run past {READ_TIMEOUT_SETTING}, holding "
                f"their memory, and {MAX_ABANDONED_SETTING} is {max_abandoned}; {since}: {os.fspath(path)}",
                path,
            )
        _Reads.running += 1
    outcome: list[tuple[bool, object]] = []
    state = {"finished": False, "abandoned": False}

    def work() -> None:
        try:
            outcome.append((True, func()))
        except BaseException as exc:  # handed over to the caller's thread
            outcome.append((False, exc))
        finally:
            with _Reads.changed:
                state["finished"] = True
                if state["abandoned"]:
                    outcome.clear()  # nobody takes it: its memory goes now
                    _Reads.abandoned -= 1
                else:
                    _Reads.running -= 1
                _Reads.stuck = False
                _Reads.changed.notify_all()
            done.set()

    done = threading.Event()
    worker = threading.Thread(target=work, name=f"medxai-read {os.path.basename(os.fspath(path))}", daemon=True)
    try:
        worker.start()
    except RuntimeError:  # can't start new thread
        with _Reads.changed:
            _Reads.running -= 1
            _Reads.changed.notify_all()
        raise
    if not done.wait(timeout):
        with _Reads.lock:
            if not state["finished"]:
                state["abandoned"] = True
                _Reads.running -= 1
                _Reads.abandoned += 1
                raise ImageReadError(
                    f"reading took longer than {timeout:g} s ({READ_TIMEOUT_SETTING}): {os.fspath(path)}", path
                )
        done.wait()  # it finished just now: take its result
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[return-value]
    raise value  # type: ignore[misc]
