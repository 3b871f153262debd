"""Size and speed of ``medxai report`` on a synthetic run. Run by hand:

    python benchmarks/bench_report.py                   # 500 images x 3 methods, 512 px maps, a file per map
    python benchmarks/bench_report.py --images 200 --size 1024
    python benchmarks/bench_report.py --browser         # also time headless Chromium opening the page

Writes a run folder (heatmap and overlay PNGs, index.csv, run.json, metrics.csv;
no TensorFlow) with ``tests/viz/test_report_scale.py``'s ``synthetic_run``, then
times ``write_report`` on it and prints the size of ``report.html``, its cost per
image, the contact sheets written, and (``--browser``) how long Chromium takes to
open the page and run its script.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "viz"))

from test_report_scale import METHODS, synthetic_run

from medxai.viz.report import THUMBNAIL_SIZE, write_report


def _browser_seconds(html: Path) -> float | None:
    """Seconds for headless Chromium to load the page and render its first page of cards; None without one."""
    names = ("chromium", "chromium-browser", "google-chrome")
    browser = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if browser is None:
        return None
    with tempfile.TemporaryDirectory() as profile:
        start = time.perf_counter()
        done = subprocess.run(
            [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}",
             "--dump-dom", html.as_uri()],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        took = time.perf_counter() - start
    if 'class="image"' not in done.stdout:
        raise RuntimeError(f"the page rendered no cards: {done.stderr[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500, help="images in the run (default 500)")
    parser.add_argument("--methods", type=int, default=3, choices=range(1, len(METHODS) + 1), help="default 3")
    parser.add_argument("--size", type=int, default=512, help="side of the maps in pixels (default 512)")
    parser.add_argument("--pool", type=int, default=None, help="distinct pictures, reused (default: a file per map)")
    parser.add_argument("--thumbnail-size", type=int, default=THUMBNAIL_SIZE, help="report thumbnail size")
    parser.add_argument("--browser", action="store_true", help="time headless Chromium opening the page")
    parser.add_argument("--keep", type=Path, default=None, help="write the run here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.keep or Path(scratch) / "run"
        start = time.perf_counter()
        synthetic_run(run_dir, args.images, methods=METHODS[: args.methods], size=args.size, pool=args.pool)
        made = time.perf_counter() - start
        maps_mb = sum(p.stat().st_size for p in (run_dir / "maps").rglob("*.png")) / 1e6
        print(f"run: {args.images} images x {args.methods} methods, {args.size} px maps "
              f"({maps_mb:.0f} MB of PNGs), written in {made:.1f} s")  # fmt: skip

        start = time.perf_counter()
        html, _ = write_report(run_dir, thumbnail_size=args.thumbnail_size)
        took = time.perf_counter() - start
        size = html.stat().st_size
        sheets = sorted(run_dir.glob("contact_sheet*.png"))
        sheets_mb = sum(p.stat().st_size for p in sheets) / 1e6
        print(f"report.html: {size / 1e6:.1f} MB ({size / args.images / 1e3:.1f} KB per image), "
              f"written in {took:.1f} s ({args.images / took:.0f} images/s)")  # fmt: skip
        print(f"contact sheets: {len(sheets)} ({sheets_mb:.1f} MB)")
        if args.browser:
            seconds = _browser_seconds(html)
            opened = "no Chromium found" if seconds is None else f"opened in {seconds:.1f} s (headless Chromium)"
            print(f"browser: {opened}")


if __name__ == "__main__":
    main()
