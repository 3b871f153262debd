"""The decoder: every configured method x image x target class, written to disk.

Output layout under ``output.dir`` (the formats are the table of :mod:`medxai.io.formats`)::

    maps/<method>/<image id>_c<class>.npy          float32 map in [0, 1] at source geometry
    maps/<method>/<image id>_c<class>.png          colour-mapped map with a colour bar (3D: a montage of
                                                   numbered slices, chosen by output.montage)
    maps/<method>/<image id>_c<class>.ortho.png    (png, 3D) three orthogonal planes through the peak voxel
    maps/<method>/<image id>_c<class>.overlay.png  map over the windowed image, with a colour bar
    maps/<method>/<image id>_c<class>.nii.gz       (nifti) the .npy map with the source's affine
    maps/<method>/<image id>_c<class>.pm.dcm       (dicom) Parametric Map in a new series of the source study
    maps/<method>/<image id>_c<class>.sc.dcm       (dicom) Secondary Capture of the overlay (volumes: a .sc folder)
    regions/<image id>_c<channel>_<region>.npy     (region targets) the explained region, bool, at source geometry
    index.csv                                      one row per (image, method, class)
    run.json                                       provenance: config, versions, checksums, counts

The rooms of a run: the run folder (:mod:`~medxai.pipeline.run_folder`: safety, lock,
stale temporary files, the resume journal), the explainer (:mod:`~medxai.pipeline.explainer`:
load and explain), the map writer (:mod:`~medxai.pipeline.map_writer`: every output format),
provenance (:mod:`~medxai.pipeline.provenance`: run.json, warnings) and the executors
(:mod:`~medxai.pipeline.executors`: where chunks are computed). This module is the loop
that joins them: load, explain, settle, journal.

Finished rows are appended to ``index.partial.csv`` as they complete; a run started
again with ``runtime.resume`` skips images whose maps are complete and ends with the
same ``index.csv`` as an uninterrupted run. "Complete" means: the same settings (the
fingerprint), the same manifest row and source file (the index's ``source_key``), and
every map file there and whole (``npy_bytes``); anything else is computed again. One bad
image never stops the run: its rows say ``error`` with the reason, and name no file.
A full disk stops the run early with :class:`RunStoppedError`: the journal keeps every
image finished so far, and the same command resumes once there is space.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Container, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medxai._progress import progress_bar
from medxai.errors import StudyError
from medxai.io import ManifestRow
from medxai.io.index import INDEX_NAME, JOURNAL_NAME, index_text
from medxai.io.limits import stop_waiting
from medxai.io.writers import is_disk_full, write_text
from medxai.pipeline.config import Config
from medxai.pipeline.executors import LocalExecutor
from medxai.pipeline.explainer import Explainer
from medxai.pipeline.item import Item
from medxai.pipeline.journal import fingerprint
from medxai.pipeline.lock import RunLock
from medxai.pipeline.map_writer import MapWriter
from medxai.pipeline.provenance import Provenance, RunSummary, study_warnings
from medxai.pipeline.run_folder import RunFolder, append

#: Accumulator values (per image and class) held at once; bounds memory for volumes.
_VALUES_PER_STEP = 1 << 23
Done = Callable[[list[ManifestRow], list[dict[str, Any]]], None]

__all__ = ["Decoder", "RunStoppedError", "RunSummary", "StudyError"]


class RunStoppedError(StudyError):
    """The run stopped before its end (a full disk, an index that cannot be written).

    Every image finished before is kept in the journal (``index.partial.csv``): the
    message says what to fix, and running the same command again resumes.
    """


class Decoder:
    """Runs a validated config. Use :func:`run` unless you need the pieces.

    Args:
        config: A validated :class:`medxai.pipeline.config.Config`.
        model: An already loaded Keras model (default: load ``config.model.path``).
        check_output: Check ``output.dir`` first (see Raises); False for a decoder that
            only reads a finished run (e.g. to evaluate a run folder that was moved).
        model_checksum: The SHA-256 of ``config.model.path`` when the caller has just taken it
            (``medxai evaluate`` does, to refuse another model before loading it); else taken here.
        feedback: Say on stderr what is happening while the model loads and the methods are
            built (default: ``runtime.progress``, the progress bar's rule).

    Raises:
        StudyError: the message starts with the config key: ``output.dir`` cannot be created
            or written (it, or a parent, is a file; no permission; a read-only file system) or is
            not a folder of the run's own (the root or home folder, or one holding ``data.manifest``),
            ``data.manifest`` or ``model.path`` is a file the run would overwrite (inside
            ``output.dir``, named like index.csv, run.json, maps/...), or the model,
            preprocessing, methods or targets do not fit.
    """

    def __init__(
        self,
        config: Config,
        model: Any = None,
        *,
        check_output: bool = True,
        model_checksum: str | None = None,
        feedback: bool | None = None,
    ):
        from medxai.io.model import file_checksum  # deferred: TensorFlow starts here

        self.config = config
        self.out = Path(config.output.dir)
        self.folder = RunFolder(self.out)
        if check_output:
            self.folder.check({"data.manifest": config.data.manifest, "model.path": config.model.path})
        self.explainer = Explainer(config, model, feedback=feedback)
        ex = self.explainer
        self.model, self.scores, self.head, self.preprocessor = ex.model, ex.scores, ex.head, ex.preprocessor
        self.methods, self.policy = ex.methods, ex.policy
        self.model_checksum = model_checksum or file_checksum(config.model.path)
        self.fingerprint = fingerprint(config, self.model_checksum)
        self.writer = MapWriter(
            self.folder, config.output, self.preprocessor.to_source, self.policy, self.fingerprint[:16]
        )
        self.provenance = Provenance(
            self.out, config, self.fingerprint, self.model_checksum, self.methods, self.scores, ex.explained
        )
        self._tick: Callable[[float], Any] | None = None  # progress within a chunk (runs in this process)

    def locked(self, command: str | None = None) -> AbstractContextManager[RunLock]:
        """Hold the output folder's lock (:mod:`medxai.pipeline.lock`) for the ``with`` body.

        :meth:`run` takes it itself; hold it around more (``run`` then an evaluation) to
        keep other commands out in between. Re-entering on the same decoder is a no-op.

        Raises:
            medxai.pipeline.lock.RunFolderBusy: another command holds it (the message names it).
            StudyError: the lock file cannot be created in ``output.dir``.
        """
        return self.folder.locked(command)

    def check_sources(self, rows: Sequence[ManifestRow]) -> None:
        """Refuse an ``output.dir`` that holds an image of the manifest (e.g. the data folder itself).

        Raises:
            StudyError: naming ``output.dir`` and an image inside it.
        """
        self.folder.check_sources(rows)

    def error_rows(self, row: ManifestRow, message: str) -> list[dict[str, Any]]:
        """The index rows of an image that failed as a whole (e.g. its Dask workers died), saying ``message``."""
        return self.explainer.error_rows(Item(row), message)

    # ---- the loop
    def process(self, chunks: Sequence[Sequence[ManifestRow]], done: Done) -> None:
        """Compute chunks of images in order; ``done(images, rows)`` gets each chunk once its maps are written.

        The images of a chunk share model batches. Every executor runs this, so a
        chunk gives the same maps wherever it runs. On an exception (Ctrl-C
        included) every chunk already computed is still handed to ``done``.

        Raises:
            medxai.io.writers.DiskFullError: a map write found the disk full. No further
                chunk is computed; ``done`` has had every image written whole before
                (never the images whose writes failed, which are left for a resumed run).
        """
        overlap = self.config.runtime.overlap_io and len(chunks) > 1
        full: list[OSError] = []
        with ThreadPoolExecutor(2) if overlap else nullcontext() as loader, self.writer.threads(overlap):

            def load(chunk: Sequence[ManifestRow]) -> list[Future[Item]] | None:
                """Start reading ``chunk``'s images in the loader threads (None without them)."""
                return None if loader is None else [loader.submit(self.explainer.load, r, self.writer) for r in chunk]

            upcoming = load(chunks[0]) if overlap else None
            unsettled: list[tuple[list[Item], list[dict[str, Any]]]] = []

            def settle(keep: int) -> None:
                while len(unsettled) > keep:
                    done_items, done_rows = unsettled.pop(0)
                    settled, stopped = self.writer.settle(done_rows)
                    if stopped:
                        full.append(next(iter(stopped.values())))
                        done_items = [item for item in done_items if item.row.image_id not in stopped]
                        settled = [row for row in settled if row["image_id"] not in stopped]
                    done([item.row for item in done_items], settled)

            try:
                for index, chunk in enumerate(chunks):
                    items = (
                        [f.result() for f in upcoming]
                        if upcoming is not None
                        else [self.explainer.load(r, self.writer) for r in chunk]
                    )
                    if overlap and index + 1 < len(chunks):
                        upcoming = load(chunks[index + 1])  # read the next images while this chunk computes
                    pending = [
                        row for group in _same_shape_groups(items)
                        for row in self.explainer.explain_group(group, self.writer, self._tick)
                    ]  # fmt: skip
                    unsettled.append((items, pending))
                    settle(keep=1)  # a chunk's writes finish while the next one computes
                    if full:
                        break  # the disk is full: computing more would only fail to write it
            except BaseException:
                if overlap:
                    stop_waiting()  # a loader waiting for room among abandoned reads must not hold the exit back
                raise
            finally:
                settle(keep=0)  # also on Ctrl-C: every computed chunk reaches ``done``
                if overlap and upcoming is not None:
                    for future in upcoming:
                        future.cancel()
        if full:
            raise full[0]

    def chunks(self, rows: Sequence[ManifestRow], skip: Container[str] = ()) -> list[list[ManifestRow]]:
        """The images computed together: consecutive runs of the manifest, less the ``skip`` ids.

        Chunks are cut from the whole manifest before resumed images are dropped, so an
        image meets the same batch companions in a resumed run, and on any executor.
        """
        per_step = max(1, min(self.config.runtime.batch_size, _VALUES_PER_STEP // self.explainer.values_per_image()))
        chunks = ([r for r in rows[i : i + per_step] if r.image_id not in skip] for i in range(0, len(rows), per_step))
        return [chunk for chunk in chunks if chunk]

    # ---- the run
    def run(self, rows: Sequence[ManifestRow], *, progress: bool | None = None, executor: Any = None) -> RunSummary:
        """Process manifest rows; write maps, ``index.csv`` and ``run.json``.

        Holds the output folder's lock from start to end (see :meth:`locked`).

        Args:
            rows: The manifest rows, in the order of the index.
            progress: Show a progress bar (default: ``runtime.progress``).
            executor: Where the chunks are computed (default: here, one after the other;
                :func:`medxai.pipeline.study.run_study` uses the one ``runtime.executor`` names).

        Raises:
            medxai.pipeline.lock.RunFolderBusy: another run (or ``medxai evaluate``/``report``) holds ``output.dir``.
            RunStoppedError: the disk filled up (the run stopped early), or ``index.csv`` could not
                be written; the journal keeps every finished image and the message says how to resume.
            StudyError: the executor cannot start (e.g. no Dask scheduler at ``runtime.dask.address``),
                or ``output.dir`` holds an image of ``rows`` (:meth:`check_sources`).
        """
        self.check_sources(rows)
        executor = LocalExecutor() if executor is None else executor
        show = self.config.runtime.progress if progress is None else progress
        with self.locked(), executor:
            return self._run(rows, show, executor)

    def _run(self, rows: Sequence[ManifestRow], show: bool, executor: Any) -> RunSummary:
        started_at, started = datetime.now(UTC), time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self.folder.remove_stale_temps()
        resume = self.config.runtime.resume
        completed = self.folder.completed(rows, self.fingerprint, [m.name for m in self.methods]) if resume else {}
        journal = self.out / JOURNAL_NAME
        summary = RunSummary(self.out, images=len(rows), resumed=sum(1 for row in rows if row.image_id in completed))
        new_rows: dict[str, list[dict[str, Any]]] = {}
        try:
            if not completed:
                journal.unlink(missing_ok=True)
            else:
                kept = [r for rs in completed.values() for r in rs]
                write_text(journal, index_text(kept, header=True))
            self.provenance.write(started_at, None, None, executor.describe())
            self._compute(rows, completed, new_rows, summary, show, executor, journal)
        except OSError as err:
            if not is_disk_full(err):
                raise
            raise RunStoppedError(self.folder.full_message(err, rows, completed, new_rows)) from err
        per_image = [(row.image_id, completed.get(row.image_id) or new_rows.get(row.image_id, [])) for row in rows]
        index = [r for _, image_rows in per_image for r in image_rows]
        lost = self.folder.lost_maps(index)  # before the count: it turns rows into errors
        for image_id, image_rows in per_image:
            if any(r["status"] == "error" for r in image_rows):
                summary.errors += 1
                summary.failed_ids.append(image_id)
        summary.maps = sum(1 for r in index if r["status"] == "ok")
        summary.warned = len({r["image_id"] for r in index if r.get("warning")})
        summary.warnings = study_warnings(self.config, new_rows) + lost
        for warning in summary.warnings:
            print(f"medxai: warning: {warning}", file=sys.stderr)
        resume_text = (
            f"every finished map is recorded in {journal}: run the same command again (runtime.resume: true) "
            "to write it without computing the maps again"
        )
        try:
            write_text(self.out / INDEX_NAME, index_text(index, header=True))
        except OSError as err:
            fix = "free some space" if is_disk_full(err) else "make the folder writable"
            raise RunStoppedError(
                f"output.dir: cannot write the index: {err}. Nothing is lost: {resume_text}, once you {fix}"
            ) from err
        summary.seconds = time.perf_counter() - started
        try:
            self.provenance.write(started_at, datetime.now(UTC), summary, executor.describe(), index)
        except OSError as err:
            raise RunStoppedError(
                f"output.dir: {INDEX_NAME} is written but the provenance is not: {err}. "
                f"Nothing is lost: {resume_text.replace('to write it', 'to write run.json')}"
            ) from err
        journal.unlink(missing_ok=True)
        self.folder.remove_stale_temps()  # e.g. left by a Dask worker that died mid-write
        return summary

    def _compute(
        self,
        rows: Sequence[ManifestRow],
        completed: Mapping[str, list[dict[str, str]]],
        new_rows: dict[str, list[dict[str, Any]]],
        summary: RunSummary,
        show: bool,
        executor: Any,
        journal: Path,
    ) -> None:
        """Run the executor over the images not ``completed``; journal each chunk's rows as it is done."""
        bar_format = "{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
        # Unbuffered: a write that fails (a full disk) fails here, not later in close().
        with (
            progress_bar(
                len(rows), desc="medxai", unit="img", enabled=show, bar_format=bar_format, initial=summary.resumed
            ) as bar,
            open(journal, "ab", buffering=0) as log,
        ):
            if log.tell() == 0:
                append(log, journal, index_text([], header=True))
            finished = {"images": summary.resumed, "maps": 0}
            computing_since = time.perf_counter()

            def done(images: list[ManifestRow], image_rows: list[dict[str, Any]]) -> None:
                for row in image_rows:
                    new_rows.setdefault(row["image_id"], []).append(row)
                # one write per chunk: a torn write loses whole images at most (read_index drops the torn line)
                append(
                    log,
                    journal,
                    "".join(index_text(new_rows.get(image.image_id, []), header=False) for image in images),
                )
                finished["images"] += len(images)
                finished["maps"] += sum(1 for r in image_rows if r["status"] == "ok")
                rate = finished["maps"] / max(time.perf_counter() - computing_since, 1e-9)
                bar.set_postfix_str(f"{rate:.1f} maps/s", refresh=False)
                bar.update(max(0.0, finished["images"] - bar.n))  # what the ticks have not shown yet

            # In this process the bar also moves as each method finishes a group of images, not once per chunk.
            self._tick = bar.update if getattr(executor, "in_process", False) else None
            try:
                executor.run(self, self.chunks(rows, skip=completed), done)
            finally:
                self._tick = None


def _same_shape_groups(items: list[Item]) -> list[list[Item]]:
    """Split a step into groups whose tensors share a shape (models with free input sizes)."""
    groups: dict[Any, list[Item]] = {}
    for item in items:
        key = None if item.tensor is None else item.tensor.shape
        groups.setdefault(key, []).append(item)
    return list(groups.values())
