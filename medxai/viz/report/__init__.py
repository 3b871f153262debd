"""``medxai report RUN_DIR``: a self-contained HTML report and a PNG contact sheet of a run.

:func:`write_report` reads a run folder written by ``medxai run`` (``index.csv``,
``run.json``, the maps) and, when ``medxai evaluate`` has been run, its quality
figures (``metrics.csv``, ``summary.csv``, ``sanity.csv``, ``evaluation.json``).
It writes two files into the run folder:

- ``report.html``: one file that opens from disk anywhere, with no network.
  Every picture is **embedded** as a base64 ``data:`` PNG thumbnail (at most
  :data:`THUMBNAIL_SIZE` pixels a side): each method's overlay and plain
  heatmap, with the ground-truth mask drawn over them as an inline SVG outline.
  The only other link is a relative one to ``contact_sheet.png`` beside it. CSS
  is inline; there are no scripts, web fonts or remote URLs. Every piece of
  text from the run (image ids, paths, errors) is HTML-escaped.
- ``contact_sheet.png``: one row per image and explained class, one column per
  method (the overlay, else the heatmap PNG, else the ``.npy`` map colour-mapped),
  at most :data:`CONTACT_SHEET_LIMIT` images.

Both are written atomically. Only numpy, imageio, scikit-image, matplotlib and
Jinja2 are used: TensorFlow is never imported.

The package, read top to bottom: ``loading`` (the run folder as a :class:`~.loading.Run`),
``pictures`` (map pictures, masks, thumbnails), ``figures`` (the contact sheet and
the sanity chart), ``formatting`` (numbers and names as text), ``sections`` and
``cards`` (view models of the page, plain text only), ``render`` with
``templates/`` (the page itself: Jinja2 with autoescaping). Only the names in
``__all__`` are public.

Example:
    >>> from medxai.viz.report import write_report
    >>> html_path, sheet_path = write_report("runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from medxai.errors import ReportError
from medxai.io.writers import write_png, write_text
from medxai.viz.report.cards import image_block
from medxai.viz.report.figures import CONTACT_SHEET_LIMIT, SHEET_MAX_ROWS, contact_sheet
from medxai.viz.report.formatting import METRIC_COLUMNS
from medxai.viz.report.loading import Run, load_run
from medxai.viz.report.pictures import THUMBNAIL_SIZE, Pictures
from medxai.viz.report.render import render_page
from medxai.viz.report.sections import failures, provenance, quality, sanity

__all__ = [
    "CONTACT_SHEET_LIMIT",
    "METRIC_COLUMNS",
    "THUMBNAIL_SIZE",
    "ReportError",
    "write_report",
]


def _notes(run: Run, shown: int, with_maps: int, on_sheet: int, dropped_rows: int, max_images: int | None) -> list[str]:
    """The run's reading notes, then what the page and the contact sheet left off."""
    notes = list(run.notes)
    if shown < with_maps:
        notes.append(f"Showing the first {shown} of {with_maps} images with maps (max_images={max_images}).")
    if on_sheet < shown:
        notes.append(f"The contact sheet shows the first {on_sheet} of {shown} images (at most {CONTACT_SHEET_LIMIT}).")
    if dropped_rows:
        notes.append(f"The contact sheet left off its last {dropped_rows} image/class rows (at most {SHEET_MAX_ROWS}).")
    return notes


def write_report(run_dir: str | os.PathLike, *, max_images: int | None = None) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``run_dir/contact_sheet.png``; return their paths.

    The HTML embeds every picture as a base64 PNG thumbnail (``data:`` URI), so it
    opens from disk anywhere without network access; its only link is the relative
    one to ``contact_sheet.png``. See the module docstring for what it shows.

    Args:
        run_dir: A folder written by ``medxai run`` (with ``index.csv`` and ``run.json``).
        max_images: Show at most this many images with maps, in manifest order
            (default: all of them). The contact sheet shows at most
            :data:`CONTACT_SHEET_LIMIT`; the HTML says when images were left off.
            Failed images are always all listed.

    Returns:
        ``(report_html_path, contact_sheet_path)``.

    Raises:
        ReportError: ``run_dir`` is not a medxai run, or its index or run.json is unreadable.
        ValueError: ``max_images`` is not a positive integer.
    """
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")
    root = Path(os.fspath(run_dir)).absolute()
    run = load_run(root)
    pictures = Pictures(run)
    with_maps = [image for image in run.images if image.ok_rows]
    shown = with_maps if max_images is None else with_maps[:max_images]
    sheet_images = shown[:CONTACT_SHEET_LIMIT]

    html_path, sheet_path = root / "report.html", root / "contact_sheet.png"
    sheet, dropped_rows = contact_sheet(run, sheet_images, pictures)
    write_png(sheet_path, sheet)

    from medxai._version import __version__

    failed_count, failure_rows = failures(run)
    page = render_page(
        title=f"medxai report: {root.name}",
        counts=(
            f"{len(run.images)} images, {sum(len(i.ok_rows) for i in run.images)} maps, "
            f"{failed_count} failed image{'s' if failed_count != 1 else ''}, "
            f"methods: {', '.join(run.methods) or '—'}"
        ),
        sanity_link=bool(run.sanity or run.evaluation),
        notes=_notes(run, len(shown), len(with_maps), len(sheet_images), dropped_rows, max_images),
        provenance=provenance(run),
        quality=quality(run),
        sanity=sanity(run),
        has_mask=any(image.mask_path for image in shown),
        blocks=[image_block(n, image, run, pictures) for n, image in enumerate(shown, start=1)],
        failed_count=failed_count,
        failures=failure_rows,
        version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        root=str(root),
    )
    write_text(html_path, page)
    return html_path, sheet_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m medxai.viz.report RUN_DIR [--max-images N]``: write the report, print its paths."""
    import argparse

    parser = argparse.ArgumentParser(prog="medxai report", description="write report.html and contact_sheet.png")
    parser.add_argument("run_dir", help="a folder written by `medxai run`")
    parser.add_argument("--max-images", type=int, default=None, help="show at most N images (default: all)")
    args = parser.parse_args(argv)
    try:
        html_path, sheet_path = write_report(args.run_dir, max_images=args.max_images)
    except (ReportError, ValueError) as err:
        print(f"medxai report: {err}", file=sys.stderr)
        return 2
    print(f"medxai: report -> {html_path}\nmedxai: contact sheet -> {sheet_path}")
    return 0
