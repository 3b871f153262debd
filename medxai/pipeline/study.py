"""Running a whole study: the top of the pipeline, above the Decoder, the executors and the evaluation.

:func:`run` is ``medxai.run`` (the Python twin of ``medxai run CONFIG``): it
validates the config, builds the :class:`~medxai.pipeline.decoder.Decoder`, runs it
on the executor ``runtime.executor`` names and, when the config has an
``evaluate:`` section, computes the quality figures of the finished run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medxai.errors import ConfigError
from medxai.io import ManifestRow
from medxai.pipeline.config import Config, apply_overrides, load_config
from medxai.pipeline.decoder import Decoder, RunSummary
from medxai.pipeline.evaluation import EvaluationSpec, evaluate_run
from medxai.pipeline.executors import make_executor
from medxai.pipeline.study_methods import study_rows


def run_study(
    decoder: Decoder,
    rows: Sequence[ManifestRow],
    *,
    progress: bool | None = None,
    executor: Any = None,
    maps_done: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run a built Decoder over ``rows`` on the configured executor, then evaluate if the config asks.

    Args:
        decoder: The study's Decoder.
        rows: The manifest rows (:func:`study_rows`).
        progress: Show progress bars (default: ``runtime.progress``).
        executor: Where the chunks are computed (default: the one ``runtime.executor`` names).
        maps_done: Called with the summary as soon as the maps are done, before the
            evaluation starts (``medxai run`` prints its summary line there).

    Raises:
        medxai.errors.StudyError: the executor cannot start (e.g. no Dask scheduler).
    """
    config = decoder.config
    executor = make_executor(config) if executor is None else executor
    show = config.runtime.progress if progress is None else progress
    with decoder.locked():  # the run and its evaluation hold the output folder together
        summary = decoder.run(rows, progress=show, executor=executor)
        if maps_done is not None:
            maps_done(summary)
        if config.evaluate is not None:
            spec = EvaluationSpec(**config.evaluate.model_dump(), seed=config.runtime.seed)
            summary.evaluation = evaluate_run(decoder.out, spec, progress=show, decoder=decoder)
    return summary


def run(
    config: Config | Mapping[str, Any] | str | os.PathLike,
    *,
    overrides: Sequence[str] = (),
    model: Any = None,
    progress: bool | None = None,
) -> RunSummary:
    """Run a study: the Python twin of ``medxai run CONFIG`` (``medxai.run``).

    Args:
        config: A :class:`~medxai.pipeline.config.Config`, a dict in the YAML's shape (relative
            paths resolve against the current directory) or a YAML file path.
        overrides: ``"key.sub=value"`` settings applied before validation, to any of the three
            (relative paths in them resolve against the current directory).
        model: An already loaded Keras model (default: load ``model.path``). Dask
            workers always load ``model.path`` themselves.
        progress: Show a progress bar (default: ``runtime.progress``).

    Returns:
        A :class:`RunSummary`; ``summary.exit_code`` is 1 when some images failed.

    Raises:
        medxai.pipeline.config.ConfigError: the config is invalid, or an override names an unknown key.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(config, (str, os.PathLike, Mapping)):
        config = load_config(config, overrides)
    elif isinstance(config, Config):
        if overrides:
            # python-mode dump: paths are absolute and method parameters keep their Python objects
            config = Config.from_dict(apply_overrides(config.model_dump(), overrides, base_dir=Path.cwd()))
    else:
        raise ConfigError(f"expected a Config, a mapping or a YAML file path, got {type(config).__name__}")
    return run_study(Decoder(config, model=model, feedback=progress), study_rows(config), progress=progress)
