"""The run folder: its safety checks, its lock, stale temporary files and the resume journal.

A run holds the folder's lock (:mod:`medxai.pipeline.lock`) from start to end, so a
second run on the same folder refuses to start; it removes the temporary files a
killed run left. Finished rows are appended to ``index.partial.csv`` (the journal) as
they complete; a run started again with ``runtime.resume`` reuses the images whose maps
are complete (:meth:`RunFolder.completed`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from medxai.errors import StudyError
from medxai.io import ManifestRow
from medxai.io.formats import file_columns
from medxai.io.index import JOURNAL_NAME, RUN_FOLDERS, RUN_NAME, is_run_file
from medxai.io.writers import (
    DiskFullError,
    human_bytes,
    is_disk_full,
    probe_writable,
    remove_stale_temps,
)
from medxai.pipeline.journal import completed_rows, previous_fingerprint, stale_reason
from medxai.pipeline.lock import RunLock

_OWN_FOLDER = "the run needs a folder of its own that holds no data (e.g. runs/<study>, a new or empty folder)"


class RunFolder:
    """The output folder of a run (``output.dir``): what may be written there, and what a run left there.

    Args:
        out: The folder.
    """

    def __init__(self, out: Path):
        self.out = out
        self._lock: RunLock | None = None

    def check(self, inputs: Mapping[str, Any]) -> None:
        """Refuse inputs the run would overwrite, a folder that is not the run's own, and one that cannot be written.

        Args:
            inputs: The run's input files by config key (``data.manifest``, ``model.path``); a value that
                is no path (a DataFrame manifest) is no file to protect.

        Raises:
            StudyError: naming the config key (see :class:`~medxai.pipeline.decoder.Decoder`).
        """
        clashes = [] if (shared := _shared_folder(self.out)) is None else [f"output.dir: {shared}"]
        for key, path in inputs.items():
            path = path if isinstance(path, (str, os.PathLike)) else None  # a DataFrame manifest is no file
            written = None if path is None else _run_output(self.out, Path(path))
            if written is not None:
                clashes.append(
                    f"{key}: {path} is inside output.dir ({self.out}) where the run writes {written}; "
                    "move it out of the folder, or choose another output.dir"
                )
            elif key == "data.manifest" and path is not None and _inside(Path(path), self.out):
                clashes.append(f"data.manifest: {path} is inside output.dir ({self.out}); {_OWN_FOLDER}")
        if clashes:
            raise StudyError("\n".join(clashes))
        try:
            probe_writable(self.out)
        except OSError as err:
            raise StudyError(f"output.dir: cannot create or write {self.out}: {err}") from err

    def check_sources(self, rows: Sequence[ManifestRow]) -> None:
        """Refuse a folder that holds an image of the manifest (e.g. the data folder itself).

        Raises:
            StudyError: naming ``output.dir`` and an image inside it.
        """
        # an image lies in output.dir when its folder does; a series is a folder itself
        folders = {os.path.dirname(row.path): row.path for row in reversed(rows)}
        folders.update({row.path: row.path for row in rows if os.path.isdir(row.path)})
        for folder, image in folders.items():
            if _inside(Path(folder), self.out):
                raise StudyError(f"output.dir: {self.out} holds the manifest's images (e.g. {image}); {_OWN_FOLDER}")

    @contextlib.contextmanager
    def locked(self, command: str | None = None) -> Iterator[RunLock]:
        """Hold the folder's lock (:mod:`medxai.pipeline.lock`) for the ``with`` body; re-entering is a no-op.

        Raises:
            medxai.pipeline.lock.RunFolderBusy: another command holds it (the message names it).
            StudyError: the lock file cannot be created in ``output.dir``.
        """
        if self._lock is not None:
            yield self._lock
            return
        lock = RunLock(self.out, command)
        try:
            lock.acquire()
        except OSError as err:
            raise StudyError(f"output.dir: cannot create the lock file in {self.out}: {err}") from err
        self._lock = lock
        try:
            yield lock
        finally:
            self._lock = None
            lock.release()

    def remove_stale_temps(self) -> None:
        """Remove the temporary files a killed run left (called holding the lock)."""
        removed = remove_stale_temps(self.out, only=is_run_file)  # the top level is shared with the user's files
        for folder in RUN_FOLDERS:  # the run's own: swept whole
            removed += [f"{folder}/{name}" for name in remove_stale_temps(self.out / folder)]
        if removed:
            shown = ", ".join(removed[:3]) + (" ..." if len(removed) > 3 else "")
            print(
                f"medxai: removed {len(removed)} temporary file(s) left by an interrupted run: {shown}", file=sys.stderr
            )

    def remove(self, names: Sequence[str]) -> None:
        """Delete files (or a volume's ``.sc`` folder) of the run folder, where they exist."""
        for name in names:
            path = self.out / name
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)

    def completed(
        self, rows: Sequence[ManifestRow], fingerprint: str, methods: Collection[str]
    ) -> dict[str, list[dict[str, str]]]:
        """Rows of images whose every map is complete in a previous run of the same settings (``fingerprint``).

        An image is reused only when its manifest row and source file are unchanged
        (:func:`~medxai.pipeline.journal.stale_reason`) and its map files are whole;
        the others are computed again, and a line on stderr says which and why.
        """
        if not (self.out / RUN_NAME).exists():
            return {}
        if previous_fingerprint(self.out) != fingerprint:
            print("medxai: the config or model changed since the last run; recomputing every map", file=sys.stderr)
            return {}
        damaged: dict[str, str] = {}
        finished = completed_rows(self.out, set(methods), damaged)
        manifest = {row.image_id: row for row in rows}
        reused: dict[str, list[dict[str, str]]] = {}
        changed: dict[str, list[str]] = {}
        for image_id, image_rows in finished.items():
            row = manifest.get(image_id)
            if row is None:
                continue  # no longer in the manifest: not in the index either
            reason = stale_reason(image_rows, row)
            if reason is None:
                reused[image_id] = image_rows
            else:
                changed.setdefault(reason, []).append(image_id)
        damaged = {k: v for k, v in damaged.items() if k in manifest}
        if changed:
            what = "; ".join(f"{reason}: {some(ids)}" for reason, ids in changed.items())
            n = sum(map(len, changed.values()))
            print(f"medxai: {n} image(s) changed since the last run ({what}); computing them again", file=sys.stderr)
        if damaged:
            what = "; ".join(f"{image_id}: {problem}" for image_id, problem in list(damaged.items())[:3])
            more = " ..." if len(damaged) > 3 else ""
            print(
                f"medxai: {len(damaged)} image(s) have missing or damaged map files ({what}{more}); computing them "
                "again",
                file=sys.stderr,
            )
        return reused

    def lost_maps(self, index: list[dict[str, Any]]) -> list[str]:
        """Turn the rows of images whose map files are gone into error rows; the study warning, if any.

        A file removed while the run went on (``output.dir`` or its ``maps/`` deleted or cleaned
        by hand or by a job) must not leave an ``ok`` row naming it: the image's rows become errors
        naming the missing file, so a resumed run computes them again.
        """
        gone: dict[str, Path] = {}
        for row in index:
            if row["status"] == "ok" and row["image_id"] not in gone:
                missing = [self.out / name for name in map_files(row) if not (self.out / name).exists()]
                if missing:
                    gone[row["image_id"]] = missing[0]
        if not gone:
            return []
        for row in index:
            if row["image_id"] in gone:
                self.remove(map_files(row))
                error = f"the map file {gone[row['image_id']]} was removed during the run; run again to compute it"
                row.update(no_files(), status="error", error=f"{row['source_path']}: {error}")
        folder = (
            "the output folder was removed or cleaned"
            if not (self.out / RUN_NAME).exists()
            else "map files were removed"
        )
        return [
            (
                f"output.dir: {folder} while the run went on ({self.out}): the {len(gone)} image(s) whose maps are "
                "gone "
                f"are error rows ({some(list(gone))}); run the same command again to compute them"
            )
        ]

    def full_message(
        self,
        err: OSError,
        rows: Sequence[ManifestRow],
        completed: Mapping[str, list[dict[str, str]]],
        new_rows: Mapping[str, list[dict[str, Any]]],
    ) -> str:
        """What a user reads when the disk fills up: where, how much more is needed, how to go on."""
        finished = [rs for rs in new_rows.values() if rs and all(r["status"] != "error" for r in rs)]
        written = 0
        for image_rows in finished:
            for row in image_rows:
                for name in map_files(row):
                    with contextlib.suppress(OSError):
                        written += _size(self.out / name)
        left = max(0, len(rows) - len(completed) - len(finished))
        needed = getattr(err, "needed", None)
        if finished and written:
            estimate = max(needed or 0, int(written / len(finished) * left))
            space = f"about {human_bytes(estimate)} more is needed for the {left} image(s) left"
        else:
            space = f"at least {human_bytes(needed)} more is needed (the write that failed)"
        free = ""
        if getattr(err, "free", None) is None:  # (a DiskFullError's own text says it)
            with contextlib.suppress(OSError):
                free = f" ({human_bytes(shutil.disk_usage(self.out).free)} free now)"
        cause = err.strerror or str(err)
        kept = len(completed) + len(finished)
        return (
            f"output.dir: the disk holding {self.out} is full; the run stopped early: {cause}. "
            f"{space[0].upper()}{space[1:]}{free}. "
            + (f"The {kept} image(s) finished so far are kept in {self.out / JOURNAL_NAME}: " if kept else "")
            + "free some space and run the same command again (runtime.resume: true) to go on"
        )


def map_files(row: Mapping[str, Any]) -> list[str]:
    """The map files an index row names (relative to the run folder)."""
    return [row[k] for k in (*file_columns(), "sd_path") if row.get(k)]


def no_files() -> dict[str, str]:
    """The index cells of a row that names no file (a failed map's)."""
    return {k: "" for k in (*file_columns(), "npy_bytes", "region_path", "sd_path")}


def append(log: BinaryIO, path: Path, text: str) -> None:
    """Append ``text`` to the journal: all of it, or an OSError that names ``path``."""
    data = memoryview(text.encode("utf-8"))
    try:
        while data:
            written = log.write(data)
            if not written:
                raise OSError(errno.ENOSPC, "0 bytes written")
            data = data[written:]
    except OSError as err:
        if is_disk_full(err):
            full = DiskFullError(
                err.errno if err.errno is not None else errno.ENOSPC, f"no space left on the device writing {path}"
            )
            full.path, full.needed = str(path), len(data)
            raise full from err
        raise OSError(
            *([err.errno] if err.errno is not None else []), f"cannot write {path}: {err.strerror or err}"
        ) from err


def some(ids: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` ids, and how many more."""
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder (a volume's ``.sc`` Secondary Captures)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _real(path: Path) -> Path:
    """``path`` with symbolic links and ``..`` resolved (as far as it exists)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies anywhere under it."""
    path, folder = _real(path), _real(folder)
    return path == folder or folder in path.parents


def _shared_folder(out: Path) -> str | None:
    """Why ``out`` is not a folder a run may take as its own (the root or the home folder); None when it may."""
    real = _real(out)
    if real == Path(real.anchor):
        return f"{out} is the root of the file system; {_OWN_FOLDER}"
    try:
        home = _real(Path.home())
    except (KeyError, RuntimeError):  # no home folder known
        return None
    if real == home:
        return f"{out} is the home folder; {_OWN_FOLDER}"
    return None


def _run_output(out: Path, path: Path) -> str | None:
    """What the run (or ``evaluate``/``report``) writes at ``path`` when it lies in the run folder ``out``, or None."""
    try:
        relative = path.resolve().relative_to(out.resolve())
    except (OSError, ValueError):
        return None
    parts = relative.parts
    if not parts:
        return "index.csv, run.json and maps/ (the path is output.dir itself)"
    if parts[0] in RUN_FOLDERS:
        return f"{parts[0]}/"
    return parts[0] if len(parts) == 1 and is_run_file(parts[0]) else None
