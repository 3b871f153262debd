"""Shared helpers of the pipeline tests: a study config writer, the index as rows, a simulated Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import yaml

from medxai.io.index import read_index as _read_index
from medxai.pipeline.explainer import Explainer

METHODS = [{"name": "ig", "steps": 8}, "gradient", {"name": "smoothgrad", "samples": 3}]


def write_config(root: Path, out: str, base: dict | None = None, **changes) -> Path:
    """Writes a study config (``base``, or the pipeline tests' default) with ``section__key=value`` changes."""
    config = base or {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id", "label_column": "label"},
        "methods": METHODS,
        "output": {"dir": out},
        "runtime": {"batch_size": 4, "progress": False},
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            config.setdefault(section, {})[name] = value
        else:
            config[section] = value
    path = root / f"{out.replace('/', '_')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def region_run(root: Path, methods: list, formats: list[str]) -> Path:
    """A run of a tiny U-Net (:func:`analytic_models.tiny_unet`) on a 16 x 16 and a 24 x 24 image.

    It explains the two largest connected components of channel 1; returns the run folder ``root / "run"``.
    """
    import numpy as np
    from analytic_models import tiny_unet

    import medxai

    tiny_unet((16, 16, 1)).save(root / "unet.keras")
    rng = np.random.default_rng(0)
    for i, side in enumerate((16, 24)):  # img1 is resampled to the model's 16 x 16 and its maps back
        np.save(root / f"img{i}.npy", rng.random((side, side)).astype(np.float32))
    (root / "manifest.csv").write_text("image_id,path\nimg0,img0.npy\nimg1,img1.npy\n")
    config = {
        "model": {"path": "unet.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id"},
        "methods": methods,
        "targets": {"region": "connected", "channels": [1], "components": 2},
        "output": {"dir": "run", "formats": formats},
        "runtime": {"progress": False},
    }
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    assert medxai.run(root / "c.yaml").exit_code == 0
    return root / "run"


def count_processed(monkeypatch) -> list[str]:
    """The ids of the images the decoder computes from now on."""
    processed: list[str] = []
    original = Explainer.explain_group

    def counting(self, items, *args, **kwargs):
        processed.extend(item.row.image_id for item in items)
        return original(self, items, *args, **kwargs)

    monkeypatch.setattr(Explainer, "explain_group", counting)
    return processed


def read_index(path: Path) -> list[dict[str, str]]:
    """The rows of an index file."""
    return _read_index(path)[1]


def comparable(rows):
    """Index rows without their timing column."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def interrupt_on_call(monkeypatch, n: int):
    """Make the n-th image group the explainer gets raise KeyboardInterrupt (a simulated Ctrl-C)."""
    original, calls = Explainer.explain_group, {"n": 0}

    def interrupting(self, items, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(self, items, *args, **kwargs)

    monkeypatch.setattr(Explainer, "explain_group", interrupting)
