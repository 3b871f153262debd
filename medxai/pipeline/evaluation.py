"""``medxai evaluate RUN_DIR``: quality figures for every map of a finished run.

Writes beside the index:

* ``metrics.csv``: one row per map: IG completeness error, Gini sparseness,
  pointing game, relevance mass and top-k IoU (where a mask exists), deletion
  and insertion areas, and ROAD (:func:`~medxai.metrics.road.road_score`: the mean score with
  the most relevant 10-90 % of the pixels removed and imputed from their neighbours, Rong et
  al. 2022; lower is better);
* ``summary.csv``: per method and metric: ``mean``; ``mean_ci_low``/``mean_ci_high``, a
  95 % confidence interval of the mean (bootstrap: 2,000 resamples of the per-map values
  drawn with the evaluation's seed, percentile method; it narrows as ``n`` grows);
  ``median``; ``p2.5``/``p97.5``, the 2.5th and 97.5th percentiles of the per-map values
  (their spread over maps, not a confidence interval: before medxai named them
  ``ci_low``/``ci_high``, and readers still accept those names); ``n``, the maps with a value;
* ``sanity.csv`` and ``evaluation.json``: the model-randomisation check
  (Adebayo et al. 2018), per method and step, with a per-method verdict
  (PASS, FAIL, undefined or error);
* ``comparison.csv``: per metric and pair of methods, the paired mean difference
  ``method_a - method_b`` over the maps both have for the same image and target, with its
  95 % bootstrap confidence interval (the same bootstrap and seed as summary.csv's);
* ``recommendation.csv``: one row per method: its randomisation verdict, faithfulness and
  localisation ranks (with ties where no interval separates methods; empty where the
  figures are missing, or the model does not react to deletion), mean relative stability
  (index.csv's ``stability_relative``, when the run computed it), whether it is recommended, and flags
  (``model_insensitive``, ``sanity_underpowered``, ``unstable``). The rule, the flags'
  thresholds and the papers are in :mod:`medxai.metrics.comparison`.

Localisation figures use the saved maps at the source geometry against the
masks. Faithfulness curves (Petsiuk et al. 2018) run the model on the
preprocessed image and rank the pixels by the map the method produced in the
model's geometry: the saved map when the geometries agree, else the method's
map recomputed on the model input (never the saved map resampled back, which
would blur its ranking). A constant map ranks nothing: its localisation and
curve figures are NaN (an empty cell). metrics.csv and summary.csv are written
before the sanity check, so a failure there cannot lose them.

Region targets (a segmentation model, :mod:`medxai.regions`): each row's region is
recomputed as the run computed it (:meth:`~medxai.pipeline.explainer.Explainer.image_regions`
on the model's probabilities for the unperturbed image, keyed by channel, region and
component). Localisation is against that region, resampled to the saved map's geometry by
nearest neighbour as the map writer does (not against ``mask_path``): relevance mass is the
share of the map's mass inside the region, the pointing game whether the map's peak is in it,
top-k IoU its overlap with the map's strongest pixels. The deletion and insertion curves
follow the region score held on the fixed region: the channel's mean *probability* over the
region (the index's ``score`` column), bounded in [0, 1] like a classifier's probability, so
the areas compare across regions of any size (the explained ``region_score`` is a sum or mean
of logits, unbounded). Completeness is the index's ``relative_delta``: integrated gradients'
error against the explained region score (the methods' own target). The randomisation check
explains each chosen image's first region again with every randomised model, the mask held as
the original model predicted it. ``metrics.csv`` names each map by
:func:`~medxai.io.index.map_key`: ``channel``, ``region`` and ``component`` follow
``class_index`` (empty for a classifier).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medxai._progress import progress_bar
from medxai.errors import ConfigError, EvaluationError, StudyError
from medxai.heatmap import to_heatmap
from medxai.io import ImageReadError, read_image
from medxai.io.index import INDEX_NAME, RUN_NAME, csv_text, map_key, read_index
from medxai.io.limits import DEFAULT_MAX_PIXELS, DEFAULT_READ_TIMEOUT
from medxai.io.writers import read_npy, write_text
from medxai.metrics.comparison import Difference, Recommendation, compare_methods, recommend
from medxai.metrics.faithfulness import curve_area, deletion_curve, insertion_curve
from medxai.metrics.road import road_score
from medxai.metrics.scores import gini, pointing_game, relevance_mass, summarise, topk_iou
from medxai.pipeline.config import Config
from medxai.pipeline.config.sections import EvaluationSpec  # the config's `evaluate:` section plus a seed
from medxai.pipeline.decoder import Decoder
from medxai.pipeline.study_methods import study_methods, study_rows
from medxai.pipeline.targets import Target, method_target
from medxai.preprocess import resize_mask
from medxai.regions import ResolvedRegion

METRICS = (
    "completeness", "gini", "pointing_game", "relevance_mass", "topk_iou", "deletion_auc", "insertion_auc", "road"
)  # fmt: skip
METRICS_COLUMNS = ("image_id", "method", "class_index", "channel", "region", "component", *METRICS, "error")
MapKey = tuple[str, str, str, str, str]
SUMMARY_COLUMNS = ("method", "metric", "mean", "mean_ci_low", "mean_ci_high", "median", "p2.5", "p97.5", "n")
#: summary.csv's names before ``p2.5``/``p97.5`` (the readers accept them in old run folders).
OLD_SUMMARY_NAMES = {"ci_low": "p2.5", "ci_high": "p97.5"}
SANITY_COLUMNS = (
    "method",
    "step",
    "layer",
    "spearman",
    "spearman_sd",
    "spearman_abs",
    "spearman_abs_sd",
    "undefined",
    "error",
)
COMPARISON_COLUMNS = ("metric", "method_a", "method_b", "diff", "ci_low", "ci_high")
RECOMMENDATION_COLUMNS = (
    "method", "randomisation", "faithfulness_rank", "localisation_rank", "stability", "recommended", "flags"
)  # fmt: skip


@dataclass
class EvaluationResult:
    """Where the figures went and the per-method verdicts."""

    run_dir: Path
    maps: int = 0
    summary: list[dict[str, Any]] = field(default_factory=list)
    sanity: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparison: list[Difference] = field(default_factory=list)
    recommendation: Recommendation | None = None

    def table(self) -> str:
        """The per-method means as a small text table (what the CLI prints)."""
        methods = sorted({row["method"] for row in self.summary})
        lines = ["method".ljust(22) + "".join(m[:14].rjust(15) for m in METRICS)]
        for method in methods:
            means = {row["metric"]: row["mean"] for row in self.summary if row["method"] == method}
            lines.append(method.ljust(22) + "".join(_cell(means.get(m)).rjust(15) for m in METRICS))
        if methods:
            lines.append(
                "(means over maps; summary.csv adds each mean's 95 % confidence interval, the median and the "
                "2.5-97.5 percentiles of the per-map values)"
            )
        for method, verdict in sorted(self.sanity.items()):
            lines.append(f"sanity check {method}: {_verdict_text(verdict)}")
        if self.recommendation is not None and self.recommendation.methods:
            lines.append(self.recommendation.table())
        return "\n".join(lines)


def _source(decoder: Any, row: Mapping[str, str]) -> Any:
    """A row's source image, read with the run's size and time limits."""
    config = decoder.config
    return read_image(
        row["source_path"],
        series_uid=row.get("series_uid") or None,
        max_pixels=config.data.max_pixels,
        timeout=config.runtime.read_timeout,
        max_abandoned=config.runtime.max_abandoned_reads,
        on_corrupt=config.data.on_corrupt,
    )


def _verdict_text(verdict: dict[str, Any]) -> str:
    if verdict["verdict"] == "error":
        return f"error ({verdict['error']})"

    def figure(key: str) -> str:
        mean, sd = verdict[key], verdict[f"{key}_sd"]
        if mean is None or not math.isfinite(mean):
            return "undefined"
        return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None and math.isfinite(sd) else "")

    return (
        f"{verdict['verdict']} (Spearman after full randomisation {figure('final_spearman')}, "
        f"of absolute values {figure('final_spearman_abs')}; over {verdict['seeds']} seed(s); "
        f"fails at |ρ| >= {verdict['threshold']:g}, medxai's convention)"
    )


def _cell(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """Rows as CSV text, floats to 4 decimals (formula-like text neutralised: :func:`~medxai.io.index.csv_text`)."""
    return csv_text([{k: _cell(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows], columns)


def _load_run(run_dir: Path, decoder=None, model: str | os.PathLike | None = None, progress: bool = False):
    """The run's decoder (rebuilt from ``run.json``) and its finished rows, and the model's provenance.

    The model file must be the one the maps were made with (its SHA-256 is in
    ``run.json``), unless ``model`` names another one on purpose.
    """
    from medxai.io.model import file_checksum  # deferred: TensorFlow starts here

    index_path, record_path = run_dir / INDEX_NAME, run_dir / RUN_NAME
    if not index_path.is_file() or not record_path.is_file():
        raise EvaluationError(f"{run_dir} is not a finished medxai run (no {INDEX_NAME} or {RUN_NAME})")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    run_sha = (record.get("model") or {}).get("sha256")
    if decoder is None:
        try:
            settings = dict(record["config"])
            if model is not None:
                settings["model"] = {**settings["model"], "path": str(Path(model).resolve())}
            config = Config.from_dict(settings, base_dir=run_dir)
        except (ConfigError, KeyError) as err:
            raise EvaluationError(f"cannot reload the study of {run_dir}: {err}") from err
        path = Path(config.model.path)
        try:
            sha = file_checksum(path)
        except OSError as err:
            raise EvaluationError(f"cannot read the model {path}: {err}") from err
        if model is None and run_sha and sha != run_sha:
            raise EvaluationError(
                f"the model at {path} is not the one that made the maps of {run_dir}: its SHA-256 is {sha}, "
                f"run.json records {run_sha}. Scoring the old maps with another model would give wrong figures; "
                "run the study again with this model, or pass --model PATH to evaluate with another model on "
                "purpose (it is recorded in evaluation.json)"
            )
        try:
            # the run folder may have moved since; the model's hash is the one just taken
            decoder = Decoder(config, check_output=False, model_checksum=sha, feedback=progress)
        except StudyError as err:
            raise EvaluationError(f"cannot reload the study of {run_dir}: {err}") from err
    else:
        sha, path = decoder.model_checksum, Path(decoder.config.model.path)
    provenance = {"path": str(path), "sha256": sha, "run_sha256": run_sha, "same_as_run": sha == run_sha}
    rows = [r for r in read_index(index_path)[1] if r.get("status") == "ok"]
    return decoder, rows, provenance


def _mask(row: dict[str, str], shape: tuple[int, ...]) -> np.ndarray | None:
    if not row["mask_path"]:
        return None
    mask = read_image(row["mask_path"], max_pixels=DEFAULT_MAX_PIXELS, timeout=DEFAULT_READ_TIMEOUT).array[..., 0] > 0
    if mask.shape != shape:
        raise ValueError(f"mask {row['mask_path']} is {mask.shape}, the map {shape}")
    return mask


def _image_targets(decoder, rows: list[dict[str, str]], tensor: np.ndarray) -> dict[MapKey, Target]:
    """What each of an image's rows explains, by :func:`map_key`: its class, or its region as the run computed it.

    Raises:
        ValueError: a row's region is not among those the model gives the image now.
    """
    explainer = decoder.explainer
    if not explainer.dense:
        return {map_key(r): int(r["class_index"]) for r in rows}
    score = decoder.scores.predict(tensor[None], decoder.config.runtime.batch_size)[0]
    manifest = None
    if explainer.targets.region == "manifest":
        path = _region_paths(decoder).get(rows[0]["image_id"])
        manifest = None if path is None else explainer.manifest_region(path, tensor.shape[:-1])
    regions = explainer.image_regions(score, manifest)
    targets: dict[MapKey, Target] = {}
    for row in rows:
        region = regions.get((row["class_index"], row.get("region", ""), row.get("component", "")))
        if region is None or region.voxels == 0:
            raise ValueError(
                f"the {row.get('region')} region {row.get('component', '')} of channel {row['class_index']} is not "
                "among the regions the model gives this image now (another model, or other settings?)"
            )
        targets[map_key(row)] = region
    return targets


def _region_paths(decoder) -> dict[str, str | None]:
    """The manifest's region mask per image id (``targets: {region: manifest}``), read once per decoder."""
    paths = getattr(decoder, "_evaluation_region_paths", None)
    if paths is None:
        paths = {r.image_id: r.region_path for r in study_rows(decoder.config)}
        decoder._evaluation_region_paths = paths
    return paths


def _model_maps(
    decoder, rows: list[dict[str, str]], tensor: np.ndarray, geometry, targets: Mapping[MapKey, Target]
) -> dict[MapKey, Any]:
    """The maps the methods produce on ``tensor`` (model geometry), by map key; an error text where one failed.

    Empty when the source geometry is the model's: the saved maps are then those maps exactly.
    """

    if tuple(geometry.source_spatial_shape) == tuple(geometry.model_spatial_shape):
        return {}
    methods = {method.name: method for method in decoder.methods}
    maps: dict[MapKey, Any] = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        keys = [map_key(r) for r in rows if r["method"] == name]
        try:
            if name not in methods:
                raise ValueError(f"method {name!r} of the index is not among the run's methods ({', '.join(methods)})")
            images = np.repeat(tensor[None], len(keys), axis=0)
            attributions = methods[name].attribute(images, [method_target(targets[k]) for k in keys])
            for k, a in zip(keys, attributions):
                maps[k] = to_heatmap(a, decoder.policy)
        except Exception as err:  # one method failing must not cost the other figures
            for k in keys:
                maps[k] = f"{type(err).__name__}: {err}"
    return maps


def _map_figures(
    decoder, row, spec: EvaluationSpec, tensor: np.ndarray | None, model_map: Any = None, target: Target | None = None
) -> dict[str, Any]:
    """One map's figures; ``target`` is the row's (a region's localisation and curves need it)."""
    out = decoder.out
    figures: dict[str, Any] = {m: None for m in METRICS}
    delta = row.get("relative_delta", row.get("delta"))
    figures["completeness"] = float(delta) if delta else None
    if not row["npy_path"]:
        figures["error"] = "no .npy map written (output.formats)"
        return figures
    heatmap = read_npy(out / row["npy_path"])  # a damaged map is a ValueError naming the file
    figures["gini"] = gini(heatmap)
    region = target if isinstance(target, ResolvedRegion) else None
    if row.get("region") and region is None:
        raise ValueError(f"the region of {row['npy_path']} was not recomputed")
    # a region row is localised against its region, resampled as the map writer resampled it
    mask = _mask(row, heatmap.shape) if region is None else resize_mask(region.mask, heatmap.shape)
    if mask is not None:
        figures["pointing_game"] = pointing_game(heatmap, mask)
        figures["relevance_mass"] = relevance_mass(heatmap, mask)
        figures["topk_iou"] = topk_iou(heatmap, mask, percent=spec.topk_percent)
    if spec.faithfulness and tensor is not None:
        if isinstance(model_map, str):
            figures["error"] = f"faithfulness: {model_map}"
            return figures
        if model_map is None:
            model_map = heatmap
        if model_map.shape != tensor.shape[:-1]:
            raise ValueError(f"map {row['npy_path']} is {model_map.shape}, the model input {tensor.shape[:-1]}")
        if np.ptp(model_map) == 0:
            figures["deletion_auc"] = figures["insertion_auc"] = float("nan")
            figures["road"] = float("nan") if spec.road else None
            return figures
        class_index = int(row["class_index"])
        batch = decoder.config.runtime.batch_size

        def predict(images: np.ndarray) -> np.ndarray:
            probabilities = decoder.scores.predict(images, batch)
            if region is None:
                return probabilities[:, class_index]
            return region_probability(probabilities, region)

        for name, curve in (("deletion_auc", deletion_curve), ("insertion_auc", insertion_curve)):
            fractions, scores = curve(
                predict, tensor, model_map, baseline=spec.baseline, step_percent=spec.step_percent, batch_size=batch
            )
            figures[name] = curve_area(fractions, scores)
        if spec.road:
            figures["road"] = road_score(predict, tensor, model_map, seed=spec.seed, batch_size=batch)
    return figures


def region_probability(probabilities: np.ndarray, region: ResolvedRegion) -> np.ndarray:
    """The region's channel's mean probability over the (fixed) region, per image: in [0, 1].

    Args:
        probabilities: ``(N, *output_spatial, channels)``.
        region: The region (its mask on the output grid; not empty).

    Example:
        >>> p = np.array([[[0.2, 0.9], [0.4, 0.1]]])[..., None]  # one image, 2x2, one channel
        >>> region_probability(p, ResolvedRegion(0, np.array([[True, True], [False, False]]), "predicted"))
        array([0.55])
    """
    values = np.asarray(probabilities, dtype=np.float64)[..., region.channel]
    return values[:, region.mask].mean(axis=1)


def _sanity(
    decoder, rows: list[dict[str, str]], spec: EvaluationSpec, progress: bool = False
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The sanity.csv rows and per-method verdicts; a failure is recorded per method, never raised.

    With ``progress`` a bar counts the check's explanations: every method on the trained
    model, then on each seed's copy at each step (method x (1 + seeds x steps)), the method
    at work in its description.
    """
    from medxai.metrics.randomisation import (  # deferred: needs Keras
        SanityResult,
        cascading_randomisation,
        weighted_layers,
    )

    names = list(dict.fromkeys([m.name for m in decoder.methods] + [r["method"] for r in rows]))
    try:
        chosen: dict[str, tuple[np.ndarray, Any]] = {}
        for row in rows:
            if row["image_id"] not in chosen and len(chosen) < spec.sanity_images:
                tensor = decoder.preprocessor(_source(decoder, row))[0]  # a region: as the original model predicts it
                chosen[row["image_id"]] = (tensor, method_target(_image_targets(decoder, [row], tensor)[map_key(row)]))
        if not chosen:
            return [], {}
        images = np.stack([t for t, _ in chosen.values()])
        classes = [c for _, c in chosen.values()]
        built: list[Any] = [None, {}]  # the model the methods were last built on, and them
        seeds = [spec.seed + k for k in range(spec.sanity_seeds)]
        total = len(names) * (1 + len(seeds) * len(weighted_layers(decoder.model)))

        with progress_bar(total, desc="sanity check", unit="explanation", enabled=progress) as bar:

            def explain(model, name: str) -> np.ndarray:
                bar.set_description(f"sanity check {name}")
                try:
                    if built[0] is not model:
                        built[:] = [model, {m.name: m for m in study_methods(decoder.config, model)}]
                    if name not in built[1]:
                        raise ValueError(f"method {name!r} is not among the run's methods ({', '.join(built[1])})")
                    return built[1][name].attribute(images, classes)
                finally:
                    bar.update(1)

            result = cascading_randomisation(decoder.model, explain, names, seeds=seeds)
    except Exception as err:  # the model cannot be copied, an image cannot be read: every method says so
        result = SanityResult([], tuple(spec.seed + k for k in range(spec.sanity_seeds)))
        result.errors = {name: f"{type(err).__name__}: {err}" for name in names}
        chosen = {}
    table: list[dict[str, Any]] = [asdict(s) for s in result.steps]
    verdicts = {}
    for method in names:
        verdicts[method] = {**result.verdict(method, spec.sanity_threshold), "images": len(chosen)}
        if method in result.errors:
            table.append({"method": method, "step": None, "layer": None, "error": result.errors[method]})
    return table, verdicts


def _compare(
    methods: list[str],
    metrics: list[dict[str, Any]],
    rows: list[dict[str, str]],
    sanity: dict[str, dict[str, Any]],
    spec: EvaluationSpec,
) -> tuple[list[Difference], Recommendation]:
    """The paired comparison of the methods and the recommendation (:mod:`medxai.metrics.comparison`).

    Maps pair by image and target (``map_key`` without the method). index.csv's
    ``stability_relative`` (where the run wrote one; free of the method's units) is averaged per
    method for the ``unstable`` flag and the table's ``stability``; it is not ranked.
    """

    def pair(row: Mapping[str, Any]) -> tuple[str, ...]:
        image_id, _, *target = map_key(row)
        return (image_id, *target)

    values: dict[str, dict[str, dict[tuple[str, ...], float]]] = {}
    for row in metrics:
        for metric in METRICS:
            if row.get(metric) is not None and math.isfinite(row[metric]):
                values.setdefault(metric, {}).setdefault(row["method"], {})[pair(row)] = float(row[metric])
    stability: dict[str, list[float]] = {}
    for row in rows:
        try:
            value = float(row.get("stability_relative") or "nan")
        except ValueError:
            continue
        if not math.isnan(value):  # an infinite figure (a zero map that changed) counts
            stability.setdefault(row["method"], []).append(value)
    ordered = {metric: {m: per[m] for m in methods if m in per} for metric, per in values.items()}
    differences = compare_methods(ordered, seed=spec.seed)
    curves: dict[str, list[tuple[float, float]]] = {}
    for row in metrics:
        if row.get("deletion_auc") is not None and row.get("insertion_auc") is not None:
            curves.setdefault(row["method"], []).append((row["deletion_auc"], row["insertion_auc"]))
    present = [m for m in methods if any(r["method"] == m for r in metrics) or m in sanity]
    return differences, recommend(present, differences, sanity=sanity, curves=curves, stability=stability or None)


def _json_safe(value: Any) -> Any:
    """NaN/inf become null, so evaluation.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def evaluate_run(
    run_dir: str | os.PathLike,
    spec: EvaluationSpec | None = None,
    *,
    progress: bool = True,
    decoder: Any = None,
    model: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Compute every quality figure of a finished run and write them beside its index.

    Args:
        run_dir: The run's ``output.dir``.
        spec: What to compute (defaults: everything).
        progress: Show a progress bar.
        decoder: The :class:`~medxai.pipeline.decoder.Decoder` that made the run (default:
            rebuilt from ``run.json``).
        model: Evaluate with this model file instead of the run's, on purpose (recorded in
            ``evaluation.json``); by default the run's model, which must be unchanged.

    Raises:
        EvaluationError: not a finished run, its study cannot be reloaded, or the model file
            is not the one that made the maps (its SHA-256 differs from ``run.json``'s; the
            message names both).
    """

    spec = EvaluationSpec() if spec is None else spec
    run_dir = Path(run_dir).resolve()
    decoder, rows, provenance = _load_run(run_dir, decoder, model, progress)
    by_image: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        by_image.setdefault(row["image_id"], []).append(position)
    figures_of: list[dict[str, Any]] = [{} for _ in rows]
    bar = progress_bar(len(rows), desc="evaluate", unit="map", enabled=progress)
    dense = decoder.explainer.dense  # region rows need the image for their regions
    for positions in by_image.values():
        image_rows = [rows[p] for p in positions]
        tensor, model_maps, failure = None, {}, None
        targets: dict[MapKey, Target] = {}
        if spec.faithfulness or dense:
            try:
                tensor, geometry = decoder.preprocessor(_source(decoder, image_rows[0]))
                targets = _image_targets(decoder, image_rows, tensor)
                if spec.faithfulness:
                    model_maps = _model_maps(decoder, image_rows, tensor, geometry, targets)
            except (ImageReadError, OSError, ValueError) as err:
                failure = str(err)
        for position, row in zip(positions, image_rows):
            bar.update()
            figures: dict[str, Any]
            try:
                if failure is not None:
                    raise ValueError(failure)
                key = map_key(row)
                image = tensor if spec.faithfulness else None
                figures = _map_figures(decoder, row, spec, image, model_maps.get(key), targets.get(key))
            except (ImageReadError, OSError, ValueError) as err:
                figures = {m: None for m in METRICS}
                figures["error"] = str(err)
            figures_of[position] = figures
    bar.close()
    region_columns = ("channel", "region", "component")
    metrics = [
        {
            "image_id": row["image_id"],
            "method": row["method"],
            "class_index": row["class_index"],
            **{c: row.get(c, "") for c in region_columns},
            **figures,
        }
        for row, figures in zip(rows, figures_of)
    ]
    result = EvaluationResult(run_dir, maps=len(metrics))
    for method in dict.fromkeys(r["method"] for r in metrics):
        for metric in METRICS:
            values = [r[metric] for r in metrics if r["method"] == method and r[metric] is not None]
            if values:
                stats = summarise(np.asarray(values, dtype=np.float64), seed=spec.seed)
                result.summary.append({"method": method, "metric": metric, **stats})
    write_text(run_dir / "metrics.csv", _csv(metrics, METRICS_COLUMNS))
    write_text(run_dir / "summary.csv", _csv(result.summary, SUMMARY_COLUMNS))
    sanity_rows: list[dict[str, Any]] = []
    if spec.sanity_images:
        sanity_rows, result.sanity = _sanity(decoder, rows, spec, progress)
    write_text(run_dir / "sanity.csv", _csv(sanity_rows, SANITY_COLUMNS))
    methods = list(dict.fromkeys([m.name for m in decoder.methods] + [r["method"] for r in metrics]))
    result.comparison, result.recommendation = _compare(methods, metrics, rows, result.sanity, spec)
    comparison = [{c: getattr(d, c) for c in COMPARISON_COLUMNS} for d in result.comparison]
    write_text(run_dir / "comparison.csv", _csv(comparison, COMPARISON_COLUMNS))
    recommendation = [v.row() for v in result.recommendation.methods]
    write_text(run_dir / "recommendation.csv", _csv(recommendation, RECOMMENDATION_COLUMNS))
    record = {
        "spec": spec.model_dump(),
        "model": provenance,
        "maps": result.maps,
        "summary": result.summary,
        "sanity": result.sanity,
        "comparison": [asdict(d) for d in result.comparison],
        "recommendation": {
            "rule": Recommendation.RULE,
            "methods": [asdict(v) for v in result.recommendation.methods],
            "notes": result.recommendation.notes,
        },
    }
    write_text(run_dir / "evaluation.json", json.dumps(_json_safe(record), indent=2, default=float) + "\n")
    return result
