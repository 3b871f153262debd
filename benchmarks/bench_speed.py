"""Speed and memory of medxai against the limit and the per-step loop. Run by hand:

    python benchmarks/bench_speed.py            # DenseNet121-sized model and the demo model (~15 min on 2 cores)
    python benchmarks/bench_speed.py --quick    # fewer images, smaller DenseNet input (~3 min)

Prints, on one machine in one run:

1. the limit: per-image cost of one batched forward+backward pass at the best batch size;
2. a per-step eager loop in the style of the AUCMEDI / Keras-example IG (written here as the
   baseline: 50 trapezoid steps, a batch of one, one GradientTape per step);
3. medxai IG with 50 fixed steps and with ``steps: auto`` at 1 % per-pixel tolerance: time per
   heatmap, model evaluations per heatmap, completeness error;
4. SmoothGrad (25 samples) and Gradient per heatmap;
5. ``medxai run`` end to end over a few hundred images, with and without overlapped I/O,
   against compute-only throughput, and its peak memory;
6. the peak memory of IG at 32 and at 1024 steps (each in a fresh process);
7. XLA and mixed precision;
8. ``steps: auto`` at per-pixel accuracy: evaluations per map, per-pixel error against a
   2048-point reference, and the per-step loop's cost at equal per-pixel error
   (``--only adaptive``, about 10 min on 2 cores; ``benchmarks/bench_ig_auto.py`` compares every
   adaptive rule, the loop and xplique at equal per-pixel accuracy);
9. every registered method with its defaults, seconds per map on the demo model and on
   DenseNet121 224x224 (``--only methods``).

Model weights are random (DenseNet121) or the shipped demo model: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import medxai  # noqa: E402
from medxai import Gradient, IntegratedGradients, SmoothGrad  # noqa: E402
from medxai.methods._engine.output import explained_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "data_samples" / "model.keras"


def timed(function, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls, after one warm-up call (tracing excluded)."""
    function()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def densenet(size: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.applications.DenseNet121(weights=None, input_shape=(size, size, 3), classes=2)


def inputs_for(model: keras.Model, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, size=(n, *model.input_shape[1:])).astype(np.float32)


def limit_per_image(model: keras.Model, batch_sizes: list[int]) -> tuple[float, int]:
    """Seconds per image of one batched forward+backward at the best batch size."""
    logits = explained_model(model)

    @tf.function(reduce_retracing=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = logits(x, training=False)[:, 0]
        return tape.gradient(out, x)

    results = {}
    for bs in batch_sizes:
        x = tf.constant(inputs_for(model, bs))
        results[bs] = timed(lambda: step(x).numpy(), repeat=2) / bs
    best = min(results, key=results.get)
    return results[best], best


def per_step_loop(model: keras.Model, image: np.ndarray, target: int, steps: int = 50) -> np.ndarray:
    """The baseline: AUCMEDI / Keras-example style IG, one eager tape per path point, trapezoid rule."""
    logits = explained_model(model)
    baseline = np.zeros_like(image)
    grads = []
    for k in range(steps + 1):
        point = tf.convert_to_tensor(baseline + (k / steps) * (image - baseline))[None]
        with tf.GradientTape() as tape:
            tape.watch(point)
            out = logits(point)[:, target]
        grads.append(tape.gradient(out, point)[0].numpy())
    grads = np.array(grads)
    average = ((grads[:-1] + grads[1:]) / 2.0).mean(axis=0)
    return (image - baseline) * average


def relative_completeness(model: keras.Model, image: np.ndarray, target: int, attributions: np.ndarray) -> float:
    logits = explained_model(model)
    gap = float(logits(image[None])[0, target] - logits(np.zeros_like(image)[None])[0, target])
    return abs(float(attributions.sum()) - gap) / abs(gap)


def method_rows(model: keras.Model, images: np.ndarray, batch_size: int, limit: float) -> list[dict]:
    targets = model.predict(images, verbose=0).argmax(axis=1)
    rows = []
    loop_seconds = timed(lambda: per_step_loop(model, images[0], targets[0]))
    loop_errors = [
        relative_completeness(model, images[i], targets[i], per_step_loop(model, images[i], targets[i]))
        for i in range(min(len(images), 8))
    ]
    loop_error = float(np.median(loop_errors))
    rows.append(
        {
            "method": "per-step eager loop, 50 trapezoid steps (baseline)",
            "s/heatmap": loop_seconds,
            "evals": 51,
            "error": loop_error,
        }
    )
    cases = [
        ("medxai IG, 50 steps (Gauss-Legendre)", IntegratedGradients(model, steps=50, batch_size=batch_size)),
        (
            "medxai IG, 50 steps (trapezoid)",
            IntegratedGradients(model, steps=50, rule="trapezoid", batch_size=batch_size),
        ),
        (
            "medxai IG, steps: auto, 1 % per pixel (adaptive Simpson)",
            IntegratedGradients(model, steps="auto", batch_size=batch_size),
        ),
        ("medxai SmoothGrad, 25 samples", SmoothGrad(model, samples=25, batch_size=batch_size)),
        ("medxai Gradient", Gradient(model, batch_size=batch_size)),
    ]
    for name, method in cases:
        explanation = None

        def call():
            nonlocal explanation
            explanation = method.explain(images, targets)

        seconds = timed(call) / len(images)
        evals = float(np.median(explanation.evaluations))
        error = None if explanation.relative_delta is None else float(np.median(explanation.relative_delta))
        rows.append({"method": name, "s/heatmap": seconds, "evals": evals, "error": error})
    for row in rows:
        row["vs loop"] = loop_seconds / row["s/heatmap"]
        row["vs limit"] = (limit * row["evals"]) / row["s/heatmap"]
    return rows


def per_pixel_error(attributions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``||A - A_ref|| / ||A_ref||`` per image."""
    n = len(reference)
    return np.linalg.norm((attributions - reference).reshape(n, -1), axis=1) / np.linalg.norm(
        reference.reshape(n, -1), axis=1
    )


def adaptive_accuracy(
    model: keras.Model, images: np.ndarray, title: str, batch_size: int, tolerances=(0.05, 0.01)
) -> None:
    """8. ``steps: auto`` at per-pixel accuracy against a 2048-point reference, and the per-step loop at equal error."""
    targets = model.predict(images, verbose=0).argmax(axis=1)
    reference = IntegratedGradients(model, steps=2048, rule="riemann_middle", batch_size=batch_size).attribute(
        images, targets
    )
    step_seconds = timed(lambda: per_step_loop(model, images[0], targets[0], steps=8)) / 9  # one eager tape per point
    fixed = {}
    for n in (8, 16, 32, 64, 128, 256, 512, 1024):
        fixed[n] = float(
            np.median(
                per_pixel_error(
                    IntegratedGradients(model, steps=n + 1, rule="trapezoid", batch_size=batch_size).attribute(
                        images, targets
                    ),
                    reference,
                )
            )
        )
    print(
        f"\n8. {title}: steps: auto (adaptive Simpson, the default) at per-pixel tolerance, {len(images)} images, "
        "error = ||A - A_2048|| / ||A_2048|| per map"
    )
    print(
        "   fixed trapezoid (the per-step loop's rule): "
        + ", ".join(f"{n + 1} pts {100 * e:.2f} %" for n, e in fixed.items())
    )
    for tolerance in tolerances:
        method = IntegratedGradients(model, steps="auto", tolerance=tolerance, max_steps=1025, batch_size=batch_size)
        result = None

        def call():
            nonlocal result
            result = method.explain(images, targets)

        seconds = timed(call) / len(images)
        errors = per_pixel_error(result.attributions, reference)
        median = float(np.median(errors))
        equal = next((n for n, e in fixed.items() if e <= median), None)
        loop = None if equal is None else step_seconds * (equal + 1)
        unmet = int(np.sum(result.warnings != ""))
        print(
            f"   tolerance {100 * tolerance:4.1f} %: evaluations/map median {np.median(result.evaluations):.0f} "
            f"(range {result.evaluations.min()}-{result.evaluations.max()}), per-pixel error median "
            f"{100 * median:.2f} % "
            f"p90 {100 * np.percentile(errors, 90):.2f} %, completeness error median "
            f"{100 * np.median(result.relative_delta):.3f} %, "
            f"{seconds:.4f} s/map, not met {unmet}"
        )
        if loop is not None:
            print(
                f"      the per-step loop needs {equal + 1} points for that median error: {loop:.4f} s/map, "
                f"auto is {loop / seconds:.1f}x faster"
            )


def per_method(model: keras.Model, images: np.ndarray, title: str, batch_size: int) -> None:
    """9. Every registered method with its defaults: seconds per map, after one warm-up call."""
    from medxai.methods.registry import canonical_methods

    targets = model.predict(images, verbose=0).argmax(axis=1)
    print(f"\n9. {title}: every method with its defaults, {len(images)} images, batch_size {batch_size}")
    print(f"   {'method':22s} {'s/map':>9s}")
    for name, cls in sorted(canonical_methods().items()):
        method = cls(model, batch_size=batch_size)
        seconds = timed(lambda: method.attribute(images, targets)) / len(images)
        print(f"   {name:22s} {seconds:9.4f}")


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'method':48s} {'s/heatmap':>10s} {'evals':>6s} {'rel. error':>10s} {'x loop':>7s} {'of limit':>8s}")
    for r in rows:
        error = "" if r["error"] is None else f"{100 * r['error']:.2f} %"
        print(
            f"{r['method']:48s} {r['s/heatmap']:10.4f} {r['evals']:6.0f} {error:>10s} {r['vs loop']:7.1f} "
            f"{r['vs limit']:8.2f}"
        )


def memory_probe(steps: int, size: int) -> None:
    """Run IG once in this (fresh) process and print its peak resident memory in MiB."""
    model = densenet(size) if size else keras.saving.load_model(DEMO_MODEL)
    images = inputs_for(model, 2)
    IntegratedGradients(model, steps=steps, batch_size=16).attribute(images, 0)
    print(json.dumps({"steps": steps, "peak_mib": _peak_rss_mib()}))


def _peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across
    exec, so a child started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def variants(model: keras.Model, images: np.ndarray, title: str) -> None:
    """7. XLA and mixed precision against the default, IG 50 steps."""
    targets = model.predict(images, verbose=0).argmax(axis=1)
    print(f"\n7. {title}: IG 50 steps (Gauss-Legendre), {len(images)} images")
    reference = None
    for jit, precision in ((False, "float32"), (True, "float32"), (False, "mixed")):
        method = IntegratedGradients(model, steps=50, batch_size=32, jit=jit, precision=precision)
        result = None

        def call():
            nonlocal result
            result = method.explain(images, targets)

        seconds = timed(call) / len(images)
        reference = reference or seconds
        print(
            f"   jit={str(jit).lower():5s} precision={precision:8s} {seconds:9.4f} s/heatmap  "
            f"{reference / seconds:5.2f}x  "
            f"median completeness error {100 * np.median(result.relative_delta):.2f} %"
        )


def peak_memory(steps: int, size: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-probe", str(steps), "--size", str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def end_to_end(n_images: int, model: keras.Model | None = None, steps: int = 16) -> None:
    from medxai.data.study_files import write_study
    from medxai.io import read_image
    from medxai.pipeline.decoder import Decoder
    from medxai.pipeline.study import study_rows

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = write_study(tmp / "study", seed=7, n_ct=2 * n_images // 3, n_xray=n_images - 2 * n_images // 3)
        base = {
            "model": {"path": str(DEMO_MODEL)},
            "data": {"manifest": str(manifest), "id_column": "image_id"},
            "methods": [{"name": "integrated_gradients", "steps": steps}],
            "output": {"dir": str(tmp / "out"), "formats": ["npy", "png", "overlay"]},
            "runtime": {"batch_size": 64, "progress": False, "resume": False},
        }
        if model is not None:  # preprocessing follows the model's input (size, channels)
            base["runtime"]["batch_size"] = 16
        config = medxai.Config.from_dict(base)
        decoder = Decoder(config, model=model)
        rows = study_rows(config)
        tensors = np.stack([decoder.preprocessor(read_image(r.path))[0] for r in rows])
        step = base["runtime"]["batch_size"]
        targets = decoder.scores.predict(tensors, step).argmax(1)
        method = decoder.methods[0]
        compute = timed(
            lambda: [method.explain(tensors[i : i + step], targets[i : i + step]) for i in range(0, len(tensors), step)]
        )
        results = {"compute only (preloaded tensors)": len(rows) / compute}
        for overlap in (False, True):
            runtime = {**base["runtime"], "overlap_io": overlap}
            cfg = medxai.Config.from_dict(
                {**base, "runtime": runtime, "output": {**base["output"], "dir": str(tmp / f"out_{overlap}")}}
            )
            run_decoder = Decoder(cfg, model=decoder.model)
            run_decoder.run(rows, progress=False)  # warm-up (traces)
            cfg2 = medxai.Config.from_dict(
                {**base, "runtime": runtime, "output": {**base["output"], "dir": str(tmp / f"out2_{overlap}")}}
            )
            start = time.perf_counter()
            Decoder(cfg2, model=decoder.model).run(rows, progress=False)
            results[f"medxai run, overlap_io={str(overlap).lower()}"] = len(rows) / (time.perf_counter() - start)
    name = (
        "demo model, 128x128 -> 64x64"
        if model is None
        else f"{model.name}, 128x128 -> {model.input_shape[1]}x{model.input_shape[2]}x3"
    )
    print(f"\n5. end to end: {len(rows)} images (DICOM/PNG), {name}, IG {steps} steps, npy+png+overlay written")
    reference = results["compute only (preloaded tensors)"]
    for name, rate in results.items():
        print(f"   {name:40s} {rate:8.1f} images/s   {rate / reference:5.2f} x compute-only")
    print(f"   peak resident memory of this benchmark process so far: {_peak_rss_mib():.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and a 112x112 DenseNet")
    parser.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=("memory", "variants", "adaptive", "methods"), help="run one part only")
    args = parser.parse_args()
    if args.memory_probe is not None:
        memory_probe(args.memory_probe, args.size)
        return 0
    if args.only == "variants":
        variants(keras.saving.load_model(DEMO_MODEL), _demo_images(), "demo model 64x64x1")
        variants(densenet(112), inputs_for(densenet(112), 2), "DenseNet121 112x112x3")
        return 0
    if args.only == "methods":
        per_method(keras.saving.load_model(DEMO_MODEL), _demo_images(), "demo model 64x64x1", 256)
        per_method(densenet(224), inputs_for(densenet(224), 2), "DenseNet121 224x224x3", 32)
        return 0
    if args.only == "adaptive":
        adaptive_accuracy(keras.saving.load_model(DEMO_MODEL), _demo_images(), "demo model 64x64x1", 256)
        adaptive_accuracy(densenet(112), inputs_for(densenet(112), 2), "DenseNet121 112x112x3", 32, tolerances=(0.05,))
        return 0
    if args.only == "memory":
        memory_report(112 if args.quick else 224, 256 if args.quick else 1024)
        return 0
    size = 112 if args.quick else 224
    n_heatmaps = 2 if args.quick else 3
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"TensorFlow {tf.__version__}, devices {[d.device_type for d in tf.config.list_physical_devices()]}"
    )
    for title, model, batch_sizes, n in (
        (f"DenseNet121 (random weights), {size}x{size}x3", densenet(size), [1, 8, 16, 32], n_heatmaps),
        (
            "demo model (data_samples/model.keras), 64x64x1",
            keras.saving.load_model(DEMO_MODEL),
            [1, 32, 64, 128, 256],
            36,
        ),
    ):
        limit, best = limit_per_image(model, batch_sizes)
        print(f"\n1. {title}: the limit is {limit * 1000:.2f} ms per forward+backward image (batch {best})")
        rows = method_rows(model, inputs_for(model, n) if "DenseNet" in title else _demo_images(), best, limit)
        print_table(f"2-4. {title}, per heatmap ({n} images)", rows)
    end_to_end(90 if args.quick else 300)
    end_to_end(12 if args.quick else 24, model=densenet(size), steps=16)
    memory_report(112 if args.quick else 224, 256 if args.quick else 1024)
    variants(keras.saving.load_model(DEMO_MODEL), _demo_images(), "demo model 64x64x1")
    variants(densenet(112), inputs_for(densenet(112), 2), "DenseNet121 112x112x3")
    adaptive_accuracy(keras.saving.load_model(DEMO_MODEL), _demo_images(), "demo model 64x64x1", 256)
    per_method(keras.saving.load_model(DEMO_MODEL), _demo_images(), "demo model 64x64x1", 256)
    per_method(densenet(224), inputs_for(densenet(224), 2), "DenseNet121 224x224x3", 32)
    return 0


def memory_report(size: int, many: int) -> None:
    low, high = peak_memory(32, size), peak_memory(many, size)
    print(
        f"\n6. peak memory (VmHWM) of IG on DenseNet121 {size}x{size}, 2 images, batch_size 16, each in a fresh "
        "process: "
        f"{low:.0f} MiB at 32 steps, {high:.0f} MiB at {many} steps ({high / low:.3f} x)"
    )


def _demo_images() -> np.ndarray:
    from medxai.io import read_image, read_manifest
    from medxai.preprocess import Preprocessor, PreprocessSpec

    rows = read_manifest(ROOT / "data_samples" / "study" / "manifest.csv", id_column="image_id")
    preprocessor = Preprocessor(PreprocessSpec(), (64, 64, 1))
    return np.stack([preprocessor(read_image(r.path))[0] for r in rows])


if __name__ == "__main__":
    raise SystemExit(main())
