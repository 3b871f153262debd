"""Write the synthetic demo study (a thin command line over medxai.data.study_files).

    python data_samples/make_study.py --out data_samples/study --seed 0

Importable too: ``main(["--out", "somewhere"])`` returns the manifest path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from medxai.data.study_files import write_study
except ImportError:  # run as a script from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medxai.data.study_files import write_study


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "study",
        help="output folder (default: data_samples/study)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--n-ct", type=int, default=24, help="number of CT slices (default: 24)")
    parser.add_argument("--n-xray", type=int, default=12, help="number of radiographs (default: 12)")
    args = parser.parse_args(argv)
    manifest = write_study(args.out, seed=args.seed, n_ct=args.n_ct, n_xray=args.n_xray)
    print(manifest)
    return manifest


if __name__ == "__main__":
    main()
