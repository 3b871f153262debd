"""The decoder: every configured method x image x target class, written to disk.

Output layout under ``output.dir``::

    maps/<method>/<image id>_c<class>.npy          float32 map in [0, 1] at source geometry
    maps/<method>/<image id>_c<class>.png          colour-mapped map (3D: a montage of slices)
    maps/<method>/<image id>_c<class>.overlay.png  map over the windowed image
    maps/<method>/<image id>_c<class>.nii.gz       (nifti) the .npy map with the source's affine
    maps/<method>/<image id>_c<class>.pm.dcm       (dicom) Parametric Map in a new series of the source study
    maps/<method>/<image id>_c<class>.sc.dcm       (dicom) Secondary Capture of the overlay (volumes: a .sc folder)
    index.csv                                      one row per (image, method, class)
    run.json                                       provenance: config, versions, checksums, counts

Every file is written to a temporary name and renamed, so nothing is ever half
written. Finished rows are appended to ``index.partial.csv`` as they complete; a
run started again with ``runtime.resume`` skips images whose maps are complete
and ends with the same ``index.csv`` as an uninterrupted run. "Complete" means: the
same settings (the fingerprint), the same manifest row and source file (the index's
``source_key``), and every map file there and whole (``npy_bytes``); anything else is
computed again. One bad image never stops the run: its rows say ``error`` with the
reason, and name no file.

A run holds the folder's lock (:mod:`medxai.pipeline.lock`) from start to end, so a
second run on the same folder refuses to start; it removes the temporary files a
killed run left. A full disk stops the run early with :class:`RunStoppedError`: the
journal keeps every image finished so far, and the same command resumes once there
is space. PNG and overlay pictures are at most ``output.max_size`` pixels on their
longest side; the ``.npy``, NIfTI and DICOM maps are always at full size.

Where the chunks of images are computed is the executor's business
(:mod:`medxai.pipeline.executors`: this process, or the workers of a Dask cluster); the
maps, the index and resuming are the same whichever computes them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import shutil
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Container, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from medxai.errors import ModelLoadError, OutputSelectionError, StudyError
from medxai.pipeline.config import Config
from medxai.heatmap import HeatmapPolicy, to_heatmap
from medxai.methods._engine import OUTPUT_PROBABILITIES
from medxai.methods._engine.spec import OutputSpec
from medxai.methods.base import Explanation
from medxai.methods.registry import method_parameters, resolve_method
from medxai.io import ImageReadError, ManifestRow, read_image, safe_id
from medxai.io.limits import must_propagate, stop_waiting
from medxai.io.geometry import default_affine, orientation_code, voxel_spacing
from medxai.io.index import FILE_COLUMNS, INDEX_NAME, JOURNAL_NAME, RUN_FOLDERS, RUN_NAME, index_text, is_run_file
from medxai.io.nifti import NiftiXforms, write_nifti
from medxai.io.writers import (
    DiskFullError, human_bytes, is_disk_full, probe_writable, remove_stale_temps, write_npy, write_png, write_text,
)  # fmt: skip
from medxai.preprocess import PreprocessError, Preprocessor, resize_spatial
from medxai.pipeline.journal import (
    completed_rows, fingerprint, jsonable, previous_fingerprint, source_key, stale_reason, versions,
)  # fmt: skip
from medxai.pipeline.lock import RunLock
from medxai._progress import progress_bar
from medxai.pipeline.targets import predicted_classes, target_rule
from medxai.viz.render import colorize, montage, overlay

T = TypeVar("T")
_PENDING = "_pending_files"  # a row's not yet finished map writes (a Future of its paths)
_STORED = "_stored_range"  # a row's image's stored value range (not an index column)
#: Accumulator values (per image and class) held at once; bounds memory for volumes.
_VALUES_PER_STEP = 1 << 23
#: The index columns a failed map must not keep (it names no file).
_FILE_CELLS = (*FILE_COLUMNS, "npy_bytes")


class RunStoppedError(StudyError):
    """The run stopped before its end (a full disk, an index that cannot be written).

    Every image finished before is kept in the journal (``index.partial.csv``): the
    message says what to fix, and running the same command again resumes.
    """


@dataclass
class RunSummary:
    """What a run did. ``exit_code`` is 0 when every image succeeded, else 1.

    ``warned`` counts the images with a warning in the index (a reader's note, an
    adaptive map short of its tolerance, no class to explain); ``warnings`` are the
    study-wide warnings.
    """

    output_dir: Path
    images: int = 0
    maps: int = 0
    errors: int = 0
    resumed: int = 0
    warned: int = 0
    seconds: float = 0.0
    failed_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evaluation: Any = None  # a medxai.pipeline.evaluation.EvaluationResult when the config has `evaluate:`

    @property
    def exit_code(self) -> int:
        return 0 if self.errors == 0 else 1

    def __str__(self) -> str:
        warned = f", {self.warned} with warnings" if self.warned else ""
        return (
            f"medxai: {self.images} images ({self.resumed} resumed{warned}), {self.maps} maps, "
            f"{self.errors} errors in {self.seconds:.1f} s -> {self.output_dir / INDEX_NAME}"
        )


@dataclass
class _Item:
    """One manifest row on its way through the decoder."""

    row: ManifestRow
    tensor: np.ndarray | None = None
    geometry: Any = None
    display: np.ndarray | None = None
    error: str | None = None
    source_files: list[str] = field(default_factory=list)
    nifti_shape: tuple[int, ...] | None = None  # a NIfTI source's own (X, Y, Z[, 1]) shape
    nifti_xforms: NiftiXforms | None = None  # a NIfTI source's own sform, qform and codes
    placement: dict[str, str] = field(default_factory=dict)  # the index's geometry columns
    stored_range: tuple[float, float] | None = None  # the values the file can store, in the image's units
    source_key: str = ""  # what decides the maps, taken before the read (journal.source_key)
    warnings: list[str] = field(default_factory=list)  # the reader's notes (image.meta["warnings"])


# --------------------------------------------------------------------- helpers
def _clip_text(policy: HeatmapPolicy) -> str:
    clip = policy.clip
    return "" if clip is None else f"{clip.mode}:{clip.low:g}-{clip.high:g}"


def build_methods(config: Config, model: Any) -> list[Any]:
    """The configured methods, built on ``model`` with the run's output, batch size, policy and seed.

    They share one gradient engine (and its compiled traces), owned by the methods:
    dropping them frees the model.
    """
    from medxai.methods._engine.engine import GradientEngine  # deferred: TensorFlow starts here

    runtime = config.runtime
    explained = output_spec(config)
    engine = GradientEngine(model, explained, runtime.jit, runtime.precision)
    methods, seen = [], {}
    for position, spec in enumerate(config.methods):
        cls = resolve_method(spec.registered)
        name = spec.name if spec.method is not None else cls.name
        if name in seen:
            raise ValueError(
                f"methods[{position}]: {name} is configured twice (also methods[{seen[name]}]); "
                "one run writes one map per method: give each entry its own name "
                "({name: <instance>, method: <method>, ...})"
            )
        seen[name] = position
        params = dict(spec.params)
        if "seed" in _parameter_names(cls) and "seed" not in params:
            params["seed"] = config.runtime.seed
        method = cls(
            model,
            output=explained,
            batch_size=config.runtime.batch_size,
            heatmap=config.heatmap,
            jit=config.runtime.jit,
            precision=config.runtime.precision,
            engine=engine,
            **params,
        )
        method.name = name  # a named instance: what the index, the folders and the report show
        methods.append(method)
    return methods


def output_spec(config: Config, explain: str | None = None) -> OutputSpec:
    """The config's ``model.output`` (or ``explain``), ``model.output_kind`` and ``model.activation``."""
    model = config.model
    return OutputSpec(model.output if explain is None else explain, model.output_kind, model.activation)


def _parameter_names(cls: type) -> set[str]:
    return set(method_parameters(cls))


def _format(value: float | None, digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}g}"


# ---------------------------------------------------------------------- decoder
class LocalExecutor:
    """Computes every chunk in this process, one after the other (the default executor)."""

    name = "local"

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records under ``executor``."""
        return {"name": self.name}

    def run(self, decoder: Decoder, chunks: Sequence[Sequence[ManifestRow]], done: Callable[..., None]) -> None:
        """Compute ``chunks`` in order; ``done`` gets each chunk as its maps are written."""
        decoder.process(chunks, done)


class Decoder:
    """Runs a validated config. Use :func:`run` unless you need the pieces.

    Args:
        config: A validated :class:`medxai.pipeline.config.Config`.
        model: An already loaded Keras model (default: load ``config.model.path``).
        check_output: Check ``output.dir`` first (see Raises); False for a decoder that
            only reads a finished run (e.g. to evaluate a run folder that was moved).

    Raises:
        StudyError: the message starts with the config key: ``output.dir`` cannot be created
            or written (it, or a parent, is a file; no permission; a read-only file system) or is
            not a folder of the run's own (the root or home folder, or one holding ``data.manifest``),
            ``data.manifest`` or ``model.path`` is a file the run would overwrite (inside
            ``output.dir``, named like index.csv, run.json, maps/...), or the model,
            preprocessing, methods or targets do not fit.
    """

    def __init__(self, config: Config, model: Any = None, *, check_output: bool = True):
        from medxai.io.model import file_checksum, load_model  # deferred: TensorFlow starts here
        from medxai.methods._engine.engine import GradientEngine

        self.config = config
        self.out = Path(config.output.dir)
        if check_output:
            self._check_output()
        try:
            if model is None:
                model = load_model(
                    config.model.path,
                    custom_objects=config.model.custom_objects,
                    trust_saved_model=config.model.trust_saved_model,
                )
            self.model = model
        except ModelLoadError as err:
            key = "model" if str(err).startswith("custom_objects") else "model.path"
            raise StudyError(f"{key}: {err}") from err
        try:
            self.scores = GradientEngine(self.model, output_spec(config, OUTPUT_PROBABILITIES))  # scores are probabilities
        except OutputSelectionError as err:
            raise StudyError(f"model: the scores (probabilities) cannot be computed: {err}") from err
        self.head = self.scores.head
        self._witnessed = False  # the study's first batch has not yet confirmed what the output is
        try:
            self.preprocessor = Preprocessor(config.preprocess, self.scores.input_shape)
        except ValueError as err:
            raise StudyError(f"preprocess: {err}") from err
        try:
            self.methods = build_methods(config, self.model)
            self._explained = {m.name: getattr(getattr(m, "engine", None), "explained", "") for m in self.methods}
        except OutputSelectionError as err:
            raise StudyError(f"model.output: {err}") from err
        except (ValueError, TypeError) as err:
            raise StudyError(str(err) if str(err).startswith("methods") else f"methods: {err}") from err
        self.multi_label = self.head.multi_label
        self.class_names = config.model.class_names
        try:
            self.targets = target_rule(config.targets, self.scores.n_outputs, self.class_names, multi_label=self.multi_label)
        except ValueError as err:
            raise StudyError(str(err) if str(err).startswith(("targets", "model.")) else f"targets: {err}") from err
        self.model_checksum = file_checksum(config.model.path)
        self.policy = config.heatmap
        self._writer: ThreadPoolExecutor | None = None
        self.formats = set(config.output.formats)
        self.fingerprint = fingerprint(config, self.model_checksum)
        self._geometry: dict[str, dict[str, str]] = {}
        self._tick: Callable[[float], Any] | None = None  # progress within a chunk (local runs)
        self._lock: RunLock | None = None

    # ---- the output folder
    def _check_output(self) -> None:
        """Refuse inputs the run would overwrite, a folder that is not the run's own, and one that cannot be written."""
        clashes = [] if (shared := _shared_folder(self.out)) is None else [f"output.dir: {shared}"]
        for key, path in (("data.manifest", self.config.data.manifest), ("model.path", self.config.model.path)):
            written = None if path is None else _run_output(self.out, Path(path))
            if written is not None:
                clashes.append(
                    f"{key}: {path} is inside output.dir ({self.out}) where the run writes {written}; "
                    "move it out of the folder, or choose another output.dir"
                )
            elif key == "data.manifest" and _inside(Path(path), self.out):
                clashes.append(f"data.manifest: {path} is inside output.dir ({self.out}); {_OWN_FOLDER}")
        if clashes:
            raise StudyError("\n".join(clashes))
        try:
            probe_writable(self.out)
        except OSError as err:
            raise StudyError(f"output.dir: cannot create or write {self.out}: {err}") from err

    @contextlib.contextmanager
    def locked(self, command: str | None = None) -> Iterator[RunLock]:
        """Hold the output folder's lock (:mod:`medxai.pipeline.lock`) for the ``with`` body.

        :meth:`run` takes it itself; hold it around more (``run`` then an evaluation) to
        keep other commands out in between. Re-entering on the same decoder is a no-op.

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

    def _remove_stale_temps(self) -> None:
        """Remove the temporary files a killed run left (called holding the lock)."""
        removed = remove_stale_temps(self.out, only=is_run_file)  # the top level is shared with the user's files
        for folder in RUN_FOLDERS:  # the run's own: swept whole
            removed += [f"{folder}/{name}" for name in remove_stale_temps(self.out / folder)]
        if removed:
            shown = ", ".join(removed[:3]) + (" ..." if len(removed) > 3 else "")
            print(f"medxai: removed {len(removed)} temporary file(s) left by an interrupted run: {shown}", file=sys.stderr)

    def check_sources(self, rows: Sequence[ManifestRow]) -> None:
        """Refuse an ``output.dir`` that holds an image of the manifest (e.g. the data folder itself).

        Raises:
            StudyError: naming ``output.dir`` and an image inside it.
        """
        # an image lies in output.dir when its folder does; a series is a folder itself
        folders = {os.path.dirname(row.path): row.path for row in reversed(rows)}
        folders.update({row.path: row.path for row in rows if os.path.isdir(row.path)})
        for folder, image in folders.items():
            if _inside(Path(folder), self.out):
                raise StudyError(f"output.dir: {self.out} holds the manifest's images (e.g. {image}); {_OWN_FOLDER}")

    # ---- resume
    def _completed(self, rows: Sequence[ManifestRow] = ()) -> dict[str, list[dict[str, str]]]:
        """Rows of images whose every map is complete in a previous run of the same config.

        An image is reused only when its manifest row and source file are unchanged
        (:func:`~medxai.pipeline.journal.stale_reason`) and its map files are whole;
        the others are computed again, and a line on stderr says which and why.
        """
        if not self.config.runtime.resume or not (self.out / RUN_NAME).exists():
            return {}
        if previous_fingerprint(self.out) != self.fingerprint:
            print("medxai: the config or model changed since the last run; recomputing every map", file=sys.stderr)
            return {}
        damaged: dict[str, str] = {}
        finished = completed_rows(self.out, {m.name for m in self.methods}, damaged)
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
            what = "; ".join(f"{reason}: {_some(ids)}" for reason, ids in changed.items())
            n = sum(map(len, changed.values()))
            print(f"medxai: {n} image(s) changed since the last run ({what}); computing them again", file=sys.stderr)
        if damaged:
            what = "; ".join(f"{image_id}: {problem}" for image_id, problem in list(damaged.items())[:3])
            more = " ..." if len(damaged) > 3 else ""
            print(
                f"medxai: {len(damaged)} image(s) have missing or damaged map files ({what}{more}); computing them again",
                file=sys.stderr,
            )
        return reused

    # ---- per-image work
    def _load(self, row: ManifestRow) -> _Item:
        """Read and preprocess one image and place it; any failure (but Ctrl-C) is the item's error, naming the file."""
        item = _Item(row)
        try:
            item.source_key = source_key(row)  # before the read: a file changed while read never looks unchanged
            image = read_image(
                row.path,
                series_uid=row.series_uid,
                max_pixels=self.config.data.max_pixels,
                timeout=self.config.runtime.read_timeout,
                max_abandoned=self.config.runtime.max_abandoned_reads,
            )
            item.warnings = [str(w) for w in (image.meta.get("warnings") or [])]
            if "dicom" in self.formats and image.kind != "dicom":
                raise ValueError(
                    f"output.formats: dicom needs a DICOM source, and {row.path} is {image.kind.upper()}; "
                    "leave 'dicom' out of output.formats for runs with other images"
                )
            item.tensor, item.geometry = self.preprocessor(image)
            if self.formats & {"overlay", "dicom"}:
                item.display = self.preprocessor.display(image)
            item.source_files = list(image.meta.get("source_files", []))
            stored = image.meta.get("stored_range")
            item.stored_range = None if stored is None else (float(stored[0]), float(stored[1]))
            item.nifti_shape = image.meta.get("shape_xyz") if image.kind == "nifti" else None
            item.nifti_xforms = image.meta.get("nifti_xforms") if image.kind == "nifti" else None
            item.placement = _placement(item.geometry)
        except BaseException as err:  # a reader's panic (pyo3 PanicException) is a BaseException
            if must_propagate(err):
                raise
            item.error = _image_error(err, row.path)
            item.tensor = item.display = None
            item.placement = {}
        return item

    def _classes(self, item: _Item, scores: np.ndarray) -> list[int]:
        return self.targets.select(scores, item.row.labels)

    def _error_rows(self, item: _Item, message: str, classes: Sequence[int | None] = (None,)) -> list[dict]:
        return [
            self._row(item, method.name, c, status="error", error=message)
            for method in self.methods
            for c in classes
        ]

    def _row(self, item: _Item, method: str, class_index: int | None, **values: Any) -> dict[str, Any]:
        row = {
            "image_id": item.row.image_id,
            "source_path": item.row.path,
            "series_uid": item.row.series_uid or "",
            "method": method,
            "class_index": "" if class_index is None else class_index,
            "class_name": "" if class_index is None or self.class_names is None else self.class_names[class_index],
            "label": ";".join(map(str, item.row.labels)),
            "status": "ok",
            "reduce": self.policy.reduce,
            "polarity": self.policy.polarity,
            "clip": _clip_text(self.policy),
            "explained": self._explained.get(method, ""),
            "output_kind": self.head.kind,
            "activation": self.head.activation,
            "mask_path": item.row.mask_path or "",
            **item.placement,
            "source_key": item.source_key,
            _STORED: item.stored_range,
        }
        row.update(values)
        if item.warnings:
            row["warning"] = "; ".join([*item.warnings, *([str(row["warning"])] if row.get("warning") else [])])
        return row

    def _write_map(self, item: _Item, method: str, class_index: int, attributions: np.ndarray) -> dict[str, str]:
        """Write one map in every format; on any failure remove what this call wrote, then raise."""
        heatmap = self.preprocessor.to_source(to_heatmap(attributions, self.policy), item.geometry)
        stem = Path("maps") / method / f"{safe_id(item.row.image_id)}_c{class_index}"
        paths = {k: "" for k in FILE_COLUMNS}
        try:
            self._write_formats(item, method, class_index, heatmap, stem, paths)
        except BaseException:
            candidates = [v for v in paths.values() if v]
            if "dicom" in self.formats:
                candidates += [f"{stem}.pm.dcm", f"{stem}.sc.dcm", f"{stem}.sc"]
            _remove(self.out, candidates)
            raise
        written = {k: Path(v).as_posix() if v else "" for k, v in paths.items()}
        written["npy_bytes"] = str(os.path.getsize(self.out / paths["npy_path"])) if paths["npy_path"] else ""
        return written

    def _write_formats(
        self, item: _Item, method: str, class_index: int, heatmap: np.ndarray, stem: Path, paths: dict[str, str]
    ) -> None:
        """The files of one map; ``paths`` gets each one's name before it is written."""
        if "npy" in self.formats:
            paths["npy_path"] = f"{stem}.npy"
            write_npy(self.out / paths["npy_path"], heatmap.astype(np.float32))
        if self.formats & {"png", "overlay"}:
            small, display = self._picture_size(heatmap, item.display if "overlay" in self.formats else None)
        if "png" in self.formats:
            paths["png_path"] = f"{stem}.png"
            write_png(self.out / paths["png_path"], colorize(small, self.config.output.colormap))
        if "overlay" in self.formats:
            paths["overlay_path"] = f"{stem}.overlay.png"
            picture = overlay(
                display,
                small,
                colormap=self.config.output.colormap,
                alpha=self.config.output.alpha,
                outline=self.config.output.overlay_outline,
            )
            write_png(self.out / paths["overlay_path"], picture)
        if "nifti" in self.formats:
            paths["nifti_path"] = f"{stem}.nii.gz"
            affine = item.geometry.affine if item.geometry.affine is not None else default_affine(None, heatmap.ndim)
            write_nifti(
                self.out / paths["nifti_path"], heatmap, affine, shape_xyz=item.nifti_shape, xforms=item.nifti_xforms
            )
        if "dicom" in self.formats:
            paths.update(self._write_dicom(item, method, class_index, heatmap, stem))

    def _picture_size(
        self, heatmap: np.ndarray, display: np.ndarray | None, *, montage_of_slices: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The map (and display image) shrunk so that its picture is at most ``output.max_size`` on its longest side.

        A volume's picture is a montage of slices, so the slices shrink until the montage fits;
        with ``montage_of_slices=False`` (one picture per slice) each slice must fit.
        """
        limit = self.config.output.max_size
        if heatmap.ndim == 3 and montage_of_slices:
            grid = montage(np.zeros((heatmap.shape[0], 1, 1), np.uint8)).shape  # (rows, columns) of slices
            extent = (grid[0] * heatmap.shape[1], grid[1] * heatmap.shape[2])
        else:
            extent = heatmap.shape
        scale = limit / max(extent)
        if scale >= 1:
            return heatmap, display
        shape = (*heatmap.shape[:-2], *(max(1, int(n * scale)) for n in heatmap.shape[-2:]))
        small = np.clip(resize_spatial(heatmap[..., np.newaxis], shape)[..., 0], 0.0, 1.0)
        if display is not None:
            display = np.clip(resize_spatial(display, shape), 0.0, 1.0)
        return small, display

    def _write_dicom(self, item: _Item, method: str, class_index: int, heatmap: np.ndarray, stem: Path) -> dict[str, str]:
        """The Parametric Map and the overlay's Secondary Capture(s), in new series of the source study."""
        from medxai.io.dicom_export import write_dicom_outputs  # deferred: highdicom loads only when asked for

        output = self.config.output
        small, display = self._picture_size(heatmap, item.display, montage_of_slices=False)
        if heatmap.ndim == 2:
            pictures = overlay(display, small, colormap=output.colormap, alpha=output.alpha, outline=output.overlay_outline)
        else:  # one picture per slice, not the montage of the overlay PNG
            pictures = np.stack([
                overlay(d, h, colormap=output.colormap, alpha=output.alpha, outline=output.overlay_outline)
                for d, h in zip(display, small)
            ])  # fmt: skip
        written = write_dicom_outputs(
            heatmap,
            pictures,
            item.source_files,
            self.out / stem,
            method=method,
            class_index=class_index,
            run_id=self.fingerprint[:16],
        )
        return {k: Path(v).relative_to(self.out).as_posix() for k, v in written.items()}

    def _explain(self, method: Any, items: list[_Item], classes: list[list[int]]):
        """Explain every (image, class) pair of a group in one packed call."""
        owners = [i for i, cs in enumerate(classes) for _ in cs]
        images = np.stack([items[i].tensor for i in owners])
        targets = [c for cs in classes for c in cs]
        explain = getattr(method, "explain", None)
        if explain is not None:
            return explain(images, targets)
        return Explanation(method.attribute(images, targets))

    def _predict(self, items: list[_Item]) -> np.ndarray:
        """The scores (probabilities) of a group of images, one row per image."""
        return self.scores.predict(np.stack([item.tensor for item in items]), self.config.runtime.batch_size)

    def _process_group(self, items: list[_Item]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        good = [item for item in items if item.error is None]
        for item in items:
            if item.error is not None:
                rows.extend(self._error_rows(item, item.error))
        if not good:
            self._progress(len(items))
            return rows
        self._witness(good)
        predicted, failed = _each_alone(lambda ix: self._predict([good[i] for i in ix]), len(good))
        for i, err in failed.items():
            rows.extend(self._error_rows(good[i], _image_error(err, good[i].row.path)))
        scored = sorted((i, score) for ix, scores in predicted for i, score in zip(ix, scores))
        ready, classes, score_of = [], [], []
        for item, score in ((good[i], score) for i, score in scored):
            item.placement = {**item.placement, "predicted": ";".join(map(str, predicted_classes(score, self.multi_label)))}
            try:
                chosen = self._classes(item, score)
            except Exception as err:  # noqa: BLE001 - e.g. a label the model has no class for
                rows.extend(self._error_rows(item, _image_error(err, item.row.path)))
                continue
            if not chosen:
                reason = f"no class to explain: none scored at or over {self.targets.threshold:g}"
                rows.extend(self._row(item, method.name, None, status="skipped", warning=reason) for method in self.methods)
                continue
            ready.append(item)
            classes.append(chosen)
            score_of.append(score)
        for method in self.methods:
            started = time.perf_counter()
            explained, failed = _each_alone(
                lambda ix, method=method: self._explain(method, [ready[i] for i in ix], [classes[i] for i in ix]),
                len(ready),
            )
            for i, err in failed.items():
                item = ready[i]
                rows.extend(
                    self._row(item, method.name, c, status="error", error=_image_error(err, item.row.path))
                    for c in classes[i]
                )
            for group, explanation in explained:
                relative = explanation.relative_delta
                n_maps = sum(len(classes[i]) for i in group)
                seconds = (time.perf_counter() - started) / max(1, n_maps)
                k = 0
                for i in group:
                    item, score = ready[i], score_of[i]
                    for c in classes[i]:
                        row = self._row(
                            item,
                            method.name,
                            c,
                            score=_format(float(score[c])),
                            relative_delta=_format(None if relative is None else float(relative[k])),
                            steps=_item(explanation.steps, k),
                            warning=_item(explanation.warnings, k),
                            seconds=f"{seconds:.4f}",
                            evaluations=_item(explanation.evaluations, k),
                        )
                        row[_PENDING] = self._submit(self._write_map, item, method.name, c, explanation.attributions[k])
                        rows.append(row)
                        k += 1
            self._progress(len(items) / len(self.methods))
        return rows

    def _witness(self, items: list[_Item]) -> None:
        """The study's first batch as a second witness of what the model outputs (where only probes said).

        Raises:
            StudyError: the study's outputs look unlike the probe images' (see
                :meth:`medxai.methods._engine.output.Head.check_values`).
        """
        if self._witnessed:
            return
        if self.head.witness == "values":
            images = np.stack([item.tensor for item in items[: self.config.runtime.batch_size]])
            values = np.asarray(self.model(images, training=False))
            try:
                self.head.check_values(values)
            except OutputSelectionError as err:
                raise StudyError(f"model.output_kind: {err}") from err
        self._witnessed = True

    def _progress(self, images: float) -> None:
        if self._tick is not None:
            self._tick(images)

    def _submit(self, function: Any, *args: Any) -> Future:
        """Run now, or on the writer threads when I/O overlaps the computation."""
        if self._writer is not None:
            return self._writer.submit(function, *args)
        future: Future = Future()
        try:
            future.set_result(function(*args))
        except BaseException as err:  # delivered by _settle, like a thread's failure
            if must_propagate(err):
                raise
            future.set_exception(err)
        return future

    def _settle(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, OSError]]:
        """Wait for the rows' map files; a failed write, or any failed map of an image, fails all its rows.

        Error rows name no file: the files of an image's other maps are removed.

        Returns:
            The rows, and the images whose writes found the disk full (with the first such error).
        """
        full: dict[str, OSError] = {}
        for row in rows:
            future = row.pop(_PENDING, None)
            if future is None:
                continue
            try:
                row.update(future.result())
            except BaseException as err:  # one map's failure is its rows' error, never the run's
                if must_propagate(err):
                    raise
                if is_disk_full(err):
                    full.setdefault(row["image_id"], err)  # type: ignore[arg-type]
                row.update(status="error", error=_image_error(err, row["source_path"]))
        failed = {r["image_id"]: r["error"] for r in rows if r["status"] == "error"}
        for r in rows:
            if r["image_id"] in failed and r["status"] == "ok":
                r.update(status="error", error=f"another map of this image failed: {failed[r['image_id']]}")
            if r["status"] == "error":
                _remove(self.out, [r[k] for k in FILE_COLUMNS if r.get(k)])
                r.update({k: "" for k in _FILE_CELLS})
        return rows, full

    # ---- the run
    def process(
        self, chunks: Sequence[Sequence[ManifestRow]], done: Callable[[list[ManifestRow], list[dict[str, Any]]], None]
    ) -> None:
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
        with ThreadPoolExecutor(2) if overlap else nullcontext() as loader, ThreadPoolExecutor(2) if overlap else nullcontext() as writer:
            self._writer = writer
            load = (lambda chunk: [loader.submit(self._load, r) for r in chunk]) if overlap else None
            upcoming = load(chunks[0]) if overlap else None
            unsettled: list[tuple[list[_Item], list[dict[str, Any]]]] = []

            def settle(keep: int) -> None:
                while len(unsettled) > keep:
                    done_items, done_rows = unsettled.pop(0)
                    settled, stopped = self._settle(done_rows)
                    if stopped:
                        full.append(next(iter(stopped.values())))
                        done_items = [item for item in done_items if item.row.image_id not in stopped]
                        settled = [row for row in settled if row["image_id"] not in stopped]
                    done([item.row for item in done_items], settled)

            try:
                for index, chunk in enumerate(chunks):
                    items = [f.result() for f in upcoming] if overlap else [self._load(r) for r in chunk]
                    if overlap and index + 1 < len(chunks):
                        upcoming = load(chunks[index + 1])  # read the next images while this chunk computes
                    pending = [row for group in _same_shape_groups(items) for row in self._process_group(group)]
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
                self._writer = None
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
        per_step = max(1, min(self.config.runtime.batch_size, _VALUES_PER_STEP // self._values_per_image()))
        chunks = ([r for r in rows[i : i + per_step] if r.image_id not in skip] for i in range(0, len(rows), per_step))
        return [chunk for chunk in chunks if chunk]

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
        started_at, started = datetime.now(timezone.utc), time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        completed = self._completed(rows)
        journal = self.out / JOURNAL_NAME
        summary = RunSummary(self.out, images=len(rows), resumed=sum(1 for row in rows if row.image_id in completed))
        new_rows: dict[str, list[dict[str, Any]]] = {}
        try:
            if not completed:
                journal.unlink(missing_ok=True)
            else:
                kept = [r for rs in completed.values() for r in rs]
                write_text(journal, index_text(kept, header=True))
            self._write_run_json(started_at, None, None, executor.describe())
            self._compute(rows, completed, new_rows, summary, show, executor, journal)
        except OSError as err:
            if not is_disk_full(err):
                raise
            raise RunStoppedError(self._full_message(err, rows, completed, new_rows)) from err
        per_image = [(row.image_id, completed.get(row.image_id) or new_rows.get(row.image_id, [])) for row in rows]
        index = [r for _, image_rows in per_image for r in image_rows]
        lost = self._lost_maps(index)  # before the count: it turns rows into errors
        for image_id, image_rows in per_image:
            if any(r["status"] == "error" for r in image_rows):
                summary.errors += 1
                summary.failed_ids.append(image_id)
        summary.maps = sum(1 for r in index if r["status"] == "ok")
        summary.warned = len({r["image_id"] for r in index if r.get("warning")})
        summary.warnings = self._study_warnings(new_rows) + lost
        for warning in summary.warnings:
            print(f"medxai: warning: {warning}", file=sys.stderr)
        self._geometry = {
            r["image_id"]: {k: r.get(k, "") for k in ("source_shape", "spacing", "orientation")}
            for r in reversed(index)
            if r.get("source_shape")
        }
        resume = (
            f"every finished map is recorded in {journal}: run the same command again (runtime.resume: true) "
            "to write it without computing the maps again"
        )
        try:
            write_text(self.out / INDEX_NAME, index_text(index, header=True))
        except OSError as err:
            fix = "free some space" if is_disk_full(err) else "make the folder writable"
            raise RunStoppedError(f"output.dir: cannot write the index: {err}. Nothing is lost: {resume}, once you {fix}") from err
        summary.seconds = time.perf_counter() - started
        try:
            self._write_run_json(started_at, datetime.now(timezone.utc), summary, executor.describe())
        except OSError as err:
            raise RunStoppedError(
                f"output.dir: {INDEX_NAME} is written but the provenance is not: {err}. "
                f"Nothing is lost: {resume.replace('to write it', 'to write run.json')}"
            ) from err
        journal.unlink(missing_ok=True)
        self._remove_stale_temps()  # e.g. left by a Dask worker that died mid-write
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
        with progress_bar(len(rows), desc="medxai", unit="img", enabled=show, bar_format=bar_format) as bar, open(journal, "ab", buffering=0) as log:
            if log.tell() == 0:
                _append(log, journal, index_text([], header=True))
            bar.update(summary.resumed)
            finished = {"images": summary.resumed, "maps": 0}
            computing_since = time.perf_counter()

            def done(images: list[ManifestRow], image_rows: list[dict[str, Any]]) -> None:
                for row in image_rows:
                    new_rows.setdefault(row["image_id"], []).append(row)
                # one write per chunk: a torn write loses whole images at most (read_index drops the torn line)
                _append(log, journal, "".join(index_text(new_rows.get(image.image_id, []), header=False) for image in images))
                finished["images"] += len(images)
                finished["maps"] += sum(1 for r in image_rows if r["status"] == "ok")
                rate = finished["maps"] / max(time.perf_counter() - computing_since, 1e-9)
                bar.set_postfix_str(f"{rate:.1f} maps/s", refresh=False)
                bar.update(max(0.0, finished["images"] - bar.n))  # what the ticks have not shown yet

            # Here the bar also moves as each method finishes a group of images, not once per chunk.
            self._tick = bar.update if isinstance(executor, LocalExecutor) else None
            try:
                executor.run(self, self.chunks(rows, skip=completed), done)
            finally:
                self._tick = None

    def _lost_maps(self, index: list[dict[str, Any]]) -> list[str]:
        """Turn the rows of images whose map files are gone into error rows; the study warning, if any.

        A file removed while the run went on (``output.dir`` or its ``maps/`` deleted or cleaned
        by hand or by a job) must not leave an ``ok`` row naming it: the image's rows become errors
        naming the missing file, so a resumed run computes them again.
        """
        gone: dict[str, Path] = {}
        for row in index:
            if row["status"] == "ok" and row["image_id"] not in gone:
                missing = [self.out / row[k] for k in FILE_COLUMNS if row.get(k) and not (self.out / row[k]).exists()]
                if missing:
                    gone[row["image_id"]] = missing[0]
        if not gone:
            return []
        for row in index:
            if row["image_id"] in gone:
                _remove(self.out, [row[k] for k in FILE_COLUMNS if row.get(k)])
                error = f"the map file {gone[row['image_id']]} was removed during the run; run again to compute it"
                row.update({k: "" for k in _FILE_CELLS}, status="error", error=f"{row['source_path']}: {error}")
        folder = "the output folder was removed or cleaned" if not (self.out / RUN_NAME).exists() else "map files were removed"
        return [(
            f"output.dir: {folder} while the run went on ({self.out}): the {len(gone)} image(s) whose maps are gone "
            f"are error rows ({_some(list(gone))}); run the same command again to compute them"
        )]

    def _full_message(
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
                for column in FILE_COLUMNS:
                    with contextlib.suppress(OSError):
                        if row.get(column):
                            written += _size(self.out / row[column])
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

    def _study_warnings(self, rows: Mapping[str, list[dict[str, Any]]]) -> list[str]:
        """Study-wide problems no single image shows: images stored on different scales fed to the model unscaled."""
        if self.config.preprocess.scale is not None:
            return []
        counts: dict[tuple[float, float], int] = {}
        for image_rows in rows.values():
            stored = next((r.get(_STORED) for r in image_rows if r.get(_STORED) is not None), None)
            if stored is not None:
                counts[tuple(stored)] = counts.get(tuple(stored), 0) + 1
        if len(counts) < 2:
            return []
        listed = ", ".join(f"{lo:g}..{hi:g} in {n} image(s)" for (lo, hi), n in sorted(counts.items(), key=lambda kv: -kv[1]))
        return [
            f"the images differ in stored value range ({listed}) and preprocess.scale is none, so the model "
            "sees them on different scales; set preprocess.scale: stored_range (or minmax) unless the model "
            "was trained on raw values"
        ]

    def _values_per_image(self) -> int:
        shape = [n for n in self.scores.input_shape if n is not None]
        kind = self.targets.kind
        if kind == "all" or (kind in ("threshold", "label") or (kind == "predicted" and self.multi_label)):
            classes = self.scores.n_outputs  # as many as every class
        else:
            classes = self.targets.top_k if kind == "top_k" else len(self.targets.classes) if kind == "list" else 1
        return max(1, int(np.prod(shape)) * classes)

    def _write_run_json(
        self, started: datetime, ended: datetime | None, summary: RunSummary | None, executor: Mapping[str, Any]
    ) -> None:
        record = {
            "medxai": "run",
            "fingerprint": self.fingerprint,
            "status": "finished" if summary is not None else "running",
            "started": started.isoformat(),
            "ended": None if ended is None else ended.isoformat(),
            "config": self.config.to_dict(),
            "methods": [
                {"name": m.name, "method": type(m).name, "params": jsonable(m.params())} for m in self.methods
            ],
            "heatmap": jsonable(self.policy.to_dict()),
            "model": {
                "path": str(self.config.model.path),
                "sha256": self.model_checksum,
                "input_shape": list(self.scores.input_shape),
                "classes": self.scores.n_outputs,
                "class_names": None if self.class_names is None else list(self.class_names),
                "multi_label": self.multi_label,
                "output_kind": self.head.kind,
                "output_kind_witness": self.head.witness,
                "activation": self.head.activation,
                "scores": self.scores.explained,
                "explained": "; ".join(dict.fromkeys(v for v in self._explained.values() if v)),
            },
            "geometry": {
                "axes": "maps (.npy, .png) are in the source array's order: (rows, cols) for 2D, "
                "(slices, rows, cols) for 3D; for NIfTI sources (Z, Y, X), the transpose of nibabel's (X, Y, Z). "
                "The NIfTI maps are in the file's (X, Y, Z) order with the source's affine.",
                "orientation": "per .npy axis, the RAS letter it increases towards (nibabel's aff2axcodes); "
                "empty when the source has no position in the patient",
                "images": dict(sorted(self._geometry.items())) if summary is not None else {},
            },
            "versions": versions(),
            "host": platform.node(),
            "executor": jsonable(dict(executor)),
            "warnings": [] if summary is None else summary.warnings,
            "counts": None
            if summary is None
            else {
                "images": summary.images,
                "maps": summary.maps,
                "errors": summary.errors,
                "resumed": summary.resumed,
                "warned": summary.warned,
                "seconds": round(summary.seconds, 3),
            },
        }
        write_text(self.out / RUN_NAME, json.dumps(record, indent=2, default=str) + "\n")


def _placement(geometry: Any) -> dict[str, str]:
    """The index's geometry columns: the source shape, spacing (mm) and orientation code of the maps' axes.

    The orientation code is left empty when the file gave no position in the patient (PNG, NPY, radiographs),
    and the spacing and orientation when its affine is not finite (a hostile NIfTI header).
    """
    shape = tuple(geometry.source_spatial_shape)
    affine = geometry.affine
    if affine is None:
        return {"source_shape": "x".join(map(str, shape)), "spacing": "", "orientation": ""}
    spacing = voxel_spacing(affine, len(shape))
    return {
        "source_shape": "x".join(map(str, shape)),
        "spacing": "x".join(f"{v:.6g}" for v in spacing) if np.isfinite(spacing).all() else "",
        "orientation": orientation_code(affine, len(shape)) if geometry.patient_geometry else "",
    }


def _item(values: np.ndarray | None, k: int) -> Any:
    """Entry ``k`` of an optional per-map array, for the index ("" when absent)."""
    return "" if values is None else values[k]


def _same_shape_groups(items: list[_Item]) -> list[list[_Item]]:
    """Split a step into groups whose tensors share a shape (models with free input sizes)."""
    groups: dict[Any, list[_Item]] = {}
    for item in items:
        key = None if item.tensor is None else item.tensor.shape
        groups.setdefault(key, []).append(item)
    return list(groups.values())


_OWN_FOLDER = "the run needs a folder of its own that holds no data (e.g. runs/<study>, a new or empty folder)"


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
    """What the run (or ``evaluate``/``report``) writes at ``path`` when it lies in the run folder ``out``; else None."""
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


def _some(ids: Sequence[str], limit: int = 5) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _image_error(err: BaseException, path: str) -> str:
    """An image's error text: the reader's own message (which names the file), or the error naming the file."""
    if isinstance(err, (ImageReadError, PreprocessError)) or type(err) is ValueError:  # medxai's own messages
        message = str(err) or type(err).__name__
    else:
        message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return message if path in message else f"{path}: {message}"


def _each_alone(call: Callable[[list[int]], T], count: int) -> tuple[list[tuple[list[int], T]], dict[int, BaseException]]:
    """``call`` on entries ``0 .. count - 1`` at once; when that fails, on each entry alone.

    One image that breaks a batch (a model, a method or a shape it cannot take) is then that
    image's error, never its companions'.

    Returns:
        The ``(entries, result)`` pairs that worked, and the error of each entry that failed alone.
    """
    everything = list(range(count))
    if not count:
        return [], {}
    try:
        return [(everything, call(everything))], {}
    except BaseException as err:  # a panic too; Ctrl-C goes through
        if must_propagate(err):
            raise
        if count == 1:
            return [], {0: err}
    worked, failed = [], {}
    for i in everything:
        try:
            worked.append(([i], call([i])))
        except BaseException as err:
            if must_propagate(err):
                raise
            failed[i] = err
    return worked, failed


def _remove(out: Path, names: Sequence[str]) -> None:
    """Delete files (or a volume's ``.sc`` folder) of the run folder, where they exist."""
    for name in names:
        path = out / name
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder (a volume's ``.sc`` Secondary Captures)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _append(log: BinaryIO, path: Path, text: str) -> None:
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
            full = DiskFullError(err.errno if err.errno is not None else errno.ENOSPC, f"no space left on the device writing {path}")
            full.path, full.needed = str(path), len(data)
            raise full from err
        raise OSError(*([err.errno] if err.errno is not None else []), f"cannot write {path}: {err.strerror or err}") from err
