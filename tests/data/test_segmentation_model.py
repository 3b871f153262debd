"""The shipped demo segmentation model (data_samples/segmentation.keras) on the demo study."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

import medxai

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "data_samples" / "segmentation.keras"
MANIFEST = REPO / "data_samples" / "study" / "manifest.csv"
#: The shipped model's mean Dice on the study's lesion images is 0.91 (train_segmentation.py --evaluate).
MIN_DICE = 0.45


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_segmentation", REPO / "data_samples" / "train_segmentation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model():
    return keras.saving.load_model(MODEL, compile=False)


@pytest.fixture(scope="module")
def study(script):
    return script.study_data(MANIFEST)


def test_shipped_model_is_small_and_maps_64x64_to_one_sigmoid_channel(model):
    assert MODEL.stat().st_size < 300 * 1024
    assert model.input_shape == (None, 64, 64, 1)
    assert model.output_shape == (None, 64, 64, 1)
    assert model.layers[-1].get_config()["activation"] == "sigmoid"


@pytest.mark.slow
def test_predicted_masks_overlap_the_lesions_and_negatives_stay_empty(script, model, study):
    images, shares, labels = study
    assert images.shape == (36, 64, 64, 1) and int(labels.sum()) == 18
    predicted = model.predict(images, verbose=0) >= 0.5
    truth = shares >= 0.5
    lesion = labels == 1
    assert np.mean(script.dice(predicted[lesion], truth[lesion])) >= MIN_DICE
    assert np.all(predicted[lesion].reshape(18, -1).any(axis=1))  # every lesion is found
    assert predicted[~lesion].reshape(18, -1).sum(axis=1).max() <= 10  # (almost) nothing on the negatives


@pytest.mark.slow
def test_region_target_of_the_predicted_lesion_explains_the_lesion(model, study):
    images, shares, labels = study
    picked = images[labels == 1][:3]
    truth = shares[labels == 1][:3, ..., 0] >= 0.5
    explanation = medxai.Gradient(model).explain(picked, medxai.Region(1, mask="predicted"))
    maps = np.abs(np.asarray(explanation.attributions))[..., 0]
    near = np.stack([_dilate(t, 4) for t in truth])
    inside = (maps * near).sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    assert np.all(inside > 2 * near.mean(axis=(1, 2)))  # the map is concentrated around the lesion


def test_script_builds_the_shipped_architecture(script, model):
    rebuilt = script.build_model(0)
    assert json.loads(rebuilt.to_json())["config"]["layers"] == json.loads(model.to_json())["config"]["layers"]
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in model.get_weights()]
    assert rebuilt.count_params() == model.count_params()


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=pixels)
