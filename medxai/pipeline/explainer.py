"""The explainer: loads images and explains groups of them with every configured method.

A group's images are scored together (the scores are probabilities), each image's
classes (a segmentation model: regions of its output channels) are chosen by the
``targets`` rule, and every method explains every (image, target) pair of the group
in one packed call; the maps go to the
:class:`~medxai.pipeline.map_writer.MapWriter`. One image that breaks a step (a read,
a model, a method or a shape it cannot take) is that image's error row, never its
companions'.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from medxai._progress import note
from medxai.errors import ModelLoadError, OutputSelectionError, SettingError, StudyError
from medxai.heatmap import HeatmapPolicy
from medxai.io import ManifestRow, read_image
from medxai.io.limits import must_propagate
from medxai.methods._engine import OUTPUT_PROBABILITIES
from medxai.methods._engine.spec import shape_words
from medxai.methods.base import Explanation, XAIMethod
from medxai.pipeline.config import Config
from medxai.pipeline.item import Item, MapSD, image_error, placement
from medxai.pipeline.journal import source_key
from medxai.pipeline.provenance import STORED
from medxai.pipeline.study_methods import output_spec, study_methods
from medxai.pipeline.targets import (
    Target,
    method_target,
    predicted_channels,
    predicted_classes,
    region_key,
    target_rule,
)
from medxai.preprocess import Preprocessor
from medxai.regions import ResolvedRegion

if TYPE_CHECKING:  # the module imports Keras: TensorFlow starts in __init__
    from medxai.methods._engine.engine import GradientEngine
    from medxai.methods._engine.head import Head

T = TypeVar("T")
Tick = Callable[[float], Any]


class MapSink(Protocol):
    """Where the maps go: a run's :class:`~medxai.pipeline.map_writer.MapWriter` (files), or the
    notebook API's list in memory (:func:`medxai.pipeline.notebook.explain`)."""

    @property
    def needs_display(self) -> bool:
        """Whether the display image is needed (a picture is drawn over it)."""

    def check_source(self, kind: str, path: str) -> None:
        """Refuse an image of a kind the maps cannot be kept for."""

    def write_later(
        self, row: dict[str, Any], item: Item, method: str, target: Target, attributions: np.ndarray, sd: MapSD = None
    ) -> None:
        """Keep one map of ``row`` (and its per-value SD, :attr:`Explanation.sd`, where computed)."""


class Explainer:
    """The model, its scores, the preprocessing, the methods and the targets of a study.

    Args:
        config: A validated config.
        model: An already loaded Keras model (default: load ``config.model.path``).
        feedback: Say on stderr what is happening before the model loads and the methods
            are built (default: ``runtime.progress``; the rule of the progress bar).

    Raises:
        StudyError: the message starts with the config key: the model, preprocessing,
            methods or targets do not fit.
    """

    def __init__(self, config: Config, model: Any = None, *, feedback: bool | None = None):
        from medxai.io.model import load_model  # deferred: TensorFlow starts here
        from medxai.methods._engine.engine import GradientEngine

        self.config = config
        show = config.runtime.progress if feedback is None else feedback
        try:
            if model is None:
                note(f"loading the model {config.model.path}", show)
                model = load_model(
                    config.model.path,
                    custom_objects=config.model.custom_objects,
                    trust_saved_model=config.model.trust_saved_model,
                )
            self.model = model
        except ModelLoadError as err:  # load_model's custom_objects is model.custom_objects; else the file
            key = "model" if err.key == "custom_objects" else "model.path"
            raise StudyError(f"{key}: {err}") from err
        try:  # scores are probabilities, whatever the head
            self.scores = GradientEngine(self.model, output_spec(config, OUTPUT_PROBABILITIES))
        except OutputSelectionError as err:
            raise StudyError(f"model: the scores (probabilities) cannot be computed: {err}") from err
        head = self.scores.head
        if head is None:  # the probabilities view always reads the head; only a named layer has none
            raise StudyError("model: the scores (probabilities) cannot be computed: the model's output was not read")
        self.head: Head = head
        self._witnessed = False  # the study's first batch has not yet confirmed what the output is
        try:
            self.preprocessor = Preprocessor(config.preprocess, self.scores.input_shape)
        except ValueError as err:
            raise StudyError(f"preprocess: {err}") from err
        try:
            note(f"building {len(config.methods)} method{'s' if len(config.methods) != 1 else ''}", show)
            self.methods = study_methods(config, self.model)
            self.explained = {m.name: getattr(getattr(m, "engine", None), "explained", "") for m in self.methods}
        except OutputSelectionError as err:
            raise StudyError(f"model.output: {err}") from err
        except SettingError as err:  # the entry at fault: methods[i]
            raise StudyError(str(err)) from err
        except (ValueError, TypeError) as err:
            raise StudyError(f"methods: {err}") from err
        self.class_names = config.model.class_names
        try:
            self.targets = target_rule(
                config.targets, self.scores.n_outputs, self.class_names, multi_label=self.head.multi_label
            )
        except SettingError as err:  # the setting at fault: targets or model.class_names
            raise StudyError(str(err)) from err
        except ValueError as err:
            raise StudyError(f"targets: {err}") from err
        self.dense = self.scores.dense
        self.region_engine: GradientEngine | None = None  # the explained output, for region scores
        if self.dense != (self.targets.kind == "region"):
            raise StudyError(_targets_mismatch(self.dense, self.scores.output_shape))
        if self.dense:
            self.region_engine = GradientEngine(self.model, output_spec(config))
        self.policy: HeatmapPolicy = config.heatmap

    def load(self, row: ManifestRow, writer: MapSink) -> Item:
        """Read and preprocess one image and place it; any failure (but Ctrl-C) is the item's error, naming the file."""
        item = Item(row)
        try:
            item.source_key = source_key(row)  # before the read: a file changed while read never looks unchanged
            image = read_image(
                row.path,
                series_uid=row.series_uid,
                max_pixels=self.config.data.max_pixels,
                timeout=self.config.runtime.read_timeout,
                max_abandoned=self.config.runtime.max_abandoned_reads,
                on_corrupt=self.config.data.on_corrupt,
            )
            item.warnings = [str(w) for w in (image.meta.get("warnings") or [])]
            writer.check_source(image.kind, row.path)
            item.tensor, item.geometry = self.preprocessor(image)
            if writer.needs_display:
                item.display = self.preprocessor.display(image)
            item.source_files = list(image.meta.get("source_files", []))
            stored = image.meta.get("stored_range")
            item.stored_range = None if stored is None else (float(stored[0]), float(stored[1]))
            item.nifti_shape = image.meta.get("shape_xyz") if image.kind == "nifti" else None
            item.nifti_xforms = image.meta.get("nifti_xforms") if image.kind == "nifti" else None
            item.placement = placement(item.geometry)
            if self.targets.region == "manifest" and row.region_path:
                item.region = self.manifest_region(row.region_path, item.tensor.shape[:-1])
        except BaseException as err:  # a reader's panic (pyo3 PanicException) is a BaseException
            if must_propagate(err):
                raise
            item.error = image_error(err, row.path)
            item.tensor = item.display = None
            item.placement = {}
        return item

    def explain_group(self, items: list[Item], writer: MapSink, tick: Tick | None = None) -> list[dict[str, Any]]:
        """The index rows of a group of images whose tensors share a shape; their maps go to ``writer``.

        ``tick`` (when given) gets the progress in images as each method finishes the group.
        """
        rows: list[dict[str, Any]] = []
        good = [item for item in items if item.error is None]
        for item in items:
            if item.error is not None:
                rows.extend(self.error_rows(item, item.error))
        if not good:
            _tick(tick, len(items))
            return rows
        self._witness(good)
        predicted, failed = _each_alone(lambda ix: self.predict([good[i] for i in ix]), len(good))
        for i, err in failed.items():
            rows.extend(self.error_rows(good[i], image_error(err, good[i].row.path)))
        scored = sorted((i, score) for ix, scores in predicted for i, score in zip(ix, scores))
        ready: list[Item] = []
        classes: list[list[Target]] = []
        score_of: list[dict[Any, dict[str, str]]] = []
        outputs = self._explained_outputs([good[i] for i, _ in scored])
        for k, (item, score) in enumerate((good[i], score) for i, score in scored):
            try:
                chosen, skipped, scores = self._targets(item, score, None if outputs is None else outputs[k])
            except Exception as err:  # noqa: BLE001 - e.g. a label the model has no class for
                rows.extend(self.error_rows(item, image_error(err, item.row.path)))
                continue
            for target, reason in skipped:
                rows.extend(
                    self.row(item, method.name, target, status="skipped", warning=reason) for method in self.methods
                )
            if not chosen:
                if not skipped:
                    reason = f"no class to explain: none scored at or over {self.targets.threshold:g}"
                    rows.extend(
                        self.row(item, method.name, None, status="skipped", warning=reason) for method in self.methods
                    )
                continue
            ready.append(item)
            classes.append(chosen)
            score_of.append(scores)
        for method in self.methods:
            started = time.perf_counter()

            def explain_some(ix: list[int], method: XAIMethod = method) -> Explanation:
                return self.explain(method, [ready[i] for i in ix], [classes[i] for i in ix])

            explained, failed = _each_alone(explain_some, len(ready))
            for i, exc in failed.items():
                item = ready[i]
                rows.extend(
                    self.row(item, method.name, c, status="error", error=image_error(exc, item.row.path))
                    for c in classes[i]
                )
            for group, explanation in explained:
                relative, stability = explanation.relative_delta, explanation.stability
                stability_relative = explanation.stability_relative
                n_maps = sum(len(classes[i]) for i in group)
                seconds = (time.perf_counter() - started) / max(1, n_maps)
                k = 0
                for i in group:
                    item, score = ready[i], score_of[i]
                    for c in classes[i]:
                        row = self.row(
                            item,
                            method.name,
                            c,
                            **score[_key(c)],
                            relative_delta=_format(None if relative is None else float(relative[k])),
                            steps=_entry(explanation.steps, k),
                            warning=_entry(explanation.warnings, k),
                            seconds=f"{seconds:.4f}",
                            evaluations=_entry(explanation.evaluations, k),
                            stability=_format(None if stability is None else float(stability[k])),
                            stability_relative=_format(
                                None if stability_relative is None else float(stability_relative[k])
                            ),
                        )
                        sd = None if explanation.sd is None else explanation.sd[k]
                        writer.write_later(row, item, method.name, c, explanation.attributions[k], sd)
                        rows.append(row)
                        k += 1
            _tick(tick, len(items) / len(self.methods))
        return rows

    def _explained_outputs(self, items: list[Item]) -> np.ndarray | None:
        """The explained output (logits by default) of each image, for region scores (None: a classifier)."""
        if self.region_engine is None or not items:
            return None
        images = np.stack([_tensor(item) for item in items])
        return self.region_engine.predict(images, self.config.runtime.batch_size)

    def _targets(
        self, item: Item, score: np.ndarray, explained: np.ndarray | None = None
    ) -> tuple[list[Target], list[tuple[Target | None, str]], dict[Any, dict[str, str]]]:
        """What one image explains: its targets, the skipped ones with the reason, and each target's score columns.

        Sets the image's ``predicted`` column (classes, or the channels predicted somewhere);
        ``explained`` is the image's explained output (a segmentation model's region scores).
        """
        activation = self.head.activation
        if self.targets.kind != "region":
            predicted = predicted_classes(score, self.head.multi_label)
            item.placement = {**item.placement, "predicted": ";".join(map(str, predicted))}
            classes = self.targets.select(score, item.row.labels)
            return list(classes), [], {c: {"score": _format(float(score[c]))} for c in classes}
        item.placement = {**item.placement, "predicted": ";".join(map(str, predicted_channels(score, activation)))}
        if self.targets.region == "manifest" and item.region is None:
            reason = "no region mask for this image in data.region_column"
            return [], [(None, reason)], {}
        regions = self.image_regions(score, item.region)
        if explained is None:
            raise ValueError("a segmentation model's region scores need its explained output")
        chosen: list[Target] = []
        skipped: list[tuple[Target | None, str]] = []
        scores: dict[Any, dict[str, str]] = {}
        for region in regions.values():
            if region.voxels == 0:
                skipped.append((region, f"{region.words} is empty: nothing to explain"))
                continue
            chosen.append(region)
            inside = score[..., region.channel][region.mask]
            scores[_key(region)] = {
                "score": _format(float(inside.mean())),
                "region_score": _format(region.score(explained)),
            }
        return chosen, skipped, scores

    def image_regions(
        self, score: np.ndarray, manifest: np.ndarray | None = None
    ) -> dict[tuple[str, str, str], ResolvedRegion]:
        """An image's regions (a segmentation model), keyed by :func:`~medxai.pipeline.targets.region_key`.

        The one definition of what a run explains for an image: the run and ``medxai evaluate``
        (which recomputes the region of each row) both call it.

        Args:
            score: ``(*output_spatial, channels)`` the model's probabilities for the unperturbed image.
            manifest: The image's manifest mask on the output grid (``region: manifest``; see
                :meth:`manifest_region`), else None.

        Returns:
            ``(channel, region, component)`` as the index writes them (strings; component "" but
            for ``connected``) to the region, in the run's order; a region may be empty.
        """
        regions = self.targets.regions(score, self.head.activation, manifest)
        return {region_key(r): r for r in regions}

    def manifest_region(self, path: str, spatial: tuple[int, ...]) -> np.ndarray:
        """The manifest's region mask for an image, on the model's output grid for its input ``spatial``."""
        assert self.region_engine is not None
        mask = read_image(
            path,
            max_pixels=self.config.data.max_pixels,
            timeout=self.config.runtime.read_timeout,
            max_abandoned=self.config.runtime.max_abandoned_reads,
            on_corrupt=self.config.data.on_corrupt,
        )
        return self.preprocessor.region_mask(mask, self.region_engine.output_grid(tuple(spatial)))

    def predict(self, items: list[Item]) -> np.ndarray:
        """The scores (probabilities) of a group of images, one row per image."""
        return self.scores.predict(np.stack([_tensor(item) for item in items]), self.config.runtime.batch_size)

    def explain(self, method: XAIMethod, items: list[Item], classes: list[list[Target]]) -> Explanation:
        """Explain every (image, target) pair of a group in one packed call."""
        owners = [i for i, cs in enumerate(classes) for _ in cs]
        images = np.stack([_tensor(items[i]) for i in owners])
        targets: list[Any] = [method_target(c) for cs in classes for c in cs]
        if method.uncertainty is not None:
            return method.explain_with_uncertainty(images, targets)
        return method.explanation(images, targets)

    def _witness(self, items: list[Item]) -> None:
        """The study's first batch as a second witness of what the model outputs (where only probes said).

        Raises:
            StudyError: the study's outputs look unlike the probe images' (see
                :meth:`medxai.methods._engine.head.Head.check_values`).
        """
        if self._witnessed:
            return
        if self.head.witness == "values":
            images = np.stack([_tensor(item) for item in items[: self.config.runtime.batch_size]])
            values = np.asarray(self.model(images, training=False))
            try:
                self.head.check_values(values)
            except OutputSelectionError as err:
                raise StudyError(f"model.output_kind: {err}") from err
        self._witnessed = True

    def error_rows(self, item: Item, message: str, classes: Sequence[Target | None] = (None,)) -> list[dict[str, Any]]:
        """The image's error rows: one per method (and class), each saying ``message``."""
        return [
            self.row(item, method.name, c, status="error", error=message) for method in self.methods for c in classes
        ]

    def row(self, item: Item, method: str, target: Target | None, **values: Any) -> dict[str, Any]:
        """One index row of ``item``: the image's and the settings' columns, then ``values``."""
        clip = self.policy.clip
        region = target if isinstance(target, ResolvedRegion) else None
        class_index = region.channel if region is not None else target if isinstance(target, int) else None
        row = {
            "image_id": item.row.image_id,
            "source_path": item.row.path,
            "series_uid": item.row.series_uid or "",
            "method": method,
            "class_index": "" if class_index is None else class_index,
            "class_name": "" if class_index is None or self.class_names is None else self.class_names[class_index],
            "channel": "" if region is None else region.channel,
            "region": "" if region is None else region.name,
            "component": region.component if region is not None and region.component else "",
            "region_voxels": "" if region is None else region.voxels,
            "label": ";".join(map(str, item.row.labels)),
            "status": "ok",
            "reduce": self.policy.reduce,
            "polarity": self.policy.polarity,
            "clip": "" if clip is None else f"{clip.mode}:{clip.low:g}-{clip.high:g}",
            "explained": self.explained.get(method, ""),
            "output_kind": self.head.kind,
            "activation": self.head.activation,
            "mask_path": item.row.mask_path or "",
            **item.placement,
            "source_key": item.source_key,
            STORED: item.stored_range,
        }
        row.update(values)
        row["label_name"] = self.class_words(str(row["label"]))
        row["predicted_name"] = self.class_words(str(row.get("predicted", "")))
        if item.warnings:
            row["warning"] = "; ".join([*item.warnings, *([str(row["warning"])] if row.get("warning") else [])])
        return row

    def class_words(self, indices: str) -> str:
        """``"4;5"`` as ``model.class_names`` say it (``"effusion;edema"``); empty without class names.

        An index the names do not cover (a label the model has no class for) stays a number.
        """
        names = self.class_names
        if not names or not indices:
            return ""
        words = []
        for part in indices.split(";"):
            index = int(part) if part.strip().lstrip("-").isdigit() else None
            words.append(names[index] if index is not None and 0 <= index < len(names) else part)
        return ";".join(words)

    def values_per_image(self) -> int:
        """The accumulator values one image holds (per class explained), for the size of a step."""
        shape = [n for n in self.scores.input_shape if n is not None]
        kind = self.targets.kind
        if kind == "region":  # one per channel (connected: at least one per channel)
            classes = len(self.targets.classes) * (self.targets.components or 1)
        elif kind == "all" or (kind in ("threshold", "label") or (kind == "predicted" and self.head.multi_label)):
            classes = self.scores.n_outputs  # as many as every class
        else:
            classes = self.targets.top_k if kind == "top_k" else len(self.targets.classes) if kind == "list" else 1
        return max(1, int(np.prod(shape)) * classes)


def _key(target: Target) -> Any:
    """A hashable key of a target (regions are compared by identity)."""
    return id(target) if isinstance(target, ResolvedRegion) else target


def _targets_mismatch(dense: bool, shape: tuple[int | None, ...]) -> str:
    shown = shape_words(shape)
    if dense:
        return (
            f"targets: the model's output is dense, {shown} per image (a segmentation model): a class does not "
            "name a score. Explain regions: targets: {region: predicted, channels: [1]} (region: predicted, "
            "connected, border, manifest or all)"
        )
    return (
        f"targets: {{region: ...}} explains a segmentation model's dense output; this model outputs {shown} "
        "per image (classes): use predicted, label, all, {top_k: K}, {threshold: T} or a list of classes"
    )


def _tensor(item: Item) -> np.ndarray:
    """The tensor of an image loaded without error."""
    if item.tensor is None:
        raise ValueError(f"image {item.row.image_id!r} has no tensor: it was not loaded")
    return item.tensor


def _tick(tick: Tick | None, images: float) -> None:
    if tick is not None:
        tick(images)


def _format(value: float | None, digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}g}"


def _entry(values: np.ndarray | None, k: int) -> Any:
    """Entry ``k`` of an optional per-map array, for the index ("" when absent)."""
    return "" if values is None else values[k]


def _each_alone(
    call: Callable[[list[int]], T], count: int
) -> tuple[list[tuple[list[int], T]], dict[int, BaseException]]:
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
