"""Seconds per map of every method on segmentation models with a region target. Run by hand:

    python benchmarks/bench_segmentation.py             # 3D U-Net 64^3 and the demo U-Net 64x64 (~15 min on 2 cores)
    python benchmarks/bench_segmentation.py --only 2d   # the demo segmentation model only (~3 min)
    python benchmarks/bench_segmentation.py --repeat 2 --batch-size 8

Two models, each explained with a :class:`medxai.Region` target:

1. a 3D U-Net (:func:`medxai.data.unet.build_unet`, random seeded weights) on one 64x64x64
   single-channel volume with a 3-label softmax head, explaining label 1 over the voxels it
   predicts (``Region(1, mask="predicted")``), or over the whole volume where it predicts
   none (``mask="all"``; the table's title says which);
2. the demo segmentation model (``data_samples/segmentation.keras``, a 2D U-Net 64x64 with a
   one-unit sigmoid head) on the demo study's lesion images, explaining the predicted lesion
   (``Region(1)``: the foreground of the sigmoid read as two channels).

Each method runs with a small setting (printed in the table), once as a warm-up (tracing
excluded), then ``--repeat`` times; the table gives the best time per map and the model
evaluations per map the method reports. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_speed import timed  # noqa: E402  (this folder: the warm-up-then-best-of timer)

import medxai  # noqa: E402
from medxai.data.unet import build_unet  # noqa: E402
from medxai.methods.registry import canonical_methods  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEGMENTATION_MODEL = ROOT / "data_samples" / "segmentation.keras"

#: The methods timed, in the table's order.
METHODS = (
    "gradient",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "gradcam",
    "hirescam",
    "layercam",
    "gradcam_plus_plus",
    "scorecam",
    "guided_backprop",
    "guided_gradcam",
    "occlusion",
    "rise",
    "lime",
    "blur_ig",
    "guided_ig",
)
#: Settings per method (a row each; defaults where none): small enough for well under a minute a map on 2 cores.
SETTINGS_3D = {
    "integrated_gradients": [{"steps": 16}, {"steps": 32}],
    "smoothgrad": [{"samples": 8}],
    "occlusion": [{"window": 16, "stride": 16}],
    "rise": [{"samples": 256, "cells": 4}],
    "lime": [{"samples": 128, "segmentation_params": {"n_segments": 64}}],
    "blur_ig": [{"steps": 16}],
    "guided_ig": [{"steps": 16}],
}
#: The 64x64 demo model: the settings of configs/segmentation.yaml where it has them.
SETTINGS_2D = {
    "integrated_gradients": [{"steps": 32}],
    "smoothgrad": [{"samples": 25}],
    "occlusion": [{"window": 8, "stride": 4}],
    "rise": [{"samples": 1000}],
    "lime": [{"samples": 500}],
    "blur_ig": [{"steps": 32}],
    "guided_ig": [{"steps": 32}],
}


def rows_of(settings: dict[str, list[dict]], only: list[str] | None) -> list[tuple[str, dict]]:
    """(method, setting) per table row."""
    return [(name, params) for name in METHODS if not only or name in only for params in settings.get(name, [{}])]


def volume_case(size: int, filters: tuple[int, ...]) -> tuple[keras.Model, np.ndarray, medxai.Region, str]:
    """The 3D U-Net, one smooth random volume, and the region it explains (predicted, else all)."""
    model = build_unet((size, size, size, 1), 3, head="softmax", filters=filters, seed=0, name="unet3d")
    rng = np.random.default_rng(0)
    from scipy import ndimage

    volume = ndimage.gaussian_filter(rng.normal(size=(size, size, size)), 2.0)
    volume = ((volume - volume.min()) / (volume.max() - volume.min())).astype(np.float32)[None, ..., None]
    predicted = int(np.sum(model.predict(volume, verbose=0)[0].argmax(-1) == 1))
    if predicted:
        return model, volume, medxai.Region(1, mask="predicted"), f"Region(1, mask='predicted'), {predicted} voxels"
    return model, volume, medxai.Region(1, mask="all"), "Region(1, mask='all') (the model predicts no voxel of label 1)"


def study_case() -> tuple[keras.Model, np.ndarray, medxai.Region, str]:
    """The demo segmentation model on the demo study's lesion images, explaining the predicted lesion."""
    from medxai.io import read_image, read_manifest
    from medxai.preprocess import Preprocessor, PreprocessSpec

    model = keras.saving.load_model(SEGMENTATION_MODEL, compile=False)
    rows = read_manifest(ROOT / "data_samples" / "study" / "manifest.csv", id_column="image_id", label_column="label")
    preprocessor = Preprocessor(PreprocessSpec(window="auto", scale="minmax"), (64, 64, 1))
    images = np.stack([preprocessor(read_image(r.path))[0] for r in rows if r.label == 1])
    return (
        model,
        images,
        medxai.Region(1, mask="predicted"),
        f"Region(1, mask='predicted'), {len(images)} lesion images",
    )


def method_table(
    model: keras.Model, images: np.ndarray, region: medxai.Region, settings, batch_size: int, repeat: int
) -> list[tuple[str, str, str, str]]:
    """One row per method: name, setting, seconds per map (best of ``repeat``), evaluations per map."""
    methods = canonical_methods()
    rows = []
    for name, params in settings:
        setting = ", ".join(f"{k} {v}" for k, v in params.items()) or "defaults"
        try:
            method = methods[name](model, batch_size=batch_size, **params)
            explanation = None

            def call():
                nonlocal explanation
                explanation = method.explain(images, region)

            seconds = timed(call, repeat) / len(images)
            evaluations = explanation.evaluations
            evals = "" if evaluations is None else f"{float(np.median(evaluations)):.0f}"
            rows.append((name, setting, f"{seconds:.3f}", evals))
        except Exception as err:  # report a method that cannot run here, keep the others
            rows.append((name, setting, f"failed: {type(err).__name__}: {str(err)[:80]}", ""))
        print(f"   {name:22s} {setting:45s} {rows[-1][2]:>10s} s/map  {rows[-1][3]:>6s} evaluations", flush=True)
    return rows


def markdown(title: str, rows: list[tuple[str, str, str, str]]) -> str:
    lines = [f"**{title}**", "", "| method | setting | s/map | evaluations |", "|---|---|---:|---:|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("3d", "2d"), help="one model only")
    parser.add_argument("--repeat", type=int, default=1, help="timed calls after the warm-up (the best is kept)")
    parser.add_argument(
        "--batch-size", type=int, help="rows per model call (default: 4 for the 3D U-Net, 64 for the 2D model)"
    )
    parser.add_argument("--size", type=int, default=64, help="edge of the 3D volume")
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16, 32], help="3D U-Net filters per level")
    parser.add_argument("--methods", nargs="+", help="only these methods")
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, "
        f"best of {args.repeat} after a warm-up"
    )
    tables = []
    cases = []
    if args.only != "2d":
        model, images, region, described = volume_case(args.size, tuple(args.filters))
        title = (
            f"3D U-Net {args.size}^3x1, filters {tuple(args.filters)}, 3-label softmax, "
            f"{model.count_params()} weights (random, seed 0), 1 volume: {described}"
        )
        cases.append((title, model, images, region, SETTINGS_3D, args.batch_size or 4))
    if args.only != "3d":
        model, images, region, described = study_case()
        title = f"demo segmentation model 64x64x1 (data_samples/segmentation.keras), sigmoid head: {described}"
        cases.append((title, model, images, region, SETTINGS_2D, args.batch_size or 64))
    for title, model, images, region, settings, batch_size in cases:
        title += f", batch_size {batch_size}"
        print(f"\n{title}")
        rows = method_table(model, images, region, rows_of(settings, args.methods), batch_size, args.repeat)
        tables.append(markdown(title, rows))
    print("\n" + "\n\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
