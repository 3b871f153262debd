"""The ``medxai`` command: ``run``, ``validate``, ``methods``, ``evaluate`` and ``report``.

Exit status: 0 success, 1 some images failed (the index says which), 2 a run that
cannot start or cannot finish: an invalid config or input (model, manifest), an
``output.dir`` that cannot be written or holds the manifest or model, an output
folder in use by another medxai command, or a run stopped by a full disk (its
finished images are kept: the same command resumes), 130 interrupted (Ctrl-C).

``run``, ``evaluate`` and ``report`` hold the run folder's lock while they write
(:mod:`medxai.pipeline.lock`): while one of them works on a folder, the others refuse
at once (exit 2) with a message naming the holder; they never wait.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medxai.pipeline.quiet import import_tensorflow_quietly, quiet_reader_logs

if TYPE_CHECKING:  # the command line starts no TensorFlow before a config validates
    from medxai.io import ManifestRow
    from medxai.pipeline.config import Config
    from medxai.pipeline.decoder import Decoder

EXIT_OK, EXIT_IMAGES_FAILED, EXIT_INVALID = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medxai",
        description="Attribution maps (16 methods: Integrated Gradients, gradients, SmoothGrad, the CAM family, "
        "occlusion, RISE, LIME, ...) for Keras medical-image classifiers and segmentation models.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("config", help="the study's YAML file")
        sub.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set runtime.batch_size=8 --set methods.0.steps=16",
        )
        return sub

    run = with_config("run", "compute every configured map and write maps, index.csv and run.json")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--executor", choices=("local", "dask"), help="where the maps are computed (runtime.executor)")
    run.add_argument(
        "--dask-address",
        metavar="ADDRESS",
        help="'local' (a cluster on this machine) or a scheduler such as tcp://host:8786 "
        "(runtime.dask.address; implies --executor dask)",
    )
    run.add_argument(
        "--dask-workers",
        type=int,
        metavar="N",
        help="worker processes of a local cluster (runtime.dask.workers; implies --executor dask)",
    )
    with_config("validate", "check a config, its manifest and its model without computing maps")
    commands.add_parser(
        "methods", help="list the methods and their parameters", description="list the methods and their parameters"
    )
    evaluate = commands.add_parser(
        "evaluate",
        help="quality figures of a finished run: metrics.csv, summary.csv, sanity check, method comparison",
        description="compute completeness, sparseness, localisation against masks, deletion/insertion "
        "areas, ROAD and the model-randomisation sanity check for every map of a finished run, then compare the "
        "methods (comparison.csv: paired differences with bootstrap confidence intervals) and recommend "
        "(recommendation.csv)",
    )
    evaluate.add_argument("run_dir", help="the run's output folder")
    evaluate.add_argument("--no-faithfulness", action="store_true", help="skip the deletion/insertion curves and ROAD")
    evaluate.add_argument(
        "--no-road", action="store_true", help="skip ROAD (nine sparse solves per map: slow on large images)"
    )
    evaluate.add_argument(
        "--baseline", choices=("blur", "zeros"), default="blur", help="what deleted pixels become (default blur)"
    )
    evaluate.add_argument(
        "--step-percent", type=float, default=5.0, help="pixels per curve step, in percent (default 5)"
    )
    evaluate.add_argument(
        "--topk-percent", type=float, default=5.0, help="top-k region for IoU, in percent (default 5)"
    )
    evaluate.add_argument(
        "--sanity-images", type=int, default=4, help="images in the randomisation check; 0 skips it (default 4)"
    )
    evaluate.add_argument(
        "--sanity-seeds",
        type=int,
        default=3,
        help="random re-initialisations averaged in the randomisation check (default 3)",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument(
        "--model",
        metavar="PATH",
        help="evaluate with this model instead of the run's (on purpose: recorded in evaluation.json); by default "
        "the run's model, which must be the file that made the maps (its SHA-256 is checked against run.json)",
    )
    report = commands.add_parser(
        "report",
        help="write report.html (thumbnails, filters; full-size pictures linked) and contact sheets for a run",
        description="write report.html (opens from disk: thumbnails embedded, full-size pictures linked from the "
        "run folder, filter and sort in the page) and contact_sheet*.png for a run",
    )
    report.add_argument("run_dir", help="the run's output folder")
    report.add_argument("--max-images", type=int, default=None, help="show at most this many images")
    report.add_argument(
        "--thumbnail-size",
        type=int,
        default=160,
        help="longest side of the embedded thumbnails, in pixels (default 160)",
    )
    report.add_argument(
        "--viewer-mb",
        type=float,
        default=100,
        metavar="MB",
        help="embed the interactive viewer (slices, opacity, window/level, orthogonal views) for the images in "
        "order until its data reach MB megabytes (default 100; 0: none)",
    )
    report.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _executor_overrides(args: argparse.Namespace) -> list[str]:
    """``--executor``, ``--dask-address`` and ``--dask-workers`` as ``--set`` overrides."""
    executor = getattr(args, "executor", None)
    address, workers = getattr(args, "dask_address", None), getattr(args, "dask_workers", None)
    if executor is None and (address is not None or workers is not None):
        executor = "dask"
    overrides = [] if executor is None else [f"runtime.executor={executor}"]
    if address is not None:
        overrides.append(f"runtime.dask.address={json.dumps(address)}")  # quoted: never read as a YAML number
    if workers is not None:
        overrides.append(f"runtime.dask.workers={workers}")
    return overrides


def _prepare(args: argparse.Namespace) -> tuple[Config, Decoder, list[ManifestRow]] | None:
    """Validate the config, read the manifest and load the model.

    Prints every problem (never a traceback) and returns None when the study cannot start.
    """
    from medxai.pipeline.config import ConfigError, load_config

    try:
        config = load_config(args.config, [*args.overrides, *_executor_overrides(args)])
    except ConfigError as err:
        print(err, file=sys.stderr)  # a config that does not validate never starts TensorFlow
        return None
    from medxai._progress import note

    feedback = config.runtime.progress and not getattr(args, "no_progress", False)  # the progress bar's rule
    note("starting TensorFlow", feedback)  # the longest silent step of a start (seconds)
    import_tensorflow_quietly()
    from medxai.io import ManifestError
    from medxai.pipeline.decoder import Decoder, StudyError
    from medxai.pipeline.study import study_rows

    problems = []
    decoder = rows = None
    try:
        rows = study_rows(config)
    except ManifestError as err:
        problems.append(f"data.manifest: {err}")
    try:
        decoder = Decoder(config, feedback=feedback)
        if rows is not None:
            decoder.check_sources(rows)
    except StudyError as err:
        problems.append(str(err))
    try:
        from medxai.pipeline.executors import make_executor

        make_executor(config)  # is dask installed, when asked for?
    except StudyError as err:
        problems.append(str(err))
    if problems or decoder is None or rows is None:  # (decoder and rows are set when nothing went wrong)
        print("invalid study:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return None
    return config, decoder, rows


def _run(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    if prepared is None:
        return EXIT_INVALID
    _, decoder, rows = prepared
    progress = False if args.no_progress else None
    from medxai.errors import StudyError
    from medxai.pipeline.decoder import RunStoppedError, RunSummary
    from medxai.pipeline.lock import RunFolderBusy
    from medxai.pipeline.study import run_study

    def maps_done(summary: RunSummary) -> None:
        """The run's summary line as soon as the maps are done, before an evaluation starts."""
        print(summary, flush=True)
        if summary.warned:
            print(f"medxai: {summary.warned} image(s) with warnings (see the index's warning column)", file=sys.stderr)
        if summary.failed_ids:
            shown = ", ".join(summary.failed_ids[:5]) + (" ..." if len(summary.failed_ids) > 5 else "")
            print(f"medxai: failed images (see the index's error column): {shown}", file=sys.stderr)

    try:
        summary = run_study(decoder, rows, progress=progress, maps_done=maps_done)
    except (RunFolderBusy, RunStoppedError) as err:  # another run on the folder; a full disk
        print(f"medxai: {err}", file=sys.stderr)
        return EXIT_INVALID
    except StudyError as err:  # e.g. no Dask scheduler at runtime.dask.address
        print(f"invalid study:\n  - {err}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("\nmedxai: interrupted; run again with runtime.resume: true to continue", file=sys.stderr)
        return 130
    if summary.evaluation is not None:
        print(summary.evaluation.table())
    return summary.exit_code


def _regions_words(rule: Any) -> str:
    """``region predicted of channels 1, 2 (sum)``: what a segmentation run explains."""
    channels = ", ".join(map(str, rule.classes))
    components = f", the {rule.components} largest" if rule.components else ""
    return f"the {rule.region} region{components} of channel(s) {channels} ({rule.reduce})"


def _validate(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    if prepared is None:
        return EXIT_INVALID
    config, decoder, rows = prepared
    methods = ", ".join(m.name for m in decoder.methods)
    explained = "; ".join(dict.fromkeys(m.engine.explained for m in decoder.methods if hasattr(m, "engine")))
    scores = decoder.scores
    outputs = (
        f"a segmentation output {tuple(scores.output_shape)} ({scores.n_outputs} channels; targets: "
        f"{_regions_words(decoder.explainer.targets)})"
        if scores.dense
        else f"{scores.n_outputs} classes"
    )
    print(
        f"{args.config}: valid ({len(rows)} images; model input {tuple(scores.input_shape)}, "
        f"{outputs}; methods: {methods}; output: {config.output.dir})"
        + (f"\n  explains {explained}" if explained else "")
        + f"\n  scores {decoder.scores.explained} (witness: {decoder.head.witness})"
    )
    from medxai.pipeline.lock import describe_holder, lock_holder

    holder = lock_holder(config.output.dir)
    if holder is not None:  # valid, but `run` would refuse now
        print(
            f"medxai: note: output.dir {config.output.dir} is in use by another medxai command "
            f"({describe_holder(holder)}); `medxai run` refuses to start until it ends",
            file=sys.stderr,
        )
    return EXIT_OK


@contextlib.contextmanager
def _folder_lock(run_dir: str, command: str) -> Iterator[None]:
    """Hold the run folder's lock while ``evaluate``/``report`` write into it.

    A folder that does not exist or cannot be written is left to the command's own
    error; only a folder in use raises (:class:`~medxai.pipeline.lock.RunFolderBusy`).
    """
    from medxai.pipeline.lock import RunLock

    lock = RunLock(run_dir, command, create=False, key=None)
    try:
        lock.acquire()
    except OSError:
        lock = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _damaged_maps(run_dir: str) -> list[str]:
    """The ``.npy`` maps of a run's ok rows that are missing or damaged (truncated, not NPY)."""
    from medxai.io.index import INDEX_NAME, read_index
    from medxai.io.writers import npy_problem

    try:
        _, rows = read_index(Path(run_dir) / INDEX_NAME)
    except (OSError, ValueError):
        return []  # the evaluation says what is wrong with the index
    problems = []
    for row in rows:
        if row.get("status") == "ok" and row.get("npy_path"):
            size = row.get("npy_bytes", "")
            problem = npy_problem(Path(run_dir) / row["npy_path"], int(size) if size.isdigit() else None)
            if problem is not None:
                problems.append(problem)
    return problems


def _methods() -> int:
    from medxai.methods.registry import available_methods, canonical_methods, method_parameters

    names = available_methods()
    for name, cls in sorted(canonical_methods().items()):
        aliases = sorted(n for n, c in names.items() if c is cls and n != name)
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}" + (f" (aliases: {', '.join(aliases)})" if aliases else "") + f"\n    {summary}")
        for param, default in method_parameters(cls).items():
            print(f"    {param} = {default!r}")
    print(
        "every method also takes: output, batch_size, heatmap, jit, precision (set by the config's model, runtime and "
        "heatmap sections), and uncertainty = False (true, or {samples, radius, seed}: an SD map beside each map "
        "and its stability figure)"
    )
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from medxai.pipeline.config import ConfigError
    from medxai.pipeline.evaluation import EvaluationError, EvaluationSpec, evaluate_run

    try:  # checked by the config's `evaluate:` schema; each problem reads "key: message"
        spec = EvaluationSpec(
            faithfulness=not args.no_faithfulness,
            road=not args.no_road,
            baseline=args.baseline,
            step_percent=args.step_percent,
            topk_percent=args.topk_percent,
            sanity_images=args.sanity_images,
            sanity_seeds=args.sanity_seeds,
        )
    except ConfigError as err:
        for key, _, message in (problem.partition(": ") for problem in err.problems):
            print(f"medxai evaluate: --{key.replace('_', '-')}: {message}", file=sys.stderr)
        return EXIT_INVALID
    from medxai.pipeline.lock import RunFolderBusy

    try:
        with _folder_lock(args.run_dir, "medxai evaluate " + args.run_dir):
            damaged = _damaged_maps(args.run_dir)
            if damaged:
                shown = "; ".join(damaged[:3]) + (f"; and {len(damaged) - 3} more" if len(damaged) > 3 else "")
                print(
                    f"medxai evaluate: {len(damaged)} map file(s) of {args.run_dir} are missing or damaged ({shown}); "
                    "run the study again (runtime.resume: true computes just those maps again), then evaluate",
                    file=sys.stderr,
                )
                return EXIT_INVALID
            result = evaluate_run(args.run_dir, spec, progress=not args.no_progress, model=args.model)
    except RunFolderBusy as err:
        print(f"medxai evaluate: {err}", file=sys.stderr)
        return EXIT_INVALID
    except (EvaluationError, ValueError) as err:
        print(f"medxai evaluate: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(result.table())
    print(
        f"medxai: {result.maps} maps evaluated -> {result.run_dir / 'metrics.csv'}, summary.csv, sanity.csv, "
        "comparison.csv, recommendation.csv"
    )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from medxai.viz.report import write_report

    try:
        with _folder_lock(args.run_dir, "medxai report " + args.run_dir):
            html, sheet = write_report(
                args.run_dir,
                max_images=args.max_images,
                thumbnail_size=args.thumbnail_size,
                progress=not args.no_progress,
                viewer_mb=args.viewer_mb,
            )
    except ValueError as err:  # ReportError, a bad --max-images, or the folder in use (RunFolderBusy)
        print(f"medxai report: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(f"medxai: wrote {html} and {sheet}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medxai`` console script."""
    args = _parser().parse_args(argv)
    if args.version:
        from medxai._version import __version__

        print(f"medxai {__version__}")
        return EXIT_OK
    if args.command == "evaluate":
        from medxai._progress import note

        note("starting TensorFlow", not args.no_progress)
        import_tensorflow_quietly()
    quiet_reader_logs()
    if args.command == "run":
        return _run(args)
    if args.command == "validate":
        return _validate(args)
    if args.command == "methods":
        return _methods()
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "report":
        return _report(args)
    _parser().print_help()
    return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
