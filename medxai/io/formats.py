"""The table of output formats: ``name -> (index columns, file suffixes, writer)``.

Every list of format names (the config's ``output.formats``), of the index's file
columns (:mod:`medxai.io.index`), of what a map writes and of what a failed map
leaves to clean up is derived from this one table. Adding a format is one writer
function plus one :func:`register_format`::

    def write_mean(map_: MapToWrite) -> dict[str, str]:
        name = map_.name(".txt")
        write_text(map_.folder / name, f"{map_.heatmap.mean():.6g}\\n")
        return {"mean_path": name}

    register_format(OutputFormat("mean", columns=("mean_path",), suffixes=(".txt",), write=write_mean))
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medxai.io.geometry import default_affine
from medxai.io.nifti import NiftiXforms, write_nifti
from medxai.io.writers import write_npy, write_png
from medxai.preprocess import resize_spatial
from medxai.viz.render import (
    choose_slices,
    colorize,
    display_caption,
    display_values,
    layout_text,
    montage_grid,
    orthogonal_views,
    overlay,
)


@dataclass
class MapToWrite:
    """One map (float in [0, 1] at the source's geometry) and what its files need.

    Attributes:
        heatmap: The map.
        folder: The run folder; file names are relative to it.
        stem: ``maps/<method>/<image id>_c<class>``, relative to ``folder``.
        method: The method's name.
        class_index: The explained class.
        display: The windowed source image in [0, 1] (for overlays), or None.
        affine: The source's affine (None: no position in the patient).
        nifti_shape: A NIfTI source's own ``(X, Y, Z[, 1])`` shape, else None.
        nifti_xforms: A NIfTI source's own sform, qform and codes, else None.
        source_files: The source's DICOM files (for DICOM outputs).
        run_id: The run's id (the DICOM series' provenance).
        colormap, alpha, outline: How pictures are drawn.
        slices, n_slices: Which slices a volume's montage shows (:func:`medxai.viz.render.choose_slices`;
            chosen once per map from the map at full size, the same for every picture of it).
        transform, percentile, gamma: The pictures' display transform
            (:func:`medxai.viz.render.display_values`); the map files are never transformed.
        max_size: The longest side of a picture in pixels (the map files stay at full size).
        region: The explained region (a segmentation model's target, :mod:`medxai.regions`)
            as a bool array at the source's geometry, the shape of ``heatmap``; None for a
            class target. The overlay pictures outline it; the ``mask`` format writes it.
        region_stem: ``regions/<image id>_<target tag>``, relative to ``folder``: where the
            ``mask`` format writes the region (the same for every method explaining it;
            None: ``regions/<stem's name>``).
    """

    heatmap: np.ndarray
    folder: Path
    stem: Path
    method: str
    class_index: int
    display: np.ndarray | None = None
    affine: np.ndarray | None = None
    nifti_shape: tuple[int, ...] | None = None
    nifti_xforms: NiftiXforms | None = None
    source_files: Sequence[str] = ()
    run_id: str = ""
    colormap: str = "inferno"
    alpha: float = 0.5
    outline: Any = None
    max_size: int = 2048
    region: np.ndarray | None = None
    region_stem: Path | None = None
    slices: str = "top_mass"
    n_slices: int = 16
    transform: str = "gamma"
    percentile: float = 99.0
    gamma: float = 0.5
    _pictures: tuple[np.ndarray, np.ndarray | None] | None = field(default=None, init=False, repr=False, compare=False)
    _slices: tuple[int, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def name(self, suffix: str) -> str:
        """The file name ``<stem><suffix>`` relative to the run folder (with ``/``)."""
        return self.stem.as_posix() + suffix

    def pictures(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The map and display image sized for one picture (a volume's: a montage of slices); computed once."""
        if self._pictures is None:
            count = len(self.montage_slices()) if self.heatmap.ndim == 3 else None
            self._pictures = picture_size(self.heatmap, self.display, self.max_size, tiles=count)
        return self._pictures

    def montage_slices(self) -> tuple[int, ...]:
        """A volume's slices shown in its montage pictures (png, overlay), chosen once from the map; () for 2D."""
        if self.heatmap.ndim != 3:
            return ()
        if self._slices is None:
            self._slices = choose_slices(self.heatmap, self.slices, self.n_slices)
        return self._slices

    def shown(self, heatmap: np.ndarray) -> np.ndarray:
        """``heatmap`` (the map, or the map sized for a picture) as the pictures show it (the display transform)."""
        return display_values(heatmap, self.transform, self.percentile, self.gamma)

    def caption(self) -> str:
        """The colour bar's words: what the pictures show."""
        return display_caption(self.transform, self.percentile, self.gamma)

    def colorize(self, heatmap: np.ndarray) -> np.ndarray:
        """``heatmap`` (sized by :meth:`pictures`) as this map's png picture.

        A volume's montage slices (numbered), the display transform, the colour bar.
        """
        slices = self.montage_slices() or None
        return colorize(heatmap, self.colormap, slices=slices, values=self.shown(heatmap), bar=self.caption())

    def picture_region(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """The region (None without one) sized to a picture's ``shape`` (:meth:`pictures`, :func:`picture_size`)."""
        if self.region is None:
            return None
        region = np.asarray(self.region, dtype=bool)
        if region.shape == tuple(shape):
            return region
        return resize_spatial(region[..., np.newaxis].astype(np.float32), shape, anti_aliasing=False)[..., 0] >= 0.5

    def source_picture(self) -> np.ndarray:
        """The windowed source image (formats with ``display``); ValueError where the run has none."""
        if self.display is None:
            raise ValueError("this output format draws over the source image, and none was loaded for it")
        return self.display

    def overlay(
        self,
        display: np.ndarray,
        heatmap: np.ndarray,
        region: np.ndarray | None = None,
        *,
        picture: bool = True,
        values: np.ndarray | None = None,
    ) -> np.ndarray:
        """``heatmap`` over ``display`` in this map's colours (an RGB uint8 picture), ``region`` outlined.

        ``picture=True``: the overlay PNG (a volume's montage slices, the colour bar); False: just the
        blend of one 2D plane (the DICOM Secondary Capture's frames). ``values``: ``heatmap`` as shown
        (None: :meth:`shown` of it; a plane of a volume passes its part of the volume's).
        """
        slices = (self.montage_slices() or None) if picture else None
        return overlay(
            display, heatmap, colormap=self.colormap, alpha=self.alpha, outline=self.outline, region=region,
            slices=slices, values=self.shown(heatmap) if values is None else values,
            bar=self.caption() if picture else None,
        )  # fmt: skip


@dataclass(frozen=True)
class OutputFormat:
    """One output format.

    Attributes:
        name: The name in ``output.formats``.
        columns: The index columns naming its files, in index order.
        suffixes: What it may write beside the map's stem (removed when the map fails).
        write: Writes one map's files; returns ``{column: file name}`` (names from :meth:`MapToWrite.name`).
        default: Written when the config names no formats.
        display: Needs the windowed source image (:attr:`MapToWrite.display`).
        sources: The image kinds it can write for (None: any).
    """

    name: str
    columns: tuple[str, ...]
    suffixes: tuple[str, ...]
    write: Callable[[MapToWrite], dict[str, str]]
    default: bool = False
    display: bool = False
    sources: tuple[str, ...] | None = None


_FORMATS: dict[str, OutputFormat] = {}


def register_format(fmt: OutputFormat) -> OutputFormat:
    """Add ``fmt`` to the table (its columns after every earlier format's).

    Raises:
        ValueError: the name or a column is taken by another format.
    """
    taken = {c for f in _FORMATS.values() if f.name != fmt.name for c in f.columns}
    if fmt.name in _FORMATS or taken & set(fmt.columns):
        raise ValueError(f"output format {fmt.name!r} or one of its columns {fmt.columns} is already registered")
    _FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    """Remove a format from the table (a no-op when it is not there)."""
    _FORMATS.pop(name, None)


def output_formats() -> dict[str, OutputFormat]:
    """Every registered format by name, in registration order."""
    return dict(_FORMATS)


def file_columns() -> tuple[str, ...]:
    """The index columns naming map files: every format's, in registration order."""
    return tuple(c for f in _FORMATS.values() for c in f.columns)


def picture_size(
    heatmap: np.ndarray,
    display: np.ndarray | None,
    max_size: int,
    *,
    montage_of_slices: bool = True,
    tiles: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The map (and display image) shrunk so that its picture is at most ``max_size`` on its longest side.

    A volume's picture is a montage of ``tiles`` slices (None: 16 at most), so the slices shrink
    until the montage fits; with ``montage_of_slices=False`` (one picture per slice) each slice
    must fit. (The colour bar beside a picture is not counted.)
    """
    if heatmap.ndim == 3 and montage_of_slices:
        grid = montage_grid(min(heatmap.shape[0], 16) if tiles is None else tiles)  # (rows, columns) of slices
        extent = (grid[0] * heatmap.shape[1], grid[1] * heatmap.shape[2])
    else:
        extent = heatmap.shape
    scale = max_size / max(extent)
    if scale >= 1:
        return heatmap, display
    shape = (*heatmap.shape[:-2], *(max(1, int(n * scale)) for n in heatmap.shape[-2:]))
    small = np.clip(resize_spatial(heatmap[..., np.newaxis], shape)[..., 0], 0.0, 1.0)
    if display is not None:
        display = np.clip(resize_spatial(display, shape), 0.0, 1.0)
    return small, display


# ------------------------------------------------------------------ the built-in formats
def _write_npy(map_: MapToWrite) -> dict[str, str]:
    name = map_.name(".npy")
    write_npy(map_.folder / name, map_.heatmap.astype(np.float32))
    return {"npy_path": name}


def _write_png(map_: MapToWrite) -> dict[str, str]:
    """The colour-mapped map (a volume's: a montage of numbered slices) with a colour bar; for a
    volume also ``<stem>.ortho.png``, three orthogonal planes through the peak voxel (over the
    display image when there is one)."""
    name = map_.name(".png")
    picture = map_.colorize(map_.pictures()[0])
    write_png(map_.folder / name, picture, layout_text(picture, map_.montage_slices()))
    written = {"png_path": name}
    if map_.heatmap.ndim == 3:
        written["ortho_path"] = _write_ortho(map_)
    return written


def _write_ortho(map_: MapToWrite) -> str:
    """Three orthogonal planes through the peak voxel of the map at full size (shrunk planes could miss it)."""
    name = map_.name(".ortho.png")
    heatmap, display = map_.heatmap, map_.display
    picture, _ = orthogonal_views(
        heatmap, display, colormap=map_.colormap, alpha=map_.alpha, values=map_.shown(heatmap), bar=map_.caption()
    )
    write_png(map_.folder / name, picture, layout_text(picture, None))
    return name


def _write_overlay(map_: MapToWrite) -> dict[str, str]:
    """The map over the source image; the strongest regions' and the explained region's outlines."""
    name = map_.name(".overlay.png")
    small, display = map_.pictures()
    if display is None:
        display = map_.source_picture()  # raises: an overlay needs the source image
    picture = map_.overlay(display, small, map_.picture_region(small.shape))
    write_png(map_.folder / name, picture, layout_text(picture, map_.montage_slices()))
    return {"overlay_path": name}


def _nifti(map_: MapToWrite, name: str, array: np.ndarray, **kwargs: Any) -> None:
    """``array`` (at the map's geometry) as the NIfTI ``name``, placed as the map is: one geometry for both."""
    affine = map_.affine if map_.affine is not None else default_affine(None, map_.heatmap.ndim)
    write_nifti(map_.folder / name, array, affine, shape_xyz=map_.nifti_shape, xforms=map_.nifti_xforms, **kwargs)


def _write_nifti(map_: MapToWrite) -> dict[str, str]:
    name = map_.name(".nii.gz")
    _nifti(map_, name, map_.heatmap)
    return {"nifti_path": name}


#: What the SD map of a map is written as, beside the map: ``<stem>.sd.npy`` and, with NIfTI, ``<stem>.sd.nii.gz``.
SD_SUFFIXES = (".sd.npy", ".sd.nii.gz")


def write_sd(map_: MapToWrite, sd: np.ndarray, nifti: bool) -> str:
    """A map's SD map (float32, at the map's geometry) as ``<stem>.sd.npy`` and, when ``nifti``,
    ``<stem>.sd.nii.gz`` placed as the map's NIfTI is; returns the ``.npy``'s relative path."""
    sd = np.asarray(sd, dtype=np.float32)
    if sd.shape != map_.heatmap.shape:
        raise ValueError(f"the SD map {sd.shape} and the map {map_.heatmap.shape} differ in shape")
    name = map_.name(SD_SUFFIXES[0])
    write_npy(map_.folder / name, sd)
    if nifti:
        _nifti(map_, map_.name(SD_SUFFIXES[1]), sd, description="medxai SD map")
    return name


_written_regions: dict[str, str] = {}  # region file (absolute) -> the key of what this process wrote there
_region_locks: dict[str, threading.Lock] = {}
_region_locks_lock = threading.Lock()


def write_once(path: Path, key: str, write: Callable[[], object]) -> None:
    """Run ``write`` unless this process already wrote ``path`` with ``key`` and it is still there.

    One region's files are named by every row explaining it (one a method); the writer
    threads may reach them together, so each path has a lock. ``key`` names the content
    (a deleted file, or other content at the same path, is written again).
    """
    where = os.path.abspath(path)
    with _region_locks_lock:
        lock = _region_locks.setdefault(where, threading.Lock())
    with lock:
        if _written_regions.get(where) == key and os.path.exists(where):
            return
        write()
        _written_regions[where] = key


def _write_mask(map_: MapToWrite) -> dict[str, str]:
    """The explained region as a 0/1 NIfTI and, for a DICOM source, a DICOM Segmentation.

    Written once per run at ``<region_stem>.nii.gz`` / ``.seg.dcm`` and named by every
    row explaining that region; a class target (no region) or an empty region writes
    nothing (empty columns).
    """
    region = map_.region
    if region is None:
        return {}
    region = np.asarray(region, dtype=bool)
    if region.shape != map_.heatmap.shape:
        raise ValueError(f"the region {region.shape} and the map {map_.heatmap.shape} differ in shape")
    if not region.any():
        return {}
    stem = map_.region_stem if map_.region_stem is not None else Path("regions") / map_.stem.name
    digest = hashlib.sha256(f"{map_.run_id}\0{region.shape}\0{list(map_.source_files)}".encode())
    digest.update(np.packbits(region).tobytes())
    if map_.affine is not None:
        digest.update(np.ascontiguousarray(map_.affine, dtype=np.float64).tobytes())
    key = digest.hexdigest()
    written = {"mask_nifti_path": stem.as_posix() + ".nii.gz"}
    write_once(
        map_.folder / written["mask_nifti_path"],
        key,
        lambda: _nifti(map_, written["mask_nifti_path"], region, dtype=np.uint8, description="medxai explained region"),
    )
    if map_.source_files:
        from medxai.io.dicom_export import write_dicom_seg  # deferred: highdicom loads only when asked for

        name = stem.as_posix() + ".seg.dcm"
        write_once(
            map_.folder / name,
            key,
            lambda: write_dicom_seg(
                region,
                map_.source_files,
                map_.folder / name,
                channel=map_.class_index,
                region=stem.name,
                run_id=map_.run_id,
            ),  # fmt: skip
        )
        written["mask_seg_path"] = name
    return written


def _write_dicom(map_: MapToWrite) -> dict[str, str]:
    """The Parametric Map and the overlay's Secondary Capture(s), in new series of the source study."""
    from medxai.io.dicom_export import (
        write_dicom_outputs,  # deferred: highdicom loads only when asked for
    )

    heatmap = map_.heatmap
    small, shown = picture_size(heatmap, map_.source_picture(), map_.max_size, montage_of_slices=False)
    display = map_.source_picture() if shown is None else shown
    region = map_.picture_region(small.shape)
    if heatmap.ndim == 2:
        pictures = map_.overlay(display, small, region, picture=False)
    else:  # one picture per slice, not the montage of the overlay PNG
        regions = [None] * len(small) if region is None else list(region)
        shown = map_.shown(small)  # one display transform for the volume
        pictures = np.stack(
            [map_.overlay(d, h, r, picture=False, values=v) for d, h, r, v in zip(display, small, regions, shown)]
        )
    written = write_dicom_outputs(
        heatmap,
        pictures,
        map_.source_files,
        map_.folder / map_.stem,
        method=map_.method,
        class_index=map_.class_index,
        run_id=map_.run_id,
    )
    return {k: Path(v).relative_to(map_.folder).as_posix() for k, v in written.items()}


register_format(OutputFormat("npy", ("npy_path",), (".npy",), _write_npy, default=True))
register_format(OutputFormat("png", ("png_path", "ortho_path"), (".png", ".ortho.png"), _write_png, default=True))
register_format(
    OutputFormat("overlay", ("overlay_path",), (".overlay.png",), _write_overlay, default=True, display=True)
)
register_format(OutputFormat("nifti", ("nifti_path",), (".nii.gz",), _write_nifti))
register_format(OutputFormat(
    "dicom", ("dicom_map_path", "dicom_overlay_path"), (".pm.dcm", ".sc.dcm", ".sc"), _write_dicom,
    display=True, sources=("dicom",),
))  # fmt: skip
# Beside the region's stem, not the map's: no suffixes to remove when one map fails (other rows share the files).
register_format(OutputFormat("mask", ("mask_nifti_path", "mask_seg_path"), (), _write_mask))
