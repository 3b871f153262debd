"""What resume's content hash costs (issue 19): a study of N small PNGs, run, then resumed.

    python benchmarks/bench_resume_hash.py --images 3000 --folder /tmp/medxai-hash

Writes N 256x256 noise PNGs and a manifest, runs the demo model (plain gradient, npy maps),
runs it again (every image resumed) and times that second run, then times the content hash
(:func:`medxai.pipeline.journal.content_digest`) of every source alone, in MB/s.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from PIL import Image

import medxai
from medxai.pipeline.journal import content_digest

DEMO_MODEL = Path(__file__).resolve().parents[1] / "data_samples" / "model.keras"


def make_study(folder: Path, images: int) -> Path:
    """N noise PNGs, their manifest and a config; the files are kept between calls."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for n in range(images):
        path = folder / "images" / f"img{n:05d}.png"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (256, 256), dtype=np.uint8)).save(path)
        rows.append((f"img{n:05d}", f"images/{path.name}", n % 2))
    with open(folder / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("image_id", "path", "label"), *rows])
    return folder / "manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/medxai-hash"))
    args = parser.parse_args()
    manifest = make_study(args.folder, args.images)
    config = {
        "model": {"path": str(DEMO_MODEL)},
        "data": {"manifest": str(manifest), "id_column": "image_id", "label_column": "label"},
        "preprocess": {"scale": "minmax"},
        "methods": ["gradient"],
        "targets": "label",
        "output": {"dir": str(args.folder / "run"), "formats": ["npy"]},
        "runtime": {"progress": False},
    }
    started = time.perf_counter()
    first = medxai.run(config)
    computed = time.perf_counter() - started
    started = time.perf_counter()
    again = medxai.run(config)
    resumed = time.perf_counter() - started
    sources = sorted((args.folder / "images").glob("*.png"))
    size = sum(p.stat().st_size for p in sources)
    started = time.perf_counter()
    for path in sources:
        content_digest(str(path))
    hashed = time.perf_counter() - started
    print(
        f"{args.images} images, {size / 1e6:.1f} MB: first run {computed:.1f} s ({first.images - first.resumed} "
        "computed), "
        f"resumed run {resumed:.2f} s ({again.resumed} resumed); hashing alone {hashed:.2f} s, "
        f"{size / 1e6 / hashed:.0f} MB/s, {hashed / args.images * 1e3:.2f} ms per image"
    )


if __name__ == "__main__":
    main()
