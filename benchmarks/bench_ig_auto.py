"""``steps: auto`` at equal per-pixel accuracy: the per-step loop, medxai and xplique. Run by hand:

    python benchmarks/bench_ig_auto.py                       # the demo model and DenseNet121 160x160 (slow on 2 cores)
    python benchmarks/bench_ig_auto.py --size 112 --images 2 # a mid-sized DenseNet instead
    python benchmarks/bench_ig_auto.py --demo-only --levers  # the demo model, with XLA and mixed precision rows

xplique is not a dependency: where it is not importable its rows say "skipped". It can be put
beside the project without touching the environment's TensorFlow, e.g.
``pip install --no-deps --target /tmp/xplique_pkg xplique deprecated opencv-python-headless
tensorflow-probability dm-tree tf-keras einops scikit-learn joblib threadpoolctl narwhals``
and ``PYTHONPATH=/tmp/xplique_pkg``.

For each model, in one process (ratios are taken within it; every row is the best of ``--repeat`` timed calls):

1. a converged reference: IG with ``--reference`` midpoint points (per-pixel error is
   ``||A - A_ref|| / ||A_ref||`` per map, the median over the images is reported);
2. the per-step eager loop (AUCMEDI / Keras-example style, 50 trapezoid intervals, one tape per
   point, batch of one): its seconds per map (timed on 9 points, scaled to 51) and its per-pixel
   error (the same 51-point trapezoid sum, computed batched);
3. medxai with the loop's own 51 trapezoid points, batched (the engine's speed per gradient), and
   medxai ``steps: auto`` with each adaptive rule, the tolerance set to the loop's own per-pixel
   error: seconds per map, evaluations per map, delivered error and delivered / tolerance
   (median; 90th percentile; range over the images);
4. xplique's ``IntegratedGradients`` (when ``import xplique`` works; skipped otherwise) at the
   fewest fixed steps (its rule: the trapezoid on ``steps`` points) whose median error is at most
   the loop's, with its own measured error and seconds per map.

Model weights are random (DenseNet121) or the shipped demo model: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import DEMO_MODEL, _demo_images, densenet, inputs_for, per_pixel_error, per_step_loop  # noqa: E402

from medxai import IntegratedGradients  # noqa: E402
from medxai.methods._engine.output import explained_model  # noqa: E402

AUTO_RULES = ("adaptive_simpson", "trapezoid", "gauss_kronrod_7", "gauss_kronrod_15")
XPLIQUE_STEPS = (5, 9, 13, 17, 25, 33, 41, 51, 65, 81, 101, 129, 161, 201, 257)


def seconds(function, repeat: int = 5) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls after a warm-up call (tracing excluded), and the last call's result.

    The best of several calls is each contender's speed on this machine, without what other programs took
    (the same count for every row, so the ratios compare like with like).
    """
    result = function()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def xplique_rows(
    model: keras.Model, images: np.ndarray, targets: np.ndarray, reference: np.ndarray, goal: float, repeat: int
):
    """xplique at the fewest trapezoid points reaching ``goal``: (steps, s/map, median error), or None."""
    try:
        from xplique.attributions import IntegratedGradients as XpliqueIG
    except ImportError:
        return None
    logits = explained_model(model)  # xplique explains the given model's output: give it the logits
    onehot = keras.utils.to_categorical(targets, logits.output_shape[-1])
    for steps in XPLIQUE_STEPS:
        # xplique's rule is medxai's trapezoid on the same points: find the count cheaply, then measure xplique
        fixed = IntegratedGradients(model, steps=steps, rule="trapezoid", batch_size=64).attribute(images, targets)
        if np.median(per_pixel_error(fixed, reference)) <= goal * (1 + 1e-4):  # the loop's own rule ties
            explainer = XpliqueIG(logits, steps=steps, batch_size=64, reducer=None)  # signed, per channel
            took, maps = seconds(lambda: np.asarray(explainer.explain(images, onehot)), repeat)
            error = float(np.median(per_pixel_error(maps.reshape(images.shape), reference)))
            return steps, took / len(images), error
    return None


def table(
    title: str,
    model: keras.Model,
    images: np.ndarray,
    batch_size: int,
    reference_points: int,
    levers: bool,
    repeat: int,
):
    targets = model.predict(images, verbose=0).argmax(axis=1)
    reference = IntegratedGradients(
        model, steps=reference_points, rule="riemann_middle", batch_size=batch_size
    ).attribute(images, targets)
    loop_point = seconds(lambda: per_step_loop(model, images[0], targets[0], steps=8), repeat=2)[0] / 9
    loop_seconds = 51 * loop_point
    loop_maps = IntegratedGradients(model, steps=51, rule="trapezoid", batch_size=batch_size).attribute(images, targets)
    loop_error = float(np.median(per_pixel_error(loop_maps, reference)))
    print(f"\n{title}: {len(images)} images, reference {reference_points} midpoint points, batch_size {batch_size}")
    error_column = "per-pixel error (x tolerance: median; 90th pct.; range)"
    print(f"| model | rule | s/map | evaluations/map | {error_column} | vs loop | vs xplique |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {title} | per-step eager loop, 51 trapezoid points | {loop_seconds:.3f} | 51 | "
        f"{100 * loop_error:.2f} % | 1.0x | |"
    )
    xplique = xplique_rows(model, images, targets, reference, loop_error, repeat)
    if xplique is None:
        print(f"| {title} | xplique | skipped (not installed) | | | | |")
    else:
        steps, xs, xe = xplique
        print(
            f"| {title} | xplique IG, {steps} steps | {xs:.4f} | {steps} | {100 * xe:.2f} % | "
            f"{loop_seconds / xs:.1f}x | 1.0x |"
        )
    fixed = IntegratedGradients(model, steps=51, rule="trapezoid", batch_size=batch_size)
    fixed_seconds = seconds(lambda: fixed.attribute(images, targets), repeat)[0] / len(images)
    versus = "" if xplique is None else f"{xplique[1] / fixed_seconds:.1f}x"
    print(
        f"| {title} | medxai IG, 51 trapezoid points (the loop's rule, batched) | {fixed_seconds:.4f} | 51 | "
        f"{100 * loop_error:.2f} % | {loop_seconds / fixed_seconds:.1f}x | {versus} |"
    )
    variants = [(rule, {}) for rule in AUTO_RULES]
    if levers:
        variants += [("adaptive_simpson", {"jit": True}), ("adaptive_simpson", {"precision": "mixed"})]
    for rule, options in variants:
        method = IntegratedGradients(
            model, steps="auto", rule=rule, tolerance=loop_error, max_steps=1025, batch_size=batch_size, **options
        )
        took, result = seconds(lambda: method.explain(images, targets), repeat)
        per_map = took / len(images)
        errors = per_pixel_error(result.attributions, reference)
        ratio = errors / loop_error
        name = rule + "".join(f", {k}={v}" for k, v in options.items())
        versus = "" if xplique is None else f"{xplique[1] / per_map:.1f}x"
        print(
            f"| {title} | auto, {name}, tolerance {100 * loop_error:.2f} % | {per_map:.4f} | "
            f"{np.median(result.evaluations):.0f} ({result.evaluations.min()}-{result.evaluations.max()}) | "
            f"{100 * np.median(errors):.2f} % ({np.median(ratio):.2f}; 90th pct. {np.percentile(ratio, 90):.2f}; "
            f"{ratio.min():.2f}-{ratio.max():.2f}) | "
            f"{loop_seconds / per_map:.1f}x | {versus} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160, help="DenseNet121 input side (default 160)")
    parser.add_argument("--images", type=int, default=2, help="DenseNet images (default 2)")
    parser.add_argument("--reference", type=int, default=1024, help="midpoint points of the reference (default 1024)")
    parser.add_argument("--demo-only", action="store_true", help="only the demo model")
    parser.add_argument("--densenet-only", action="store_true", help="only DenseNet121")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per row, the best kept (default 5)")
    parser.add_argument("--levers", action="store_true", help="also XLA (jit) and mixed precision rows")
    args = parser.parse_args()
    if not args.densenet_only:
        demo = keras.saving.load_model(DEMO_MODEL)
        table("demo model 64x64x1", demo, _demo_images(), 256, args.reference, args.levers, args.repeat)
    if not args.demo_only:
        model = densenet(args.size)
        title = f"DenseNet121 {args.size}x{args.size}x3, random weights"
        table(title, model, inputs_for(model, args.images), 32, args.reference, args.levers, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
