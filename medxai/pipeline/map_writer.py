"""The map writer: one map's files in every configured output format, on writer threads or not.

The formats are the table of :mod:`medxai.io.formats`. Every file is written to a
temporary name and renamed, so nothing is ever half written; a map whose write fails
leaves no file, and an image any of whose maps failed names no file in the index
(:meth:`MapWriter.settle`). PNG and overlay pictures are at most ``output.max_size``
pixels on their longest side; the ``.npy``, NIfTI and DICOM maps are always at full size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from medxai.heatmap import HeatmapPolicy, heatmap_sd, to_heatmap
from medxai.io import safe_id
from medxai.io.formats import (
    SD_SUFFIXES,
    MapToWrite,
    OutputFormat,
    file_columns,
    output_formats,
    write_once,
    write_sd,
)
from medxai.io.limits import must_propagate
from medxai.io.writers import is_disk_full, write_npy
from medxai.pipeline.item import Item, MapSD, image_error
from medxai.pipeline.run_folder import RunFolder, map_files, no_files
from medxai.pipeline.targets import Target, target_tag
from medxai.preprocess import resize_mask
from medxai.regions import ResolvedRegion

_PENDING = "_pending_files"  # a row's not yet finished map writes (a Future of its paths)


class MapWriter:
    """Writes maps into a run folder in the configured formats.

    Args:
        folder: The run folder.
        output: The config's ``output`` section (formats, colormap, alpha, overlay outline, max size).
        to_source: Takes a map at the model's input back to the source's geometry
            (:meth:`medxai.preprocess.Preprocessor.to_source`).
        policy: Turns signed attributions into a map in [0, 1].
        run_id: The run's id (for the DICOM series).
    """

    def __init__(
        self,
        folder: RunFolder,
        output: Any,
        to_source: Callable[[np.ndarray, Any], np.ndarray],
        policy: HeatmapPolicy,
        run_id: str,
    ):
        table = output_formats()
        self.folder = folder
        self.output = output
        self.formats: list[OutputFormat] = [table[name] for name in output.formats]
        self.to_source = to_source
        self.policy = policy
        self.run_id = run_id
        self._threads: ThreadPoolExecutor | None = None

    @property
    def needs_display(self) -> bool:
        """Whether a format draws over the windowed source image."""
        return any(fmt.display for fmt in self.formats)

    def check_source(self, kind: str, path: str) -> None:
        """Refuse an image of a kind a format cannot write for.

        Raises:
            ValueError: naming the format and the file.
        """
        for fmt in self.formats:
            if fmt.sources is not None and kind not in fmt.sources:
                needed = "/".join(s.upper() for s in fmt.sources)
                raise ValueError(
                    f"output.formats: {fmt.name} needs a {needed} source, and {path} is {kind.upper()}; "
                    f"leave '{fmt.name}' out of output.formats for runs with other images"
                )

    @contextlib.contextmanager
    def threads(self, enabled: bool) -> Iterator[None]:
        """Within the ``with`` body, write on two threads (when ``enabled``) while the caller computes."""
        with ThreadPoolExecutor(2) if enabled else contextlib.nullcontext() as pool:
            self._threads = pool
            try:
                yield
            finally:
                self._threads = None

    def write_later(
        self, row: dict[str, Any], item: Item, method: str, target: Target, attributions: np.ndarray, sd: MapSD = None
    ) -> None:
        """Write one map (now, or on the writer threads); :meth:`settle` puts its file names into ``row``."""
        row[_PENDING] = self._submit(self.write_map, item, method, target, attributions, sd)

    def write_map(
        self, item: Item, method: str, target: Target, attributions: np.ndarray, sd: np.ndarray | None = None
    ) -> dict[str, str]:
        """Write one map in every format; on any failure remove what this call wrote, then raise.

        A region target's map is written with its region (at the source's geometry) for the
        pictures' outline and the ``mask`` format; the region itself goes once to
        ``regions/<image id>_<target tag>.npy`` (bool; :meth:`write_region`). With ``sd`` (the
        per-value SD of the signed attributions, a method with ``uncertainty``), the SD map in
        the map's units (:func:`medxai.heatmap.heatmap_sd`), resampled to the source's geometry
        as the map is, goes beside it as ``<stem>.sd.npy`` (and ``<stem>.sd.nii.gz`` when NIfTI
        maps are written).

        Returns:
            The index cells: every file column (empty when its format is not written), ``npy_bytes``,
            ``region_path`` (empty for a class target) and ``sd_path`` (empty without ``sd``).
        """
        heatmap = self.to_source(to_heatmap(attributions, self.policy), item.geometry)
        output = self.output
        tag = f"{safe_id(item.row.image_id)}_{target_tag(target)}"
        region = target if isinstance(target, ResolvedRegion) else None
        map_ = MapToWrite(
            heatmap, self.folder.out, Path("maps") / method / tag,
            method, target.channel if isinstance(target, ResolvedRegion) else target, display=item.display,
            affine=item.geometry.affine, nifti_shape=item.nifti_shape,
            nifti_xforms=item.nifti_xforms, source_files=item.source_files, run_id=self.run_id,
            colormap=output.colormap, alpha=output.alpha, outline=output.overlay_outline, max_size=output.max_size,
            slices=output.montage.slices, n_slices=output.montage.n, transform=output.display.transform,
            percentile=output.display.percentile, gamma=output.display.gamma,
            region=None if region is None else resize_mask(region.mask, item.geometry.source_spatial_shape),
            region_stem=None if region is None else Path("regions") / tag,
        )  # fmt: skip
        written = {k: "" for k in file_columns()}
        try:
            for fmt in self.formats:
                written.update(fmt.write(map_))
            written["region_path"] = (
                ""
                if map_.region is None or map_.region_stem is None
                else self.write_region(map_.region, map_.region_stem)
            )
            written["sd_path"] = "" if sd is None else write_sd(map_, self.sd_map(attributions, sd, item), self.nifti)
        except BaseException:
            suffixes = [suffix for fmt in self.formats for suffix in fmt.suffixes] + list(SD_SUFFIXES)
            self.folder.remove([map_.name(suffix) for suffix in suffixes])
            raise
        written["npy_bytes"] = (
            str(os.path.getsize(self.folder.out / written["npy_path"])) if written.get("npy_path") else ""
        )
        return written

    @property
    def nifti(self) -> bool:
        """Whether maps are written as NIfTI (then SD maps are too)."""
        return any(fmt.name == "nifti" for fmt in self.formats)

    def sd_map(self, attributions: np.ndarray, sd: np.ndarray, item: Item) -> np.ndarray:
        """The SD map in the map's units (:func:`medxai.heatmap.heatmap_sd`) at the source's geometry.

        Resampled by the map's own resampling (linear); it is scaled into [0, 1] for it and back,
        so an SD over 1 is not clipped.
        """
        values = heatmap_sd(attributions, sd, self.policy)
        scale = max(1.0, float(values.max()))
        return self.to_source(values / scale, item.geometry) * np.float32(scale)

    def write_region(self, region: np.ndarray, stem: Path) -> str:
        """The region (bool, at the source's geometry) as ``<stem>.npy``, once per run; its relative path."""
        name = stem.as_posix() + ".npy"
        mask = np.asarray(region, dtype=bool)
        key = hashlib.sha256(f"{self.run_id}\0{mask.shape}".encode() + np.packbits(mask).tobytes()).hexdigest()
        write_once(self.folder.out / name, key, lambda: write_npy(self.folder.out / name, mask))
        return name

    def _submit(self, function: Callable[..., Any], *args: Any) -> Future:
        """Run now, or on the writer threads when I/O overlaps the computation."""
        if self._threads is not None:
            return self._threads.submit(function, *args)
        future: Future = Future()
        try:
            future.set_result(function(*args))
        except BaseException as err:  # delivered by settle, like a thread's failure
            if must_propagate(err):
                raise
            future.set_exception(err)
        return future

    def settle(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, OSError]]:
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
                row.update(status="error", error=image_error(err, row["source_path"]))
        failed = {r["image_id"]: r["error"] for r in rows if r["status"] == "error"}
        for r in rows:
            if r["image_id"] in failed and r["status"] == "ok":
                r.update(status="error", error=f"another map of this image failed: {failed[r['image_id']]}")
            if r["status"] == "error":
                self.folder.remove(map_files(r))
                r.update(no_files())
        return rows, full
