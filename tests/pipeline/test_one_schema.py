"""Issue 10: one schema per concept. The library owns each setting; the config's sections are those classes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import medxai.pipeline.config as config
from medxai.errors import ConfigError
from medxai.heatmap import ClipSpec, HeatmapPolicy
from medxai.pipeline.config import Config, OutputSection
from medxai.preprocess import PreprocessSpec, ScaleStats, WindowSpec
from medxai.viz.render import OutlineSpec

REPO = Path(__file__).resolve().parents[2]


def test_config_sections_are_the_library_classes():
    assert Config.model_fields["heatmap"].annotation is HeatmapPolicy
    assert Config.model_fields["preprocess"].annotation is PreprocessSpec
    assert OutputSection.model_fields["overlay_outline"].annotation == OutlineSpec | None
    assert config.HeatmapSection is HeatmapPolicy
    assert config.ClipSection is ClipSpec
    assert config.PreprocessSection is PreprocessSpec
    assert config.WindowSpec is WindowSpec and config.ScaleStats is ScaleStats
    assert OutputSection.Outline is OutlineSpec


def test_the_conversions_are_gone():
    import medxai.pipeline.decoder as decoder

    assert not hasattr(decoder, "heatmap_policy") and not hasattr(decoder, "preprocess_spec")


@pytest.mark.parametrize(
    "path", ["medxai/_validation.py", "medxai/heatmap.py", "medxai/preprocess/spec.py", "medxai/viz/outline_spec.py"]
)
def test_the_library_schemas_never_import_the_pipeline(path):
    tree = ast.parse((REPO / path).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.startswith("medxai.pipeline")]


def test_a_config_section_is_ready_for_the_library(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    (tmp_path / "manifest.csv").write_text("path\n")
    cfg = Config.from_dict(
        {
            "model": {"path": "m.keras"},
            "data": {"manifest": "manifest.csv"},
            "preprocess": {"window": {"center": 40, "width": 400}, "scale": {"mean": 0.5, "std": 0.25}},
            "heatmap": {"clip": {"mode": "mass"}},
            "output": {"dir": "out", "overlay_outline": {"top_percent": 2}},
        },
        base_dir=tmp_path,
        method_registry=lambda: {"integrated_gradients": object},
    )
    assert cfg.heatmap == HeatmapPolicy(clip=ClipSpec("mass", 0, 99.5))
    assert cfg.preprocess.window == (40.0, 400.0) and cfg.preprocess.scale["std"] == 0.25
    assert cfg.output.overlay_outline == OutlineSpec(top_percent=2)
    assert cfg.to_dict()["preprocess"]["window"] == {"center": 40.0, "width": 400.0}


def test_direct_construction_says_the_field_then_the_rules_one_message():
    with pytest.raises(ValueError, match=r"^expected 0 <= low < high <= 100, got low=60, high=50$"):
        ClipSpec("value", 60, 50)
    with pytest.raises(ValueError, match=r"^clip: expected 0 <= low < high <= 100, got low=60, high=50$"):
        HeatmapPolicy(clip={"low": 60, "high": 50})
    with pytest.raises(ValueError, match=r"^clip\.low: expected a number, got 'x'$"):
        HeatmapPolicy(clip={"low": "x"})
    with pytest.raises(ValueError, match=r"^reduce: expected one of abs_sum, sum, max_abs, l2, got 'mean'$"):
        HeatmapPolicy(reduce="mean")
    with pytest.raises(
        ValueError,
        match=r"^window: expected 'auto', none, \(center, width\) or \{center: \.\., width: \.\.\}, got 'lung'$",
    ):
        PreprocessSpec(window="lung")
    with pytest.raises(ValueError, match=r"^radius: expected a non-negative integer, got -1$"):
        OutlineSpec(radius=-1)


@pytest.mark.parametrize(
    ("section", "key", "value", "cls"),
    [
        ("heatmap", "reduce", "mean", HeatmapPolicy),
        ("heatmap", "polarity", "both", HeatmapPolicy),
        ("preprocess", "size", [0, 8], PreprocessSpec),
        ("preprocess", "scale", [1, 0], PreprocessSpec),
        ("preprocess", "preset", "densnet", PreprocessSpec),
    ],
)
def test_the_config_and_the_library_give_the_same_message(tmp_path, section, key, value, cls):
    (tmp_path / "m.keras").write_bytes(b"")
    (tmp_path / "manifest.csv").write_text("path\n")
    with pytest.raises(ConfigError) as config_error:
        Config.from_dict(
            {
                "model": {"path": "m.keras"},
                "data": {"manifest": "manifest.csv"},
                section: {key: value},
                "output": {"dir": "out"},
            },
            base_dir=tmp_path,
            method_registry=lambda: {"integrated_gradients": object},
        )
    with pytest.raises(ValueError) as library_error:
        cls(**{key: value})
    assert f"{section}.{library_error.value}" in str(config_error.value)
