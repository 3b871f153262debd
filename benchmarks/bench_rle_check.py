"""Speed of the RLE frame check (``medxai.io.dicom_rle``) against decoding the same frame. Run by hand:

    python benchmarks/bench_rle_check.py               # 512 x 512, 16-bit grey, 20 repeats
    python benchmarks/bench_rle_check.py --size 1024 --repeats 5

Encodes four 16-bit images with pydicom's RLE encoder (noise; a CT-like ramp with
0-2 noise; a smooth ramp; and runs of 1-2 bytes, the most run headers a segment can
hold) and prints, per image, the median time of :func:`rle_frame_problem` and of
pydicom's and pylibjpeg-rle's decoders on the same frame.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from pydicom.pixels.decoders.rle import _rle_decode_frame
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import RLELossless

from medxai.io.dicom_rle import rle_frame_problem


def median_ms(func: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``func()``, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    n, rng = args.size, np.random.default_rng(0)
    ramp = np.add.outer(np.arange(n), np.arange(n))
    images = {
        "noise": rng.integers(0, 4096, (n, n)),
        "ct-like": ramp // 8 + rng.integers(0, 3, (n, n)),
        "smooth": ramp,
        "short runs": np.resize(np.array([0, 0, 1]), (n, n)) * 257,
    }
    encoder = get_encoder(RLELossless)
    try:
        import rle  # pylibjpeg-rle
    except ImportError:
        rle = None
    print(f"{n} x {n} x 16 bit, median of {args.repeats}")
    for name, pixels in images.items():
        frame = encoder.encode(
            pixels.astype(np.uint16),
            encoding_plugin="pydicom",
            rows=n,
            columns=n,
            samples_per_pixel=1,
            bits_allocated=16,
            bits_stored=16,
            pixel_representation=0,
            photometric_interpretation="MONOCHROME2",
            number_of_frames=1,
        )
        assert rle_frame_problem(frame, n, n, 2) is None
        check = median_ms(lambda frame=frame: rle_frame_problem(frame, n, n, 2), args.repeats)
        pydicom_ms = median_ms(lambda frame=frame: _rle_decode_frame(frame, n, n, 1, 16), args.repeats)
        line = f"{name:>10}: {len(frame):>7} bytes  check {check:6.2f} ms  pydicom decode {pydicom_ms:6.2f} ms"
        if rle is not None:
            options = {"rows": n, "columns": n, "bits_allocated": 16}
            rust_ms = median_ms(lambda frame=frame: rle.decode_pixel_data(frame, version=2, **options), args.repeats)
            line += f"  pylibjpeg-rle decode {rust_ms:6.2f} ms"
        print(line)


if __name__ == "__main__":
    main()
