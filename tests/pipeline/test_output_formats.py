"""The table of output formats: a new format is one writer and one registration."""

from __future__ import annotations

import numpy as np
import pytest
from study_helpers import read_index, write_config

import medxai
from medxai.io.formats import (
    MapToWrite,
    OutputFormat,
    output_formats,
    register_format,
    unregister_format,
)
from medxai.io.index import index_columns
from medxai.io.writers import write_text
from medxai.pipeline.config import ConfigError, load_config


def write_mean(map_: MapToWrite) -> dict[str, str]:
    """The toy format: the map's mean as text."""
    name = map_.name(".mean.txt")
    write_text(map_.folder / name, f"{float(map_.heatmap.mean())!r}\n")
    return {"mean_path": name}


@pytest.fixture
def mean_format():
    fmt = register_format(OutputFormat("mean", columns=("mean_path",), suffixes=(".mean.txt",), write=write_mean))
    yield fmt
    unregister_format("mean")


def test_a_registered_format_is_configurable_written_and_indexed(study, mean_format):
    summary = medxai.run(
        write_config(
            study, "toy_format", methods=["gradient"], output={"dir": "toy_format", "formats": ["npy", "mean"]}
        )
    )
    out = summary.output_dir
    rows = read_index(out / "index.csv")
    assert list(rows[0]) == list(index_columns()) and "mean_path" in rows[0]
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["mean_path"] == r["npy_path"][: -len(".npy")] + ".mean.txt" for r in ok)
    for row in ok:
        assert float((out / row["mean_path"]).read_text()) == pytest.approx(
            float(np.load(out / row["npy_path"]).mean())
        )
    assert all(not r["mean_path"] for r in rows if r["status"] != "ok")
    assert not list(out.rglob("*.png"))  # only the formats asked for


def test_a_format_that_fails_leaves_no_file_of_the_map(study):
    def broken(map_: MapToWrite) -> dict[str, str]:
        (map_.folder / map_.name(".half")).write_text("half written")
        raise OSError("the toy writer failed")

    register_format(OutputFormat("broken", columns=("broken_path",), suffixes=(".half",), write=broken))
    try:
        summary = medxai.run(
            write_config(
                study, "toy_broken", methods=["gradient"], output={"dir": "toy_broken", "formats": ["npy", "broken"]}
            )
        )
    finally:
        unregister_format("broken")
    rows = read_index(summary.output_dir / "index.csv")
    assert rows and all(r["status"] == "error" and not r["npy_path"] for r in rows)
    assert any("the toy writer failed" in r["error"] for r in rows)
    assert not [p for p in (summary.output_dir / "maps").rglob("*") if p.is_file()]


def test_an_unregistered_format_is_refused_naming_the_known_ones(study):
    with pytest.raises(ConfigError, match=r"unknown format 'mean' \(known: npy, png, overlay, nifti, dicom"):
        load_config(write_config(study, "toy_unknown", output={"dir": "toy_unknown", "formats": ["npy", "mean"]}))
    assert "mean" not in output_formats() and "mean_path" not in index_columns()
