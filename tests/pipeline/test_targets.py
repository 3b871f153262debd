"""Which classes are explained: multi-label and binary models, top-k, thresholds, multi-hot labels, class names."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
from study_helpers import read_index

import medxai
from medxai.errors import StudyError
from medxai.methods import Gradient
from medxai.pipeline.targets import TargetRule, predicted_classes

MULTI_LABEL_BIAS = np.array([3.0, -3.0, 0.5, -0.5, -2.0], np.float32)  # p ~ .95 .05 .62 .38 .12
NAMES = ["Effusion", "Mass", "Nodule", "Atelectasis", "Edema"]


def multi_label_model() -> keras.Model:
    """Five independent sigmoid outputs whose probabilities hardly depend on the (8, 8, 1) input."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(5, activation="sigmoid")
    outputs = dense(keras.layers.Flatten()(inputs))
    weights = np.random.default_rng(0).normal(0.0, 1e-3, (64, 5)).astype(np.float32)
    dense.set_weights([weights, MULTI_LABEL_BIAS])
    return keras.Model(inputs, outputs)


def binary_model() -> keras.Model:
    """One sigmoid unit: logit 0.1 * sum(x) - 3.2, i.e. positive when the mean intensity is over 0.5."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(1, activation="sigmoid")
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([np.full((64, 1), 0.1, np.float32), np.array([-3.2], np.float32)])
    return keras.Model(inputs, outputs)


def _settings(tmp_path, model, images, labels=None, **config):
    """Writes the images, manifest and model; returns the run's settings (``section__key`` sets a key)."""
    for name, image in images.items():
        np.save(tmp_path / f"{name}.npy", image.astype(np.float32))
    with open(tmp_path / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "path", "label"])
        for name in images:
            writer.writerow([name, f"{name}.npy", (labels or {}).get(name, "")])
    model.save(tmp_path / "model.keras")
    data = {"manifest": str(tmp_path / "manifest.csv"), "id_column": "image_id"}
    if labels is not None:
        data["label_column"] = "label"
    settings = {
        "model": {"path": str(tmp_path / "model.keras")},
        "data": data,
        "preprocess": {"scale": None, "window": None},
        "methods": ["gradient", {"name": "integrated_gradients", "steps": 4}],
        "output": {"dir": str(tmp_path / "run"), "formats": ["npy"]},
        "runtime": {"batch_size": 4, "progress": False},
    }
    for key, value in config.items():
        section, _, name = key.partition("__")
        if name:
            settings[section] = {**settings[section], name: value}
        else:
            settings[section] = value
    return settings


def _study(tmp_path, model, images, labels=None, **config):
    summary = medxai.run(_settings(tmp_path, model, images, labels, **config), model=model)
    return summary, read_index(tmp_path / "run" / "index.csv")


def _explained(rows):
    return [(r["image_id"], r["method"], r["class_index"]) for r in rows if r["status"] == "ok"]


IMAGES = {"a": np.full((8, 8), 0.2), "b": np.full((8, 8), 0.7)}


@pytest.mark.parametrize(
    ("targets", "classes"),
    [
        ("predicted", ["0", "2"]),  # every class at or over 0.5
        ({"top_k": 3}, ["0", "2", "3"]),  # highest first
        ({"threshold": 0.3}, ["0", "2", "3"]),
        (["Nodule", 4], ["2", "4"]),
        ("all", ["0", "1", "2", "3", "4"]),
    ],
)
def test_multi_label_targets_give_exactly_the_expected_rows_in_order(tmp_path, targets, classes):
    summary, rows = _study(tmp_path, multi_label_model(), IMAGES, targets=targets, model__class_names=NAMES)
    assert summary.exit_code == 0
    expected = [(i, m, c) for i in IMAGES for m in ("gradient", "integrated_gradients") for c in classes]
    assert _explained(rows) == expected
    assert {r["predicted"] for r in rows} == {"0;2"}
    assert [r["class_name"] for r in rows[: len(classes)]] == [NAMES[int(c)] for c in classes]


def test_multi_hot_labels_by_number_and_by_name(tmp_path):
    labels = {"a": "1;3", "b": "Edema;Effusion"}
    summary, rows = _study(tmp_path, multi_label_model(), IMAGES, labels, targets="label", model__class_names=NAMES)
    assert summary.exit_code == 0
    assert _explained(rows) == [
        (i, m, c)
        for i, cs in (("a", ["1", "3"]), ("b", ["4", "0"]))
        for m in ("gradient", "integrated_gradients")
        for c in cs
    ]
    assert {r["label"] for r in rows if r["image_id"] == "b"} == {"4;0"}


def test_an_image_with_no_class_over_the_threshold_is_skipped_not_failed(tmp_path):
    settings = _settings(tmp_path, multi_label_model(), IMAGES, targets={"threshold": 0.99})
    summary = medxai.run(settings)
    rows = read_index(tmp_path / "run" / "index.csv")
    assert summary.exit_code == 0 and summary.maps == 0
    assert [(r["image_id"], r["status"]) for r in rows] == [
        ("a", "skipped"),
        ("a", "skipped"),
        ("b", "skipped"),
        ("b", "skipped"),
    ]
    assert "none scored at or over 0.99" in rows[0]["warning"]
    again = medxai.run(settings)
    assert again.resumed == 2  # a skipped image is finished


def test_a_binary_sigmoid_model_has_two_classes_and_0_1_labels_just_work(tmp_path):
    summary, rows = _study(tmp_path, binary_model(), IMAGES, {"a": "0", "b": "1"}, targets="label")
    assert summary.exit_code == 0
    assert _explained(rows) == [
        ("a", "gradient", "0"),
        ("a", "integrated_gradients", "0"),
        ("b", "gradient", "1"),
        ("b", "integrated_gradients", "1"),
    ]
    by_image = {r["image_id"]: r for r in rows}
    assert by_image["a"]["predicted"] == "0" and by_image["b"]["predicted"] == "1"
    p_a = 1 / (1 + np.exp(-(0.1 * 64 * 0.2 - 3.2)))
    assert float(by_image["a"]["score"]) == pytest.approx(1 - p_a, rel=1e-4)  # class 0 scores 1 - p
    assert "one output unit read as two classes" in by_image["a"]["explained"]


def test_class_0_of_a_binary_model_is_the_negative_logit():
    model = binary_model()
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
    method = Gradient(model, absolute=False)
    np.testing.assert_allclose(method.attribute(x, [0, 0, 0]), -method.attribute(x, [1, 1, 1]), rtol=1e-6)
    np.testing.assert_allclose(method.attribute(x, [1, 1, 1])[..., 0], np.full((3, 8, 8), 0.1), rtol=1e-5)
    probabilities = Gradient(model, output="probabilities", absolute=False)
    p = np.asarray(model(x))[:, 0]
    expected = (p * (1 - p))[:, None, None] * 0.1  # d(1 - p)/dx = -p(1 - p) w
    np.testing.assert_allclose(
        probabilities.attribute(x, [0, 0, 0])[..., 0], -np.broadcast_to(expected, (3, 8, 8)), rtol=1e-4
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"targets": [7]}, r"targets: class 7 is out of range: the model has 5 classes \(0\.\.4\)"),
        (
            {"targets": ["Cardiomegaly"], "model__class_names": NAMES},
            r"targets: unknown class name 'Cardiomegaly' \(known: Effusion, Mass",
        ),
        ({"targets": ["Mass"]}, r"targets: 'Mass' is a class name, but model.class_names is not set"),
        ({"targets": {"top_k": 6}}, r"targets: top_k is 6 but the model has 5 classes"),
        ({"model__class_names": ["x", "y"]}, r"model.class_names has 2 names but the model has 5 classes"),
    ],
)
def test_targets_and_class_names_are_checked_against_the_model_before_any_image(tmp_path, settings, message):
    with pytest.raises(StudyError, match=message):
        _study(tmp_path, multi_label_model(), IMAGES, **settings)
    assert not (tmp_path / "run" / "index.csv").exists()


def test_predicted_and_rule_selection_on_plain_scores():
    scores = np.array([0.1, 0.6, 0.3])
    assert predicted_classes(scores, multi_label=False) == [1]
    assert predicted_classes(np.array([0.7, 0.2, 0.5]), multi_label=True) == [0, 2]
    assert TargetRule("top_k", top_k=2).select(scores, ()) == [1, 2]
    with pytest.raises(ValueError, match="has no label"):
        TargetRule("label").select(scores, ())
    with pytest.raises(ValueError, match="label 3 is out of range"):
        TargetRule("label").select(scores, (3,))


def test_images_of_different_bit_depth_fed_raw_are_a_study_warning(tmp_path, capsys):
    import json

    from PIL import Image

    picture = np.random.default_rng(0).integers(0, 256, (8, 8)).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "eight.png")
    Image.fromarray(picture.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    with open(tmp_path / "manifest.csv", "w") as handle:
        handle.write("image_id,path\neight,eight.png\nsixteen,sixteen.png\n")
    model = binary_model()
    model.save(tmp_path / "model.keras")
    settings = {
        "model": {"path": str(tmp_path / "model.keras")},
        "data": {"manifest": str(tmp_path / "manifest.csv"), "id_column": "image_id"},
        "preprocess": {"scale": None},
        "methods": ["gradient"],
        "output": {"dir": str(tmp_path / "raw"), "formats": ["npy"]},
        "runtime": {"progress": False},
    }
    summary = medxai.run(settings, model=model)
    assert len(summary.warnings) == 1 and "0..255 in 1 image(s), 0..65535 in 1 image(s)" in summary.warnings[0]
    assert "preprocess.scale: stored_range" in capsys.readouterr().err
    assert json.loads((tmp_path / "raw" / "run.json").read_text())["warnings"] == summary.warnings
    settings["preprocess"] = {"scale": "stored_range"}
    settings["output"] = {"dir": str(tmp_path / "scaled"), "formats": ["npy"]}
    scaled = medxai.run(settings, model=model)
    assert scaled.warnings == []
    rows = {r["image_id"]: r for r in read_index(tmp_path / "scaled" / "index.csv")}
    assert rows["eight"]["score"] == rows["sixteen"]["score"]  # the same picture, the same input


# ---- models trained with from_logits=True: scores, thresholds and `predicted` are probabilities (issue 18, item 4)
LOGITS = np.array([1.72, 1.68, -4.0], np.float32)  # softmax ~ .506 .486 .008


def logits_model(logits=LOGITS) -> keras.Model:
    """Logits that hardly depend on the (8, 8, 1) input, and no softmax: a model trained from_logits."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(len(logits))
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([np.random.default_rng(0).normal(0.0, 1e-4, (64, len(logits))).astype(np.float32), logits])
    return keras.Model(inputs, outputs)


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_a_logits_model_is_thresholded_and_scored_by_its_softmax_probabilities(tmp_path):
    summary, rows = _study(tmp_path, logits_model(), IMAGES, targets={"threshold": 0.5})
    assert summary.exit_code == 0
    assert _explained(rows) == [(i, m, "0") for i in IMAGES for m in ("gradient", "integrated_gradients")]
    assert float(rows[0]["score"]) == pytest.approx(_softmax(LOGITS.astype(np.float64))[0], abs=2e-3)
    assert {(r["output_kind"], r["activation"]) for r in rows} == {("logits", "softmax")}
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["model"]["output_kind"] == "logits" and record["model"]["scores"].startswith("probabilities: softmax")


def test_model_activation_sigmoid_makes_a_logits_model_multi_label(tmp_path):
    summary, rows = _study(tmp_path, logits_model(), IMAGES, targets="predicted", model__activation="sigmoid")
    assert summary.exit_code == 0 and {r["predicted"] for r in rows} == {"0;1"}  # sigmoid(1.72), sigmoid(1.68) > .5
    assert _explained(rows) == [(i, m, c) for i in IMAGES for m in ("gradient", "integrated_gradients") for c in "01"]


def one_unit_logits_model() -> keras.Model:
    """binary_model without its sigmoid: one logit 0.1 * sum(x) - 3.2."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(1)
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([np.full((64, 1), 0.1, np.float32), np.array([-3.2], np.float32)])
    return keras.Model(inputs, outputs)


def test_a_one_unit_logits_model_keeps_the_sigmoid_convention(tmp_path):
    """Class 1 is the unit, class 0 its negative; `predicted` follows sigmoid(z), as with a sigmoid head."""
    summary, rows = _study(tmp_path, one_unit_logits_model(), IMAGES, {"a": "0", "b": "1"}, targets="label")
    _, with_head = (
        _study(tmp_path / "head", binary_model(), IMAGES, {"a": "0", "b": "1"}, targets="label")
        if (tmp_path / "head").mkdir() is None
        else (None, None)
    )
    assert summary.exit_code == 0
    keep = ("image_id", "method", "class_index", "predicted", "score")
    assert [{k: r[k] for k in keep} for r in rows] == [{k: r[k] for k in keep} for r in with_head]
    by_image = {r["image_id"]: r for r in rows}
    assert by_image["a"]["predicted"] == "0" and by_image["b"]["predicted"] == "1"
    ours = {r["image_id"]: np.load(tmp_path / "run" / r["npy_path"]) for r in rows if r["method"] == "gradient"}
    theirs = {
        r["image_id"]: np.load(tmp_path / "head" / "run" / r["npy_path"])
        for r in with_head
        if r["method"] == "gradient"
    }
    for image_id in IMAGES:
        np.testing.assert_array_equal(ours[image_id], theirs[image_id])


def hidden_multi_label_model() -> keras.Model:
    """Five sigmoid outputs computed inside a Lambda: only their values say they are multi-label."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(5)
    scores = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([np.random.default_rng(0).normal(0.0, 1e-3, (64, 5)).astype(np.float32), MULTI_LABEL_BIAS])
    return keras.Model(inputs, keras.layers.Lambda(lambda t: keras.ops.sigmoid(t))(scores))


def test_multi_label_inside_a_lambda_is_read_from_the_values(tmp_path):
    summary, rows = _study(
        tmp_path, hidden_multi_label_model(), IMAGES, targets="predicted", model__output="probabilities"
    )
    assert summary.exit_code == 0 and {r["predicted"] for r in rows} == {"0;2"}
    assert {r["class_index"] for r in rows} == {"0", "2"}
    with pytest.raises(StudyError, match="model.output: .*Lambda.*look like probabilities.*output_kind: logits"):
        _study(tmp_path, hidden_multi_label_model(), IMAGES, targets="predicted")


def squeezed_logits_model() -> keras.Model:
    """Logits that land in [0, 1] on the study's images (near 0.5) but not on random probes."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(2)
    scores = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([np.full((64, 2), [[0.5, -0.5]], np.float32), np.array([-12.5, 13.2], np.float32)])
    return keras.Model(inputs, keras.layers.Lambda(lambda t: t * 1.0)(scores))


def test_the_studys_first_batch_is_a_second_witness(tmp_path):
    """Probes saw logits; the study's images give values in [0, 1]: refuse, unless output_kind says logits."""
    study = {"a": np.full((8, 8), 0.40), "b": np.full((8, 8), 0.405)}  # z = (.3, .4) and (.46, .24)
    with pytest.raises(StudyError, match="model.output_kind: .*looked like logits.*probe.*study's first"):
        _study(tmp_path, squeezed_logits_model(), study)
    summary, rows = _study(tmp_path, squeezed_logits_model(), study, model__output_kind="logits", runtime__resume=False)
    assert summary.exit_code == 0 and summary.maps == 4
    assert {r["output_kind"] for r in rows} == {"logits"}
