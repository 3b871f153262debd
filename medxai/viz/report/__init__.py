"""``medxai report RUN_DIR``: an HTML report and PNG contact sheets of a run, for runs of any size.

:func:`write_report` reads a run folder written by ``medxai run`` (``index.csv``,
``run.json``, the maps) and, when ``medxai evaluate`` has been run, its quality
figures (``metrics.csv``, ``summary.csv``, ``sanity.csv``, ``evaluation.json``).
It writes into the run folder:

- ``report.html``: one file that opens from disk, with no network. Each map's
  overlay and plain heatmap is **embedded** as a small thumbnail (at most
  :data:`THUMBNAIL_SIZE` pixels a side, JPEG or PNG, whichever is smaller), with
  the ground-truth mask drawn over it as an inline SVG outline, and **links**
  (relative) to its full-size PNG in the run folder. The image cards are held as
  JSON and rendered by an inline script a page at a time, with filters (method,
  class, mispredicted or correct, ok or failed; a region run's channel) and a sort
  by any per-map figure. A region target's card (a segmentation model) has the
  region's outline drawn into its pictures (from ``regions/<image>_<tag>.npy``, the
  index's ``region_path``) and the caption ``channel N (name) · <region> <component>
  · <voxels> voxels · score S · p = P`` (S the explained region score, P the
  channel's mean probability over the region).
  The run's provenance, quality figures, sanity check and failed images are plain
  HTML. CSS and script are inline; there are no web fonts or remote URLs. Every
  piece of text from the run is HTML-escaped, or set as text by the script.
- ``contact_sheet.png`` (and ``contact_sheet_2.png``, ... for longer runs): one
  row per image and explained class (region), one column per method, at most
  :data:`CONTACT_SHEET_LIMIT` rows a sheet, every image of the report.

Every picture is read once. Files are written atomically. TensorFlow is never imported.

The package, read top to bottom: ``loading`` (the run folder as a :class:`~.loading.Run`),
``outcomes`` (labels against predictions), ``pictures`` (map pictures, masks, thumbnails),
``figures`` (the contact sheet and the sanity chart drawn), ``sheets`` (contact sheet
pages), ``formatting`` (numbers and names as text), ``sections`` and ``cards`` (view
models of the page, plain text only), ``page_data`` (the cards as the page's JSON),
``progress`` (the bar), ``render`` with ``templates/`` (the page itself: Jinja2 with
autoescaping, and ``report.js``). Only the names in ``__all__`` are public.

Example:
    >>> from medxai.viz.report import write_report
    >>> html_path, sheet_path = write_report("runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from medxai._progress import progress_bar
from medxai.errors import ReportError
from medxai.io.writers import write_text
from medxai.viz.report.cards import image_block
from medxai.viz.report.figures import CONTACT_SHEET_LIMIT
from medxai.viz.report.formatting import METRIC_COLUMNS
from medxai.viz.report.loading import ImageEntry, Run, load_run
from medxai.viz.report.outcomes import class_names
from medxai.viz.report.page_data import PAGE_SIZE, page_data, script_json
from medxai.viz.report.pictures import THUMBNAIL_SIZE, Pictures
from medxai.viz.report.render import render_page
from medxai.viz.report.sections import failures, provenance, quality, recommendation, sanity
from medxai.viz.report.sheets import SHEET_NAME, ContactSheets
from medxai.viz.report.viewer import VIEWER_MB

__all__ = [
    "CONTACT_SHEET_LIMIT",
    "METRIC_COLUMNS",
    "THUMBNAIL_SIZE",
    "VIEWER_MB",
    "ReportError",
    "write_report",
]


def _check_positive(name: str, value: int | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}, got {value!r}")


def _first_images(run: Run, max_images: int | None) -> list[ImageEntry]:
    """The images shown: all, or those up to the ``max_images``-th with maps (failed ones on the way included)."""
    if max_images is None:
        return list(run.images)
    shown, with_maps = [], 0
    for image in run.images:
        if image.ok_rows:
            if with_maps == max_images:
                break
            with_maps += 1
        shown.append(image)
    return shown


def write_report(
    run_dir: str | os.PathLike,
    *,
    max_images: int | None = None,
    thumbnail_size: int = THUMBNAIL_SIZE,
    page_size: int = PAGE_SIZE,
    progress: bool = True,
    viewer_mb: float = VIEWER_MB,
) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and the contact sheets; return the page's and the first sheet's paths.

    See the module docstring for what they show. A report of 500 images and 3
    methods is about 10 to 20 MB (the thumbnails), whatever the size of the maps.

    Args:
        run_dir: A folder written by ``medxai run`` (with ``index.csv`` and ``run.json``).
        max_images: Show at most this many images with maps, in manifest order (default: all).
            Failed images are always all listed in the "Failed images" section.
        thumbnail_size: The longest side of an embedded thumbnail in pixels (default
            :data:`THUMBNAIL_SIZE`); the page's size grows with its square.
        page_size: Images per page of the "Images" section when it opens (the reader can change it).
        progress: Show a progress bar on stderr (images, images per second).
        viewer_mb: Embed the interactive viewer (slices, opacity, window/level, orthogonal
            views; :mod:`~medxai.viz.report.viewer`) for the images with maps in order until
            its data reach this many megabytes (default :data:`VIEWER_MB`; 0: no viewer); later
            images show thumbnails only. A 64x128x128 CT volume costs about 1.3 MB and each of
            its maps 0.2 to 1.3 MB; a 256 px 2D image about 0.1 MB (``benchmarks/bench_viewer.py``).

    Returns:
        ``(report_html_path, contact_sheet_path)``; later sheets are ``contact_sheet_2.png``, ...

    Raises:
        ReportError: ``run_dir`` is not a medxai run, or its index or run.json is unreadable.
        ValueError: ``max_images``, ``thumbnail_size`` or ``page_size`` is not a positive integer,
            or ``viewer_mb`` is not a number >= 0.
    """
    if isinstance(viewer_mb, bool) or not isinstance(viewer_mb, (int, float)) or not viewer_mb >= 0:
        raise ValueError(f"viewer_mb must be a number of megabytes >= 0, got {viewer_mb!r}")
    _check_positive("max_images", max_images, optional=True)
    _check_positive("thumbnail_size", thumbnail_size)
    _check_positive("page_size", page_size)
    root = Path(os.fspath(run_dir)).absolute()
    run = load_run(root)
    shown = _first_images(run, max_images)
    with_maps = [image for image in run.images if image.ok_rows]
    shown_with_maps = [image for image in shown if image.ok_rows]
    methods = [m for m in run.methods if any(r.method == m for image in shown for r in image.ok_rows)]
    names = class_names(run)
    pictures = Pictures(run)
    sheets = ContactSheets(root, root.name, methods)
    blocks, viewed, spent = [], 0, 0
    with progress_bar(len(shown), desc="report", unit="img", enabled=progress, log_interval=2.0) as bar:
        for number, image in enumerate(shown, start=1):
            viewer = bool(image.ok_rows) and spent < viewer_mb * 1e6
            block, sheet_rows = image_block(number, image, run, pictures, names, methods, thumbnail_size, viewer)
            if block.view is not None:
                viewed += 1
                spent += len(block.view["src"]) + sum(len(card.view["map"]) for card in block.cards if card.view)
            blocks.append(block)
            sheets.add(number, sheet_rows)
            bar.update(1)
        written_sheets = sheets.close()

    from medxai._version import __version__

    notes = list(run.notes)
    if len(shown_with_maps) < len(with_maps):
        notes.append(
            f"Showing the first {len(shown_with_maps)} of {len(with_maps)} images with maps (max_images={max_images})."
        )
    without = [block for block in blocks if block.viewer_problem]
    if without:
        notes.append(
            f"No interactive viewer for {len(without)} image{'s' if len(without) != 1 else ''} "
            f"(e.g. {without[0].image_id}: {without[0].viewer_problem})."
        )
    if spent >= viewer_mb * 1e6 and viewed < len(shown_with_maps):
        notes.append(
            f"The interactive viewer is embedded for the first {viewed} of {len(shown_with_maps)} images with "
            f"maps ({spent / 1e6:.1f} MB; viewer_mb={viewer_mb:g}); the others show thumbnails."
        )
    failed_count, failure_rows = failures(run)
    page = render_page(
        title=f"medxai report: {root.name}",
        counts=(
            f"{len(run.images)} images, {sum(len(i.ok_rows) for i in run.images)} maps, "
            f"{failed_count} failed image{'s' if failed_count != 1 else ''}, "
            f"methods: {', '.join(run.methods) or '—'}"
        ),
        sanity_link=bool(run.sanity or run.evaluation),
        notes=notes,
        recommendation=recommendation(run),
        provenance=provenance(run),
        quality=quality(run),
        sanity=sanity(run),
        has_mask=any(block.mask == "outline" for block in blocks),
        has_regions=any(card.channel is not None for block in blocks for card in block.cards),
        image_count=len(blocks),
        data=script_json(page_data(blocks, run.methods, names, run.evaluation_spec, page_size, pictures.colormap)),
        sheets=written_sheets,
        failed_count=failed_count,
        failures=failure_rows,
        version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        root=str(root),
    )
    html_path = root / "report.html"
    write_text(html_path, page)
    return html_path, root / SHEET_NAME


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m medxai.viz.report RUN_DIR [--max-images N] [--thumbnail-size PX] [--no-progress]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="medxai report", description="write report.html and contact sheets")
    parser.add_argument("run_dir", help="a folder written by `medxai run`")
    parser.add_argument("--max-images", type=int, default=None, help="show at most N images (default: all)")
    parser.add_argument(
        "--thumbnail-size",
        type=int,
        default=THUMBNAIL_SIZE,
        help=f"longest side of the embedded thumbnails in pixels (default {THUMBNAIL_SIZE})",
    )
    parser.add_argument(
        "--viewer-mb",
        type=float,
        default=VIEWER_MB,
        help=f"embed the interactive viewer until its data reach MB megabytes (default {VIEWER_MB:g}; 0: none)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        html_path, sheet_path = write_report(
            args.run_dir,
            max_images=args.max_images,
            thumbnail_size=args.thumbnail_size,
            progress=not args.no_progress,
            viewer_mb=args.viewer_mb,
        )
    except (ReportError, ValueError) as err:
        print(f"medxai report: {err}", file=sys.stderr)
        return 2
    print(f"medxai: report -> {html_path}\nmedxai: contact sheets -> {sheet_path.parent / 'contact_sheet*.png'}")
    return 0
