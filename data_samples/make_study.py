"""Write the synthetic demo study (a thin command line over medxai.data.study_files).

    python data_samples/make_study.py --out data_samples/study --seed 0

also writes the 3D study (NIfTI volumes, ``--volumes N``, 0 for none) to ``--out3d``
(default: beside ``--out``, its name + ``3d``: ``data_samples/study3d``).

Importable too: ``main(["--out", "somewhere"])`` returns the manifest path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from medxai.data.study_files import write_study, write_volume_study
except ImportError:  # run as a script from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medxai.data.study_files import write_study, write_volume_study


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
    parser.add_argument(
        "--out3d",
        type=Path,
        default=None,
        help="output folder of the 3D study (default: the --out folder's name + '3d', e.g. data_samples/study3d)",
    )
    parser.add_argument("--volumes", type=int, default=8, help="number of CT volumes of the 3D study (default: 8)")
    args = parser.parse_args(argv)
    manifest = write_study(args.out, seed=args.seed, n_ct=args.n_ct, n_xray=args.n_xray)
    print(manifest)
    if args.volumes:
        out3d = args.out3d if args.out3d is not None else args.out.with_name(args.out.name + "3d")
        print(write_volume_study(out3d, seed=args.seed, n=args.volumes))
    return manifest


if __name__ == "__main__":
    main()
