"""The notebook API: :func:`explain` (``medxai.explain``) explains images in memory, no run folder.

It is a study without files: the same config sections (``methods``, ``targets``,
``preprocess``, ``heatmap``) validated by the same :class:`~medxai.pipeline.config.Config`,
and the same :class:`~medxai.pipeline.explainer.Explainer` choosing the targets, preprocessing
the images and explaining them. What a run would write, :class:`Result` keeps: the signed
attributions and the heatmap on the model's grid, and the picture a person sees
(:meth:`Result.overlay`, :meth:`Result.plot`, and ``_repr_png_`` for Jupyter).

Example::

    results = medxai.explain(model, ["a.dcm", "b.dcm"], targets={"top_k": 2},
                             preprocess={"window": "auto", "scale": "minmax"})
    results[0].plot()
    results.to_frame()
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medxai._validation import describe_frame, is_frame
from medxai.errors import StudyError
from medxai.heatmap import HeatmapPolicy, heatmap_sd, to_heatmap
from medxai.io import LoadedImage, ManifestRow
from medxai.pipeline.config import Config
from medxai.pipeline.config.sections import DataSection, ModelSection, OutputSection
from medxai.pipeline.explainer import Explainer
from medxai.pipeline.item import Item, image_error, placement
from medxai.pipeline.provenance import STORED
from medxai.pipeline.study_methods import data_rows
from medxai.pipeline.targets import Target
from medxai.preprocess import Geometry, Preprocessor, PreprocessSpec, resize_mask
from medxai.regions import ResolvedRegion

__all__ = ["Result", "Results", "explain"]

#: The manifest columns a DataFrame of images may have (``path`` is required).
FRAME_COLUMNS = {
    "id_column": "image_id",
    "label_column": "label",
    "mask_column": "mask",
    "region_column": "region",
    "series_column": "series_uid",
}
_IN_MEMORY = Path("<in memory>")


@dataclass(eq=False)
class Result:
    """One explained (image, method, target).

    Attributes:
        image_id: The image's id (a DataFrame's ``image_id``, a path's file name, an array's position).
        method: The method's name.
        target: The class index, or the region (:class:`~medxai.regions.ResolvedRegion`: its
            ``channel``, ``name`` and ``mask``) of a segmentation model.
        attributions: Signed attributions, ``(*model_spatial, C)``, on the model's input grid.
        heatmap: ``(*model_spatial)`` in [0, 1], the heatmap policy applied.
        explained: What output the method explained (e.g. ``logits``), as the run's index says.
        info: The row a run's ``index.csv`` would hold for this map (score, predicted, ...).
        sd: ``(*model_spatial)`` the SD map in the heatmap's units (:func:`medxai.heatmap.heatmap_sd`:
            the spread over the method's samples, baselines or seed groups, divided by the same
            range as the heatmap; zeros for a deterministic method), or None without ``uncertainty``.
    """

    image_id: str
    method: str
    target: Target
    attributions: np.ndarray = field(repr=False)
    heatmap: np.ndarray = field(repr=False)
    explained: str
    info: dict[str, Any] = field(repr=False)
    display: np.ndarray | None = field(default=None, repr=False)
    geometry: Geometry | None = field(default=None, repr=False)
    preprocessor: Preprocessor | None = field(default=None, repr=False)
    sd: np.ndarray | None = field(default=None, repr=False)

    @property
    def stability(self) -> float | None:
        """The map's max-sensitivity (lower is more stable, 0: identical maps), or None without ``uncertainty``."""
        value = self.info.get("stability", "")
        return None if value in ("", None) else float(value)

    @property
    def stability_relative(self) -> float | None:
        """The same largest change over the map's own norm (comparable across methods), or None."""
        value = self.info.get("stability_relative", "")
        return None if value in ("", None) else float(value)

    def overlay(self, colormap: str = "inferno", alpha: float = 0.5) -> np.ndarray:
        """An RGB uint8 picture: the heatmap over the displayed image (resampled to the source's
        grid), or the colourised heatmap alone when there is no displayed image (an array batch).

        A region target's outline is drawn too, as a run's overlay draws it.
        """
        from medxai.viz.render import colorize, overlay

        region = self.target.mask if isinstance(self.target, ResolvedRegion) else None
        if self.display is None or self.geometry is None or self.preprocessor is None:
            if region is None or region.shape != self.heatmap.shape or self.heatmap.ndim != 2:
                return colorize(self.heatmap, colormap)
            picture = colorize(self.heatmap, colormap) / 255.0  # the colourised map, the region outlined on it
            return overlay(picture, self.heatmap, alpha=0.0, region=region)
        spatial = self.display.shape[:-1]
        return overlay(
            self.display,
            self.preprocessor.to_source(self.heatmap, self.geometry),
            colormap=colormap,
            alpha=alpha,
            region=None if region is None else resize_mask(region, spatial),
        )

    def __repr__(self) -> str:
        return f"<Result {self.title}: {self.explained}>"

    @property
    def title(self) -> str:
        """``image id | method | target``."""
        target = self.target
        what = target.words if isinstance(target, ResolvedRegion) else f"class {target}"
        return f"{self.image_id} | {self.method} | {what}"

    def plot(self, ax: Any = None, **overlay: Any) -> Any:
        """Draw :meth:`overlay` on matplotlib axes (new ones by default), titled; returns the axes."""
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots()
        ax.imshow(self.overlay(**overlay))
        ax.set_title(self.title)
        ax.set_axis_off()
        return ax

    def _repr_png_(self) -> bytes:
        """PNG bytes of :meth:`overlay` (Jupyter shows a result as its picture)."""
        from medxai.viz.report.pictures import png_bytes

        return png_bytes(self.overlay())


class Results(list[Result]):
    """The results of :func:`explain`, a list; :meth:`to_frame` tabulates them."""

    def to_frame(self) -> pd.DataFrame:
        """One row per result: the columns of a run's ``index.csv`` (image_id, method, class_index, score, ...).

        Columns of numbers are numbers (the index's text, as ``pd.read_csv`` would read it).
        """
        frame = pd.DataFrame([{k: v for k, v in r.info.items() if k != STORED} for r in self])
        for column in frame.columns:
            try:
                frame[column] = pd.to_numeric(frame[column])
            except (ValueError, TypeError):
                pass  # text, or numbers with empty cells
        return frame


def explain(
    model: Any,
    images: Any,
    methods: Any = None,
    targets: Any = "predicted",
    *,
    preprocess: PreprocessSpec | Mapping[str, Any] | None = None,
    heatmap: HeatmapPolicy | Mapping[str, Any] | None = None,
    batch_size: int = 32,
) -> Results:
    """Explain images with a loaded Keras model, in memory (``medxai.explain``).

    Args:
        model: A loaded Keras model.
        images: An array batch ``(N, *spatial, C)`` of model input (preprocessed only when
            ``preprocess`` is given); a list of image paths (read with :func:`medxai.read_image`,
            then preprocessed); or a pandas DataFrame with a manifest's columns (``path``; optional
            ``image_id``, ``label``, ``mask``, ``region``, ``series_uid``).
        methods: What a config's ``methods`` takes: a name, a mapping with parameters
            (``{"name": "integrated_gradients", "steps": 32}``) or a list of them;
            None: ``integrated_gradients``. ``{"name": "smoothgrad", "uncertainty": True}`` adds
            the per-map uncertainty: :attr:`Result.sd` and :attr:`Result.stability`.
        targets: What a config's ``targets`` takes: ``predicted``, ``label`` (a DataFrame's
            ``label`` column), ``all``, ``{"top_k": K}``, ``{"threshold": T}``, a list of classes;
            a segmentation model's ``{"region": ..., "channels": [...]}``.
        preprocess: A config's ``preprocess`` section (a mapping) or a :class:`PreprocessSpec`.
        heatmap: A config's ``heatmap`` section, or a :class:`HeatmapPolicy`.
        batch_size: Images per forward/backward pass (the config's ``runtime.batch_size``).

    Returns:
        :class:`Results`: one :class:`Result` per (image, method, target), image by image, then by
        method, then by target.

    Raises:
        ConfigError: a setting is invalid, named by its config key (``methods``, ``targets``, ...).
        StudyError: the settings do not fit the model (``targets: ...``), or an image failed.
    """
    frame = images if is_frame(images) else None
    sections: dict[str, Any] = {
        "model": ModelSection.model_construct(path=_IN_MEMORY),
        "data": _data_section(frame),
        "targets": targets,
        "runtime": {"batch_size": batch_size, "progress": False},
        "output": OutputSection.model_construct(dir=_IN_MEMORY),
    }
    for key, value in (("methods", methods), ("preprocess", preprocess), ("heatmap", heatmap)):
        if value is not None:
            sections[key] = value.to_dict() if hasattr(value, "to_dict") else value
    config = Config.from_dict(sections)
    if frame is not None and "path" not in frame.columns:
        raise StudyError(f"images: a DataFrame of images needs a 'path' column; got {describe_frame(frame)}")
    if model is None or isinstance(model, (str, os.PathLike)):
        raise StudyError(f"model: expected a loaded Keras model, got {model!r} (keras.saving.load_model loads one)")
    explainer = Explainer(config, model=model)
    sink = _Maps()
    if frame is None and isinstance(images, (str, os.PathLike)):
        images = [images]
    if frame is not None or (isinstance(images, Sequence) and all(isinstance(p, (str, os.PathLike)) for p in images)):
        items = [explainer.load(row, sink) for row in _rows(images, config.data)]
    else:
        items = _array_items(np.asarray(images), explainer, preprocess is not None)
    _raise_errors([(item.row.image_id, item.error) for item in items if item.error is not None])
    rows: list[dict[str, Any]] = []
    for shape in dict.fromkeys(_tensor_shape(item) for item in items):
        rows.extend(explainer.explain_group([item for item in items if _tensor_shape(item) == shape], sink))
    _raise_errors([(f"{r['image_id']}: {r['method']}", r["error"]) for r in rows if r["status"] == "error"])
    for r in rows:
        if r["status"] == "skipped":
            warnings.warn(f"{r['image_id']}: {r['method']}: skipped: {r['warning']}", stacklevel=2)
    results = Results()
    order = {id(item): k for k, item in enumerate(items)}  # image by image (a stable sort keeps the rest)
    for row, item, method, target, attributions, sd in sorted(sink.maps, key=lambda m: order[id(m[1])]):
        results.append(
            Result(
                image_id=item.row.image_id,
                method=method,
                target=target,
                attributions=np.asarray(attributions),
                heatmap=to_heatmap(attributions, explainer.policy),
                explained=str(row.get("explained", "")),
                info=row,
                display=item.display,
                geometry=item.geometry,
                preprocessor=explainer.preprocessor if item.display is not None else None,
                sd=None if sd is None else heatmap_sd(attributions, sd, explainer.policy),
            )
        )
    return results


class _Maps:
    """Where :meth:`Explainer.explain_group` puts the maps (a run's MapWriter writes them): kept in memory."""

    needs_display = True

    def __init__(self) -> None:
        self.maps: list[tuple[dict[str, Any], Item, str, Target, np.ndarray, np.ndarray | None]] = []

    def check_source(self, kind: str, path: str) -> None:
        """Every image kind has a picture in memory."""

    def write_later(
        self, row: dict[str, Any], item: Item, method: str, target: Target, attributions: Any, sd: Any = None
    ) -> None:
        self.maps.append((row, item, method, target, np.asarray(attributions), None if sd is None else np.asarray(sd)))


def _data_section(frame: Any) -> DataSection:
    """The ``data`` section of images in memory: a DataFrame's manifest columns (``label`` for ``targets: label``)."""
    columns: dict[str, Any] = {} if frame is None else {k: c for k, c in FRAME_COLUMNS.items() if c in frame.columns}
    return DataSection.model_construct(None, manifest=frame, root=Path.cwd(), **columns)


def _rows(images: Any, data: DataSection) -> list[ManifestRow]:
    """The manifest rows of a DataFrame, or of a list of paths (ids: the file names; their numbers if two share one)."""
    if not is_frame(images):
        paths = [os.fspath(p) for p in images]
        if not paths:
            raise StudyError("images: an empty list of paths")
        names = [Path(p).name for p in paths]
        ids = names if len(set(names)) == len(names) else [str(i) for i in range(len(paths))]
        images = pd.DataFrame({"image_id": ids, "path": paths})
        data = _data_section(images)
    return data_rows(data)


def _array_items(batch: np.ndarray, explainer: Explainer, preprocess: bool) -> list[Item]:
    """An array batch's images: the model's input as they are, or (``preprocess`` given) preprocessed."""
    if batch.ndim not in (4, 5):
        raise StudyError(
            f"images: expected an array batch (N, *spatial, C) of 2D or 3D images, got shape {batch.shape}"
        )
    items = []
    for i, array in enumerate(batch):
        item = Item(ManifestRow(image_id=str(i), path=f"<array {i}>", label=None, mask_path=None, row=i))
        if preprocess:
            image = LoadedImage(np.asarray(array, dtype=np.float32), item.row.path, "npy")
            try:
                item.tensor, item.geometry = explainer.preprocessor(image)
                item.display = explainer.preprocessor.display(image)
                item.placement = placement(item.geometry)
            except Exception as err:  # noqa: BLE001 - reported with the others, naming the image
                item.error = image_error(err, item.row.path)
        else:
            item.tensor = np.asarray(array, dtype=np.float32)
        items.append(item)
    return items


def _tensor_shape(item: Item) -> tuple[int, ...]:
    return () if item.tensor is None else tuple(item.tensor.shape)


def _raise_errors(errors: list[tuple[str, str | None]]) -> None:
    """One StudyError listing every failed image (a notebook stops where a run would write error rows)."""
    if errors:
        raise StudyError("\n".join(f"{where}: {message}" for where, message in errors))
