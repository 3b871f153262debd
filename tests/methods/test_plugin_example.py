"""The plug-in example of the pages (docs/extending.md), installed from a real dist-info, works by name everywhere."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from study_helpers import read_index, write_config

import medxai
from medxai.methods import registry
from medxai.pipeline.config import Config, ConfigError

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def pages_plugin_source() -> str:
    pattern = r"```python\n(# my_package/contrast.py\n.*?)```"
    blocks = [block for page in PAGES for block in re.findall(pattern, page.read_text(encoding="utf-8"), re.S)]
    assert len(blocks) == 1  # one example, in README.md or docs/*.md
    return blocks[0]


@pytest.fixture
def installed(tmp_path, monkeypatch):
    package = tmp_path / "my_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "contrast.py").write_text(pages_plugin_source())
    dist = tmp_path / "my_package-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[medxai.methods]\nimage_contrast = my_package.contrast:ImageContrast\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh_plugins()
    yield
    monkeypatch.undo()
    for name in ("my_package", "my_package.contrast"):
        sys.modules.pop(name, None)
    registry.refresh_plugins()


def test_the_readme_plugin_works_in_python_yaml_and_validation(installed, study, capsys):
    methods = medxai.available_methods()
    assert methods["contrast"] is methods["image_contrast"]
    from medxai.cli import main

    assert main(["methods"]) == 0
    assert "image_contrast (aliases: contrast)" in capsys.readouterr().out
    summary = medxai.run(write_config(study, "plugin", methods=[{"name": "contrast", "sigma": 1.5}]))
    rows = [r for r in read_index(summary.output_dir / "index.csv") if r["status"] == "ok"]
    assert rows and {r["method"] for r in rows} == {"image_contrast"}
    same = next(r for r in rows if r["image_id"] == "same")  # source geometry = model geometry
    heatmap = np.load(summary.output_dir / same["npy_path"])
    assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
    base = {"model": {"path": "model.keras"}, "data": {"manifest": "manifest.csv"}, "output": {"dir": "o"}}
    with pytest.raises(ConfigError, match="sigma"):
        Config.from_dict({**base, "methods": [{"name": "contrast", "sigmaa": 1}]}, base_dir=study)
    with pytest.raises(ConfigError, match="polarity 'negative' with image_contrast"):
        Config.from_dict({**base, "methods": ["contrast"], "heatmap": {"polarity": "negative"}}, base_dir=study)
