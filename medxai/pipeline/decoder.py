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
and ends with the same ``index.csv`` as an uninterrupted run. One bad image never
stops the run: its rows say ``error`` with the reason.

Where the chunks of images are computed is the executor's business
(:mod:`medxai.pipeline.executors`: this process, or the workers of a Dask cluster); the
maps, the index and resuming are the same whichever computes them.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Container, Mapping, Sequence

import numpy as np

from medxai.errors import ModelLoadError, OutputSelectionError, StudyError
from medxai.pipeline.config import Config
from medxai.heatmap import HeatmapPolicy, to_heatmap
from medxai.methods.base import Explanation
from medxai.methods.registry import method_parameters, resolve_method
from medxai.io import ImageReadError, ManifestRow, read_image, safe_id
from medxai.io.geometry import default_affine, orientation_code, voxel_spacing
from medxai.io.index import INDEX_NAME, JOURNAL_NAME, RUN_NAME, index_text
from medxai.io.nifti import write_nifti
from medxai.io.writers import write_npy, write_png, write_text
from medxai.preprocess import PreprocessError, Preprocessor
from medxai.pipeline.journal import completed_rows, fingerprint, jsonable, previous_fingerprint, versions
from medxai._progress import progress_bar
from medxai.pipeline.targets import predicted_classes, target_rule
from medxai.viz.render import colorize, overlay

_PENDING = "_pending_files"  # a row's not yet finished map writes (a Future of its paths)
_STORED = "_stored_range"  # a row's image's stored value range (not an index column)
#: Accumulator values (per image and class) held at once; bounds memory for volumes.
_VALUES_PER_STEP = 1 << 23


@dataclass
class RunSummary:
    """What a run did. ``exit_code`` is 0 when every image succeeded, else 1."""

    output_dir: Path
    images: int = 0
    maps: int = 0
    errors: int = 0
    resumed: int = 0
    seconds: float = 0.0
    failed_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evaluation: Any = None  # a medxai.pipeline.evaluation.EvaluationResult when the config has `evaluate:`

    @property
    def exit_code(self) -> int:
        return 0 if self.errors == 0 else 1

    def __str__(self) -> str:
        return (
            f"medxai: {self.images} images ({self.resumed} resumed), {self.maps} maps, "
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
    placement: dict[str, str] = field(default_factory=dict)  # the index's geometry columns
    stored_range: tuple[float, float] | None = None  # the values the file can store, in the image's units


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
    engine = GradientEngine(model, config.model.output, runtime.jit, runtime.precision)
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
            output=config.model.output,
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
    """

    def __init__(self, config: Config, model: Any = None):
        from medxai.io.model import file_checksum, load_model  # deferred: TensorFlow starts here
        from medxai.methods._engine.engine import GradientEngine

        self.config = config
        try:
            if model is None:
                model = load_model(config.model.path, custom_objects=config.model.custom_objects)
            self.model = model
            self.scores = GradientEngine(self.model, "probabilities")
        except (ModelLoadError, OutputSelectionError) as err:
            key = "model" if str(err).startswith("custom_objects") else "model.path"
            raise StudyError(f"{key}: {err}") from err
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
        from medxai.methods._engine.output import head_activation

        outputs = int(self.model.outputs[0].shape[-1])
        self.multi_label = outputs > 1 and head_activation(self.model) in ("sigmoid", "hard_sigmoid")
        self.class_names = config.model.class_names
        try:
            self.targets = target_rule(config.targets, self.scores.n_outputs, self.class_names, multi_label=self.multi_label)
        except ValueError as err:
            raise StudyError(str(err) if str(err).startswith(("targets", "model.")) else f"targets: {err}") from err
        self.model_checksum = file_checksum(config.model.path)
        self.policy = config.heatmap
        self._writer: ThreadPoolExecutor | None = None
        self.out = Path(config.output.dir)
        self.formats = set(config.output.formats)
        self.fingerprint = fingerprint(config, self.model_checksum)
        self._geometry: dict[str, dict[str, str]] = {}
        self._tick: Callable[[float], Any] | None = None  # progress within a chunk (local runs)

    # ---- resume
    def _completed(self) -> dict[str, list[dict[str, str]]]:
        """Rows of images whose every map is complete in a previous run of the same config."""
        if not self.config.runtime.resume or not (self.out / RUN_NAME).exists():
            return {}
        if previous_fingerprint(self.out) != self.fingerprint:
            print("medxai: the config or model changed since the last run; recomputing every map", file=sys.stderr)
            return {}
        return completed_rows(self.out, {m.name for m in self.methods})

    # ---- per-image work
    def _load(self, row: ManifestRow) -> _Item:
        item = _Item(row)
        try:
            image = read_image(row.path, series_uid=row.series_uid)
            if "dicom" in self.formats and image.kind != "dicom":
                raise ValueError(
                    f"output.formats: dicom needs a DICOM source, and {row.path} is {image.kind.upper()}; "
                    "leave 'dicom' out of output.formats for runs with other images"
                )
            item.tensor, item.geometry = self.preprocessor(image)
            if self.formats & {"overlay", "dicom"}:
                item.display = self.preprocessor.display(image)
        except (ImageReadError, PreprocessError, ValueError) as err:
            item.error = str(err) or type(err).__name__
            return item
        item.source_files = list(image.meta.get("source_files", []))
        stored = image.meta.get("stored_range")
        item.stored_range = None if stored is None else (float(stored[0]), float(stored[1]))
        item.nifti_shape = image.meta.get("shape_xyz") if image.kind == "nifti" else None
        item.placement = _placement(item.geometry)
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
            "mask_path": item.row.mask_path or "",
            **item.placement,
            _STORED: item.stored_range,
        }
        row.update(values)
        return row

    def _write_map(self, item: _Item, method: str, class_index: int, attributions: np.ndarray) -> dict[str, str]:
        heatmap = self.preprocessor.to_source(to_heatmap(attributions, self.policy), item.geometry)
        stem = Path("maps") / method / f"{safe_id(item.row.image_id)}_c{class_index}"
        paths = {k: "" for k in ("npy_path", "png_path", "overlay_path", "nifti_path", "dicom_map_path", "dicom_overlay_path")}
        if "npy" in self.formats:
            paths["npy_path"] = f"{stem}.npy"
            write_npy(self.out / paths["npy_path"], heatmap.astype(np.float32))
        if "png" in self.formats:
            paths["png_path"] = f"{stem}.png"
            write_png(self.out / paths["png_path"], colorize(heatmap, self.config.output.colormap))
        if "overlay" in self.formats:
            paths["overlay_path"] = f"{stem}.overlay.png"
            picture = overlay(
                item.display,
                heatmap,
                colormap=self.config.output.colormap,
                alpha=self.config.output.alpha,
                outline=self.config.output.overlay_outline,
            )
            write_png(self.out / paths["overlay_path"], picture)
        if "nifti" in self.formats:
            paths["nifti_path"] = f"{stem}.nii.gz"
            affine = item.geometry.affine if item.geometry.affine is not None else default_affine(None, heatmap.ndim)
            write_nifti(self.out / paths["nifti_path"], heatmap, affine, shape_xyz=item.nifti_shape)
        if "dicom" in self.formats:
            paths.update(self._write_dicom(item, method, class_index, heatmap, stem))
        return {k: Path(v).as_posix() if v else "" for k, v in paths.items()}

    def _write_dicom(self, item: _Item, method: str, class_index: int, heatmap: np.ndarray, stem: Path) -> dict[str, str]:
        """The Parametric Map and the overlay's Secondary Capture(s), in new series of the source study."""
        from medxai.io.dicom_export import write_dicom_outputs  # deferred: highdicom loads only when asked for

        output = self.config.output
        if heatmap.ndim == 2:
            pictures = overlay(item.display, heatmap, colormap=output.colormap, alpha=output.alpha, outline=output.overlay_outline)
        else:  # one picture per slice, not the montage of the overlay PNG
            pictures = np.stack([
                overlay(d, h, colormap=output.colormap, alpha=output.alpha, outline=output.overlay_outline)
                for d, h in zip(item.display, heatmap)
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

    def _process_group(self, items: list[_Item]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        good = [item for item in items if item.error is None]
        for item in items:
            if item.error is not None:
                rows.extend(self._error_rows(item, item.error))
        if not good:
            self._progress(len(items))
            return rows
        scores = self.scores.predict(np.stack([item.tensor for item in good]), self.config.runtime.batch_size)
        ready, classes, score_of = [], [], []
        for item, score in zip(good, scores):
            item.placement = {**item.placement, "predicted": ";".join(map(str, predicted_classes(score, self.multi_label)))}
            try:
                chosen = self._classes(item, score)
            except ValueError as err:
                rows.extend(self._error_rows(item, str(err)))
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
            try:
                results = [self._explain(method, ready, classes)] if ready else []
                groups = [(ready, classes, score_of)]
            except Exception:  # isolate the image that fails instead of failing the group
                results, groups = [], []
                for item, cs, sc in zip(ready, classes, score_of):
                    try:
                        results.append(self._explain(method, [item], [cs]))
                        groups.append(([item], [cs], [sc]))
                    except Exception as err:
                        rows.extend(
                            self._row(item, method.name, c, status="error", error=f"{type(err).__name__}: {err}")
                            for c in cs
                        )
            for explanation, (group, group_classes, group_scores) in zip(results, groups):
                relative = explanation.relative_delta
                n_maps = sum(len(cs) for cs in group_classes)
                seconds = (time.perf_counter() - started) / max(1, n_maps)
                k = 0
                for item, cs, score in zip(group, group_classes, group_scores):
                    for c in cs:
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
        except Exception as err:  # delivered by _settle, like a thread's failure
            future.set_exception(err)
        return future

    @staticmethod
    def _settle(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Wait for the rows' map files; a failed write, or any failed map of an image, fails all its rows."""
        for row in rows:
            future = row.pop(_PENDING, None)
            if future is None:
                continue
            try:
                row.update(future.result())
            except (OSError, ValueError) as err:
                row.update(status="error", error=str(err))
        failed = {r["image_id"]: r["error"] for r in rows if r["status"] == "error"}
        for r in rows:
            if r["image_id"] in failed and r["status"] == "ok":
                r.update(status="error", error=f"another map of this image failed: {failed[r['image_id']]}")
        return rows

    # ---- the run
    def process(
        self, chunks: Sequence[Sequence[ManifestRow]], done: Callable[[list[ManifestRow], list[dict[str, Any]]], None]
    ) -> None:
        """Compute chunks of images in order; ``done(images, rows)`` gets each chunk once its maps are written.

        The images of a chunk share model batches. Every executor runs this, so a
        chunk gives the same maps wherever it runs. On an exception (Ctrl-C
        included) every chunk already computed is still handed to ``done``.
        """
        overlap = self.config.runtime.overlap_io and len(chunks) > 1
        with ThreadPoolExecutor(2) if overlap else nullcontext() as loader, ThreadPoolExecutor(2) if overlap else nullcontext() as writer:
            self._writer = writer
            load = (lambda chunk: [loader.submit(self._load, r) for r in chunk]) if overlap else None
            upcoming = load(chunks[0]) if overlap else None
            unsettled: list[tuple[list[_Item], list[dict[str, Any]]]] = []

            def settle(keep: int) -> None:
                while len(unsettled) > keep:
                    done_items, done_rows = unsettled.pop(0)
                    done([item.row for item in done_items], self._settle(done_rows))

            try:
                for index, chunk in enumerate(chunks):
                    items = [f.result() for f in upcoming] if overlap else [self._load(r) for r in chunk]
                    if overlap and index + 1 < len(chunks):
                        upcoming = load(chunks[index + 1])  # read the next images while this chunk computes
                    pending = [row for group in _same_shape_groups(items) for row in self._process_group(group)]
                    unsettled.append((items, pending))
                    settle(keep=1)  # a chunk's writes finish while the next one computes
            finally:
                settle(keep=0)  # also on Ctrl-C: every computed chunk reaches ``done``
                self._writer = None

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

        Args:
            rows: The manifest rows, in the order of the index.
            progress: Show a progress bar (default: ``runtime.progress``).
            executor: Where the chunks are computed (default: here, one after the other;
                :func:`medxai.pipeline.study.run_study` uses the one ``runtime.executor`` names).

        Raises:
            StudyError: the executor cannot start (e.g. no Dask scheduler at ``runtime.dask.address``).
        """
        executor = LocalExecutor() if executor is None else executor
        show = self.config.runtime.progress if progress is None else progress
        with executor:
            return self._run(rows, show, executor)

    def _run(self, rows: Sequence[ManifestRow], show: bool, executor: Any) -> RunSummary:
        started_at, started = datetime.now(timezone.utc), time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        completed = self._completed()
        journal = self.out / JOURNAL_NAME
        if not completed:
            journal.unlink(missing_ok=True)
        else:
            kept = [r for rs in completed.values() for r in rs]
            write_text(journal, index_text(kept, header=True))
        self._write_run_json(started_at, None, None, executor.describe())
        summary = RunSummary(self.out, images=len(rows), resumed=sum(1 for row in rows if row.image_id in completed))
        new_rows: dict[str, list[dict[str, Any]]] = {}
        bar_format = "{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
        with progress_bar(len(rows), desc="medxai", unit="img", enabled=show, bar_format=bar_format) as bar, open(journal, "a", encoding="utf-8", newline="") as log:
            if log.tell() == 0:
                log.write(index_text([], header=True))
            bar.update(summary.resumed)
            finished = {"images": summary.resumed, "maps": 0}
            computing_since = time.perf_counter()

            def done(images: list[ManifestRow], image_rows: list[dict[str, Any]]) -> None:
                for row in image_rows:
                    new_rows.setdefault(row["image_id"], []).append(row)
                for image in images:
                    log.write(index_text(new_rows.get(image.image_id, []), header=False))
                log.flush()
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
        index = []
        for row in rows:
            image_rows = completed.get(row.image_id) or new_rows.get(row.image_id, [])
            index.extend(image_rows)
            if any(r["status"] == "error" for r in image_rows):
                summary.errors += 1
                summary.failed_ids.append(row.image_id)
        summary.maps = sum(1 for r in index if r["status"] == "ok")
        summary.warnings = self._study_warnings(new_rows)
        for warning in summary.warnings:
            print(f"medxai: warning: {warning}", file=sys.stderr)
        self._geometry = {
            r["image_id"]: {k: r.get(k, "") for k in ("source_shape", "spacing", "orientation")}
            for r in reversed(index)
            if r.get("source_shape")
        }
        write_text(self.out / INDEX_NAME, index_text(index, header=True))
        summary.seconds = time.perf_counter() - started
        self._write_run_json(started_at, datetime.now(timezone.utc), summary, executor.describe())
        journal.unlink(missing_ok=True)
        return summary

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
                "seconds": round(summary.seconds, 3),
            },
        }
        write_text(self.out / RUN_NAME, json.dumps(record, indent=2, default=str) + "\n")


def _placement(geometry: Any) -> dict[str, str]:
    """The index's geometry columns: the source shape, spacing (mm) and orientation code of the maps' axes.

    The orientation code is left empty when the file gave no position in the patient (PNG, NPY, radiographs).
    """
    shape = tuple(geometry.source_spatial_shape)
    affine = geometry.affine
    if affine is None:
        return {"source_shape": "x".join(map(str, shape)), "spacing": "", "orientation": ""}
    return {
        "source_shape": "x".join(map(str, shape)),
        "spacing": "x".join(f"{v:.6g}" for v in voxel_spacing(affine, len(shape))),
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
