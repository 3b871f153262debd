"""``medxai evaluate RUN_DIR``: quality figures for every map of a finished run.

Writes beside the index:

* ``metrics.csv``: one row per map: IG completeness error, Gini sparseness,
  pointing game, relevance mass and top-k IoU (where a mask exists), deletion
  and insertion areas;
* ``summary.csv``: per method and metric, mean, median, 2.5/97.5 percentiles, n;
* ``sanity.csv`` and ``evaluation.json``: the model-randomisation check.

Localisation figures use the saved maps at the source geometry against the
masks; faithfulness curves run the model on the preprocessed image with the map
resampled to the model input.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medxai.evaluation.faithfulness import curve_area, deletion_curve, insertion_curve
from medxai.evaluation.metrics import gini, pointing_game, relevance_mass, summarise, topk_iou
from medxai.io import ImageReadError, read_image
from medxai.io.writers import write_text
from medxai.preprocess import resize_spatial

METRICS = ("completeness", "gini", "pointing_game", "relevance_mass", "topk_iou", "deletion_auc", "insertion_auc")
METRICS_COLUMNS = ("image_id", "method", "class_index", *METRICS, "error")
SUMMARY_COLUMNS = ("method", "metric", "mean", "median", "ci_low", "ci_high", "n")
SANITY_COLUMNS = ("method", "step", "layer", "spearman")


class EvaluationError(ValueError):
    """The folder is not a finished medxai run, or its study cannot be reloaded."""


@dataclass(frozen=True)
class EvaluationSpec:
    """What ``medxai evaluate`` computes.

    Attributes:
        faithfulness: Compute deletion/insertion curves (one batched model pass per step).
        baseline: What deleted pixels become: ``"blur"`` or ``"zeros"`` (model input space).
        step_percent: Pixels removed or inserted per curve step, in percent.
        topk_percent: The top-k region of the map for IoU with the mask, in percent.
        sanity_images: Images in the randomisation check (0 skips it).
        sanity_threshold: A method fails the check when its maps' mean Spearman
            correlation with the trained model's maps, after randomising every
            layer, is still above this.
        seed: Seed of the random weights.
    """

    faithfulness: bool = True
    baseline: str = "blur"
    step_percent: float = 5.0
    topk_percent: float = 5.0
    sanity_images: int = 4
    sanity_threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.baseline not in ("blur", "zeros"):
            raise ValueError(f"baseline must be 'blur' or 'zeros', got {self.baseline!r}")
        if not 0 < self.step_percent <= 100 or not 0 < self.topk_percent <= 100:
            raise ValueError("step_percent and topk_percent must be in (0, 100]")
        if self.sanity_images < 0:
            raise ValueError(f"sanity_images must be >= 0, got {self.sanity_images}")
        if not 0 <= self.sanity_threshold <= 1:
            raise ValueError(f"sanity_threshold must be in [0, 1], got {self.sanity_threshold}")


@dataclass
class EvaluationResult:
    """Where the figures went and the per-method verdicts."""

    run_dir: Path
    maps: int = 0
    summary: list[dict[str, Any]] = field(default_factory=list)
    sanity: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> str:
        """The per-method means as a small text table (what the CLI prints)."""
        methods = sorted({row["method"] for row in self.summary})
        lines = ["method".ljust(22) + "".join(m[:14].rjust(15) for m in METRICS)]
        for method in methods:
            means = {row["metric"]: row["mean"] for row in self.summary if row["method"] == method}
            lines.append(method.ljust(22) + "".join(_cell(means.get(m)).rjust(15) for m in METRICS))
        for method, verdict in sorted(self.sanity.items()):
            state = "PASS" if verdict["passed"] else "FAIL"
            lines.append(f"sanity check {method}: {state} (Spearman after full randomisation {verdict['final_spearman']:.3f})")
        return "\n".join(lines)


def _cell(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) if isinstance(v, float) else ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def _load_run(run_dir: Path, decoder=None):
    from medxai.config import Config, ConfigError
    from medxai.decoder import INDEX_NAME, RUN_NAME, Decoder, StudyError

    index_path, record_path = run_dir / INDEX_NAME, run_dir / RUN_NAME
    if not index_path.is_file() or not record_path.is_file():
        raise EvaluationError(f"{run_dir} is not a finished medxai run (no {INDEX_NAME} or {RUN_NAME})")
    if decoder is None:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        try:
            config = Config.from_dict(record["config"], base_dir=run_dir)
            decoder = Decoder(config)
        except (ConfigError, StudyError, KeyError) as err:
            raise EvaluationError(f"cannot reload the study of {run_dir}: {err}") from err
    with open(index_path, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "ok"]
    return decoder, rows


def _mask(row: dict[str, str], shape: tuple[int, ...]) -> np.ndarray | None:
    if not row["mask_path"]:
        return None
    mask = read_image(row["mask_path"]).array[..., 0] > 0
    if mask.shape != shape:
        raise ValueError(f"mask {row['mask_path']} is {mask.shape}, the map {shape}")
    return mask


def _map_figures(decoder, row, spec: EvaluationSpec, tensor: np.ndarray | None) -> dict[str, Any]:
    out = decoder.out
    figures: dict[str, Any] = {m: None for m in METRICS}
    figures["completeness"] = float(row["delta"]) if row["delta"] else None
    if not row["npy_path"]:
        figures["error"] = "no .npy map written (output.formats)"
        return figures
    heatmap = np.load(out / row["npy_path"])
    figures["gini"] = gini(heatmap)
    mask = _mask(row, heatmap.shape)
    if mask is not None:
        figures["pointing_game"] = pointing_game(heatmap, mask)
        figures["relevance_mass"] = relevance_mass(heatmap, mask)
        figures["topk_iou"] = topk_iou(heatmap, mask, percent=spec.topk_percent)
    if spec.faithfulness and tensor is not None:
        class_index = int(row["class_index"])
        model_map = resize_spatial(heatmap[..., None], tensor.shape[:-1])[..., 0]
        batch = decoder.config.runtime.batch_size

        def predict(images: np.ndarray) -> np.ndarray:
            return decoder.scores.predict(images, batch)[:, class_index]

        for name, curve in (("deletion_auc", deletion_curve), ("insertion_auc", insertion_curve)):
            fractions, scores = curve(predict, tensor, model_map, baseline=spec.baseline, step_percent=spec.step_percent, batch_size=batch)
            figures[name] = curve_area(fractions, scores)
    return figures


def _sanity(decoder, rows: list[dict[str, str]], spec: EvaluationSpec) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    from medxai.decoder import build_methods
    from medxai.sanity_check import cascading_randomisation
    from medxai.heatmap import to_heatmap

    chosen: dict[str, tuple[np.ndarray, int]] = {}
    for row in rows:
        if row["image_id"] not in chosen and len(chosen) < spec.sanity_images:
            tensor = decoder.preprocessor(read_image(row["source_path"]))[0]
            chosen[row["image_id"]] = (tensor, int(row["class_index"]))
    if not chosen:
        return [], {}
    images = np.stack([t for t, _ in chosen.values()])
    classes = [c for _, c in chosen.values()]

    def explain(model) -> dict[str, list[np.ndarray]]:
        return {
            method.name: [to_heatmap(a, decoder.policy) for a in method.attribute(images, classes)]
            for method in build_methods(decoder.config, model)
        }

    steps = cascading_randomisation(decoder.model, explain, seed=spec.seed)
    table = [asdict(s) for s in steps]
    verdicts = {}
    for method in {s.method for s in steps}:
        final = [s for s in steps if s.method == method][-1].spearman
        verdicts[method] = {
            "passed": bool(np.isfinite(final) and abs(final) < spec.sanity_threshold),
            "final_spearman": final,
            "threshold": spec.sanity_threshold,
            "images": len(chosen),
        }
    return table, verdicts


def evaluate_run(
    run_dir: str | os.PathLike, spec: EvaluationSpec | None = None, *, progress: bool = True, decoder: Any = None
) -> EvaluationResult:
    """Compute every quality figure of a finished run and write them beside its index.

    Args:
        run_dir: The run's ``output.dir``.
        spec: What to compute (defaults: everything).
        progress: Show a progress bar.
        decoder: The :class:`~medxai.decoder.Decoder` that made the run (default:
            rebuilt from ``run.json``).

    Raises:
        EvaluationError: not a finished run, or its study cannot be reloaded.
    """
    from medxai.progress import progress_bar

    spec = spec or EvaluationSpec()
    run_dir = Path(run_dir).resolve()
    decoder, rows = _load_run(run_dir, decoder)
    metrics = []
    tensors: dict[str, np.ndarray | None] = {}
    bar = progress_bar(len(rows), desc="evaluate", unit="map", enabled=progress)
    for row in rows:
        bar.update()
        figures: dict[str, Any]
        try:
            if spec.faithfulness and row["image_id"] not in tensors:
                tensors = {row["image_id"]: decoder.preprocessor(read_image(row["source_path"]))[0]}
            figures = _map_figures(decoder, row, spec, tensors.get(row["image_id"]))
        except (ImageReadError, OSError, ValueError) as err:
            figures = {m: None for m in METRICS}
            figures["error"] = str(err)
        metrics.append({"image_id": row["image_id"], "method": row["method"], "class_index": row["class_index"], **figures})
    bar.close()
    result = EvaluationResult(run_dir, maps=len(metrics))
    for method in dict.fromkeys(r["method"] for r in metrics):
        for metric in METRICS:
            values = [r[metric] for r in metrics if r["method"] == method and r[metric] is not None]
            if values:
                stats = summarise(np.asarray(values, dtype=np.float64))
                result.summary.append({"method": method, "metric": metric, **stats})
    sanity_rows: list[dict[str, Any]] = []
    if spec.sanity_images:
        sanity_rows, result.sanity = _sanity(decoder, rows, spec)
    write_text(run_dir / "metrics.csv", _csv(metrics, METRICS_COLUMNS))
    write_text(run_dir / "summary.csv", _csv(result.summary, SUMMARY_COLUMNS))
    write_text(run_dir / "sanity.csv", _csv(sanity_rows, SANITY_COLUMNS))
    record = {"spec": asdict(spec), "maps": result.maps, "summary": result.summary, "sanity": result.sanity}
    write_text(run_dir / "evaluation.json", json.dumps(record, indent=2, default=float) + "\n")
    return result
