"""Bytes and time of the report's interactive viewer per image and per map. Run by hand:

    python benchmarks/bench_viewer.py                      # a 64x128x128 CT volume, its source and 3 kinds of map
    python benchmarks/bench_viewer.py --depth 128 --side 256

The source is a synthetic CT volume in Hounsfield units (``medxai.data.synthetic.ct_volume``:
integer HU with fresh noise on every slice, noisier than most scanners', so the source figure is
a high estimate); the maps are the three kinds a run writes: smooth (Grad-CAM-like, a blurred
blob), sparse (gradient-like: mostly near 0 with noisy peaks) and one between (IG-like). Each map
goes through the run's default display transform (gamma 0.5) as the report's viewer does.
Prints the bytes each adds to ``report.html`` (base64 text) and the time to pack it.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from medxai.data.synthetic import ct_volume
from medxai.viz.render import display_values
from medxai.viz.report.viewer import map_view, source_view


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.min()
    return (x / x.max()).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--side", type=int, default=128)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    volume, lesion = ct_volume(rng, lesion=True, size=args.side, depth=args.depth)
    image = SimpleNamespace(
        array=volume[..., None].astype(np.float32), spacing=(2.5, 1.0, 1.0), window=None, invert=False,
        meta={"modality": "CT"},
    )  # fmt: skip
    start = time.perf_counter()
    view = source_view(image, {"center": 40, "width": 400})
    seconds = time.perf_counter() - start
    print(f"volume {args.depth}x{args.side}x{args.side} (viewer grid {'x'.join(map(str, view.dims))})")
    print(f"  source (uint16 HU, lossless): {len(view.payload):>10,} bytes  {seconds:.2f} s")
    coarse = rng.random((4, 4, 4))
    maps = {
        "smooth (Grad-CAM-like)": _unit(zoom(coarse, np.array(volume.shape) / 4, order=1)),
        "between (IG-like)": _unit(
            gaussian_filter(lesion.astype(np.float32), 2) + 0.3 * np.abs(rng.normal(size=volume.shape))
        ),
        "sparse (gradient-like)": _unit(np.abs(rng.normal(size=volume.shape)) ** 3),
    }
    for name, heatmap in maps.items():
        start = time.perf_counter()
        packed = map_view(heatmap, view, display_values(heatmap))
        seconds = time.perf_counter() - start
        print(f"  map, {name:<24} {len(packed['map']):>10,} bytes  {seconds:.2f} s")


if __name__ == "__main__":
    main()
