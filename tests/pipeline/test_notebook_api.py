"""The notebook API: ``medxai.explain`` on images in memory, ``load_config(dict)``, a DataFrame manifest."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import matplotlib
import numpy as np
import pandas as pd
import pytest

import medxai
from medxai import IntegratedGradients
from medxai.errors import ConfigError, ManifestError, StudyError
from medxai.preprocess import Preprocessor, PreprocessSpec
from medxai.regions import ResolvedRegion

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "data_samples" / "study"
PATHS = [STUDY / "ct" / "ct_000.dcm", STUDY / "ct" / "ct_003.dcm"]  # a negative and a lesion
PREPROCESS = {"window": "auto", "scale": "minmax"}
IG = {"name": "integrated_gradients", "steps": 4}


@pytest.fixture(scope="module")
def model():
    return keras.saving.load_model(REPO / "data_samples" / "model.keras", compile=False)


@pytest.fixture(scope="module")
def tensors(model):
    preprocessor = Preprocessor(PreprocessSpec(**PREPROCESS), model.input_shape[1:])
    return np.stack([preprocessor(medxai.read_image(p))[0] for p in PATHS])


@pytest.fixture(scope="module")
def predicted(model):
    results = medxai.explain(model, PATHS, methods=[IG], preprocess=PREPROCESS)
    return results


def test_paths_explain_the_predicted_class_with_the_library_heatmap(model, tensors, predicted):
    assert [r.image_id for r in predicted] == ["ct_000.dcm", "ct_003.dcm"]
    assert [r.method for r in predicted] == ["integrated_gradients"] * 2
    argmax = np.argmax(model.predict(tensors, verbose=0), axis=-1)
    assert [r.target for r in predicted] == [int(c) for c in argmax]
    ig = IntegratedGradients(model, steps=4)
    for tensor, result in zip(tensors, predicted):
        np.testing.assert_array_equal(result.heatmap, ig.compute_heatmap(tensor, class_index=result.target))
        assert result.attributions.shape == (64, 64, 1) and result.heatmap.shape == (64, 64)
        assert result.explained.startswith("logits")


def test_top_k_gives_k_results_per_image_and_method(model):
    results = medxai.explain(
        model, [str(p) for p in PATHS], methods=[IG, "gradient"], targets={"top_k": 2}, preprocess=PREPROCESS
    )
    assert len(results) == 2 * 2 * 2
    assert [(r.image_id, r.method) for r in results[:4]] == [
        ("ct_000.dcm", "integrated_gradients"),
        ("ct_000.dcm", "integrated_gradients"),
        ("ct_000.dcm", "gradient"),
        ("ct_000.dcm", "gradient"),
    ]
    assert sorted(r.target for r in results[:2]) == [0, 1]
    frame = results.to_frame()
    assert len(frame) == 8 and {"image_id", "method", "class_index", "score"} <= set(frame.columns)
    assert frame["score"].dtype == float and frame["class_index"].dtype == int


def test_an_array_batch_is_model_input(model, tensors, predicted):
    results = medxai.explain(model, tensors, methods=[IG])
    assert [r.image_id for r in results] == ["0", "1"]
    for mine, theirs in zip(results, predicted):
        assert mine.target == theirs.target
        np.testing.assert_array_equal(mine.heatmap, theirs.heatmap)
    picture = results[0].overlay()  # no displayed image: the colourised map
    assert picture.dtype == np.uint8 and picture.shape == (64, 64, 3)


def test_a_dataframe_of_images_with_labels(model, predicted):
    frame = pd.DataFrame({"image_id": ["neg", "lesion"], "path": [str(p) for p in PATHS], "label": [0, 1]})
    results = medxai.explain(model, frame, methods=[IG], targets="label", preprocess=PREPROCESS)
    assert [(r.image_id, r.target) for r in results] == [("neg", 0), ("lesion", 1)]
    assert predicted[1].target == 1  # the lesion is predicted: its label's map is the predicted class's
    np.testing.assert_array_equal(results[1].heatmap, predicted[1].heatmap)


def test_repr_png_is_the_overlay_and_plot_returns_axes(predicted):
    from PIL import Image

    result = predicted[1]
    picture = result.overlay()
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[-1] == 3
    decoded = np.asarray(Image.open(io.BytesIO(result._repr_png_())))
    np.testing.assert_array_equal(decoded, picture)
    ax = result.plot()
    assert ax.get_title() == f"ct_003.dcm | integrated_gradients | class {result.target}"
    import matplotlib.pyplot as plt

    plt.close("all")


def test_segmentation_model_gives_region_results():
    model = keras.saving.load_model(REPO / "data_samples" / "segmentation.keras", compile=False)
    results = medxai.explain(
        model,
        [PATHS[1]],
        methods=[IG],
        targets={"region": "predicted", "channels": [1]},
        preprocess=PREPROCESS,
    )
    assert len(results) == 1
    region = results[0].target
    assert isinstance(region, ResolvedRegion) and region.channel == 1 and region.name == "predicted"
    assert region.voxels > 0 and results[0].heatmap.shape == (64, 64)
    assert "channel 1" in results[0].title
    picture = results[0].overlay()
    assert picture.shape == (128, 128, 3)
    assert (picture == np.array([0, 191, 255], np.uint8)).all(axis=-1).any()  # the region's outline


def test_bad_settings_are_the_configs_errors(model, tensors):
    with pytest.raises(ConfigError, match=r"methods"):
        medxai.explain(model, tensors, methods=["no_such_method"])
    with pytest.raises(ConfigError, match=r"targets"):
        medxai.explain(model, tensors, targets={"top_k": 0})
    with pytest.raises(ConfigError, match=r"targets: 'label' needs data.label_column"):
        medxai.explain(model, tensors, targets="label")
    with pytest.raises(ConfigError, match=r"preprocess"):
        medxai.explain(model, tensors, preprocess={"scale": "nope"})
    with pytest.raises(StudyError, match=r"targets: top_k is 5 but the model has 2 classes"):
        medxai.explain(model, tensors, targets={"top_k": 5})
    with pytest.raises(StudyError, match=r"targets: \{region: \.\.\.\}"):
        medxai.explain(model, tensors, targets={"region": "predicted"})


def _config(manifest, **data):
    return {
        "model": {"path": str(REPO / "data_samples" / "model.keras")},
        "data": {"manifest": manifest, **data},
        "output": {"dir": "out"},
    }


def test_load_config_takes_a_mapping(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = medxai.load_config(_config(str(STUDY / "manifest.csv")), ["runtime.batch_size=3"])
    assert config.output.dir == tmp_path / "out" and config.runtime.batch_size == 3
    with pytest.raises(ConfigError, match=r"runtime.batch_size"):
        medxai.load_config(_config(str(STUDY / "manifest.csv"), id_column="image_id"), ["runtime.batch_size=-1"])


def test_a_dataframe_manifest_is_read_like_the_file():
    from medxai.io import read_manifest
    from medxai.pipeline.study_methods import study_rows

    table = pd.read_csv(STUDY / "manifest.csv")
    config = medxai.load_config(_config(table, id_column="image_id", label_column="label", root=str(STUDY)))
    assert study_rows(config) == read_manifest(STUDY / "manifest.csv", id_column="image_id", label_column="label")
    dumped = config.to_dict()["data"]["manifest"]
    assert dumped["dataframe"] == "a DataFrame of 36 rows x 4 columns ('image_id', 'path', 'label', 'mask')"
    assert len(dumped["sha256"]) == 64


def test_dataframe_errors_show_shape_and_columns_never_the_frame():
    table = pd.DataFrame({"path": ["a.png", "b.png", "SECRET_CELL.png"], "label": ["0", "x", "1"]})
    with pytest.raises(ManifestError) as err:
        from medxai.io import read_manifest

        read_manifest(table, label_column="label")
    message = str(err.value)
    assert "a DataFrame of 3 rows x 2 columns ('path', 'label')" in message and "line 3: label 'x'" in message
    assert "SECRET_CELL" not in message
    with pytest.raises(ManifestError, match=r"missing column\(s\) 'image_id'") as err:
        read_manifest(table, id_column="image_id")
    assert "SECRET_CELL" not in str(err.value)
    with pytest.raises(ConfigError) as err:  # a frame where it does not belong: shape and columns only
        medxai.load_config({**_config(table), "output": table})
    assert "a DataFrame of 3 rows x 2 columns ('path', 'label')" in str(err.value)
    assert "SECRET_CELL" not in str(err.value)
    with pytest.raises(StudyError, match=r"needs a 'path' column; got a DataFrame of 3 rows") as err:
        medxai.explain(None, table.rename(columns={"path": "file"}), methods=[IG])
    assert "SECRET_CELL" not in str(err.value)


def test_run_takes_a_dataframe_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = pd.read_csv(STUDY / "manifest.csv").iloc[[0, 3]]
    config = _config(table, id_column="image_id", root=str(STUDY))
    summary = medxai.run(
        {**config, "methods": [IG], "preprocess": PREPROCESS, "output": {"dir": "out", "formats": ["npy"]}},
        progress=False,
    )
    assert summary.exit_code == 0
    index = pd.read_csv(tmp_path / "out" / "index.csv")
    assert list(index["image_id"]) == ["ct_000", "ct_003"] and set(index["status"]) == {"ok"}


def test_a_preprocess_spec_and_an_array_of_source_images(model, predicted):
    image = medxai.read_image(PATHS[1])
    results = medxai.explain(model, image.array[None], methods=[IG], preprocess=PreprocessSpec(scale="minmax"))
    assert len(results) == 1 and results[0].heatmap.shape == (64, 64)
    assert results[0].overlay().shape == image.array.shape[:-1] + (3,)  # over the displayed source image


def _python_api_stderr(extra_env: dict[str, str]) -> str:
    """What a fresh Python using medxai's root API (``medxai.explain``, then a TensorFlow op) writes to stderr."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MEDXAI_TF_LOGS")}
    code = "import medxai; medxai.explain; import tensorflow as tf; tf.constant(1.0) + 1.0"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**env, **extra_env}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


@pytest.mark.slow
def test_the_python_api_keeps_tensorflows_start_up_messages_out():
    assert _python_api_stderr({}) == ""
    if not _python_api_stderr({"MEDXAI_TF_LOGS": "1"}):  # on this machine: oneDNN, CUDA drivers, CPU features
        pytest.skip("this TensorFlow prints nothing at start-up, so hiding it is not shown here")
