"""Provenance: what a run did (:class:`RunSummary`), its ``run.json`` and the study-wide warnings."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from medxai.io.index import INDEX_NAME, RUN_NAME
from medxai.io.writers import write_text
from medxai.pipeline.config import Config
from medxai.pipeline.journal import jsonable, versions

#: A row's image's stored value range (not an index column).
STORED = "_stored_range"
_GEOMETRY_COLUMNS = ("source_shape", "spacing", "orientation")


@dataclass
class RunSummary:
    """What a run did. ``exit_code`` is 0 when every image succeeded, else 1.

    ``warned`` counts the images with a warning in the index (a reader's note, an
    adaptive map short of its tolerance, no class to explain); ``warnings`` are the
    study-wide warnings.
    """

    output_dir: Path
    images: int = 0
    maps: int = 0
    errors: int = 0
    resumed: int = 0
    warned: int = 0
    seconds: float = 0.0
    failed_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evaluation: Any = None  # a medxai.pipeline.evaluation.EvaluationResult when the config has `evaluate:`

    @property
    def exit_code(self) -> int:
        return 0 if self.errors == 0 else 1

    def __str__(self) -> str:
        warned = f", {self.warned} with warnings" if self.warned else ""
        return (
            f"medxai: {self.images} images ({self.resumed} resumed{warned}), {self.maps} maps, "
            f"{self.errors} errors in {self.seconds:.1f} s -> {self.output_dir / INDEX_NAME}"
        )


class Provenance:
    """Writes a run's ``run.json``: the config, methods, model, versions, host, executor, warnings and counts.

    Args:
        out: The run folder.
        config: The run's config.
        fingerprint: The run's settings fingerprint (:func:`medxai.pipeline.journal.fingerprint`).
        model_checksum: The model file's SHA-256.
        methods: The built methods.
        scores: The engine of the model's scores (probabilities).
        explained: What each method explains, by method name.
    """

    def __init__(
        self, out: Path, config: Config, fingerprint: str, model_checksum: str, methods: Sequence[Any], scores: Any,
        explained: Mapping[str, str],
    ):  # fmt: skip
        self.out, self.config, self.fingerprint, self.model_checksum = out, config, fingerprint, model_checksum
        self.methods, self.scores, self.explained = methods, scores, explained

    def write(
        self,
        started: datetime,
        ended: datetime | None,
        summary: RunSummary | None,
        executor: Mapping[str, Any],
        index: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Write ``run.json``: ``running`` while ``summary`` is None, else ``finished`` with the index's geometry."""
        head, config = self.scores.head, self.config
        geometry = {
            r["image_id"]: {k: r.get(k, "") for k in _GEOMETRY_COLUMNS}
            for r in reversed(index)
            if r.get("source_shape")
        }
        record = {
            "medxai": "run",
            "fingerprint": self.fingerprint,
            "status": "finished" if summary is not None else "running",
            "started": started.isoformat(),
            "ended": None if ended is None else ended.isoformat(),
            "config": config.to_dict(),
            "methods": [{"name": m.name, "method": type(m).name, "params": jsonable(m.params())} for m in self.methods],
            "heatmap": jsonable(config.heatmap.to_dict()),
            "model": {
                "path": str(config.model.path),
                "sha256": self.model_checksum,
                "input_shape": list(self.scores.input_shape),
                "classes": self.scores.n_outputs,
                "class_names": None if config.model.class_names is None else list(config.model.class_names),
                "multi_label": head.multi_label,
                "output_kind": head.kind,
                "output_kind_witness": head.witness,
                "activation": head.activation,
                "scores": self.scores.explained,
                "explained": "; ".join(dict.fromkeys(v for v in self.explained.values() if v)),
            },
            "geometry": {
                "axes": "maps (.npy, .png) are in the source array's order: (rows, cols) for 2D, "
                "(slices, rows, cols) for 3D; for NIfTI sources (Z, Y, X), the transpose of nibabel's (X, Y, Z). "
                "The NIfTI maps are in the file's (X, Y, Z) order with the source's affine.",
                "orientation": "per .npy axis, the RAS letter it increases towards (nibabel's aff2axcodes); "
                "empty when the source has no position in the patient",
                "images": dict(sorted(geometry.items())) if summary is not None else {},
            },
            "versions": versions(),
            "host": platform.node(),
            "executor": jsonable(dict(executor)),
            "warnings": [] if summary is None else summary.warnings,
            "counts": None
            if summary is None
            else {
                "images": summary.images,
                "maps": summary.maps,
                "errors": summary.errors,
                "resumed": summary.resumed,
                "warned": summary.warned,
                "seconds": round(summary.seconds, 3),
            },
        }
        write_text(self.out / RUN_NAME, json.dumps(record, indent=2, default=str) + "\n")


def study_warnings(config: Config, rows: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """Study-wide problems no single image shows: images stored on different scales fed to the model unscaled."""
    if config.preprocess.scale is not None:
        return []
    counts: dict[tuple[float, float], int] = {}
    for image_rows in rows.values():
        stored = next((r.get(STORED) for r in image_rows if r.get(STORED) is not None), None)
        if stored is not None:
            counts[tuple(stored)] = counts.get(tuple(stored), 0) + 1
    if len(counts) < 2:
        return []
    listed = ", ".join(
        f"{lo:g}..{hi:g} in {n} image(s)" for (lo, hi), n in sorted(counts.items(), key=lambda kv: -kv[1])
    )
    return [
        f"the images differ in stored value range ({listed}) and preprocess.scale is none, so the model "
        "sees them on different scales; set preprocess.scale: stored_range (or minmax) unless the model "
        "was trained on raw values"
    ]
