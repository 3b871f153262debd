"""The report's "Which map to trust" section: recommendation.csv at the top of the page, escaped."""

from __future__ import annotations

import json

import numpy as np
import yaml
from analytic_models import tiny_model

import medxai
from medxai.io.index import csv_text
from medxai.viz.report import write_report


def test_the_recommendation_table_is_on_top_and_escaped(tmp_path):
    tiny_model().save(tmp_path / "model.keras")
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((16, 16)).astype(np.float32))
    (tmp_path / "manifest.csv").write_text("image_id,path\na,a.npy\n")
    config = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id"},
        "methods": ["gradient"],
        "output": {"dir": "run", "formats": ["npy"]},
        "runtime": {"progress": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert medxai.run(tmp_path / "c.yaml").exit_code == 0
    run = tmp_path / "run"
    html_path, _ = write_report(run, progress=False)
    assert 'id="recommendation"' not in html_path.read_text()  # not evaluated: no section
    columns = ("method", "randomisation", "faithfulness_rank", "localisation_rank", "stability", "recommended", "flags")
    rows = [
        {"method": "gradient", "randomisation": "PASS", "faithfulness_rank": 1, "localisation_rank": "",
         "stability": "", "recommended": "yes", "flags": "sanity_underpowered"},
        {"method": "<b>evil</b>", "randomisation": "FAIL", "faithfulness_rank": 2, "localisation_rank": "",
         "stability": "", "recommended": "no", "flags": ""},
    ]  # fmt: skip
    (run / "recommendation.csv").write_text(csv_text(rows, columns))
    record = {
        "recommendation": {
            "rule": "recommended = passes the randomisation check",
            "methods": [{"method": "<b>evil</b>", "why": "not recommended: fails the randomisation check"}],
            "notes": ["sanity_underpowered (gradient): 1 image(s), fewer than 10"],
        }
    }
    (run / "evaluation.json").write_text(json.dumps(record))
    text = write_report(run, progress=False)[0].read_text()
    section = text[text.index('<section id="recommendation">') : text.index('<section id="provenance">')]
    assert "<b>gradient</b>" in section and "sanity_underpowered" in section and "fewer than 10" in section
    assert "&lt;b&gt;evil&lt;/b&gt;" in section and "<b>evil</b>" not in section
    assert "fails the randomisation check" in section and "rule:" in section
