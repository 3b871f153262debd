"""``preprocess.preset``: keras.applications' preprocess_input, reproduced without TensorFlow."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from medxai.errors import ConfigError
from medxai.io import LoadedImage, read_image
from medxai.pipeline.config import Config
from medxai.preprocess import PRESETS, PreprocessError, Preprocessor, PreprocessSpec, apply_preset

REPO = Path(__file__).resolve().parents[1]
MODES = ("caffe", "tf", "torch")


def rgb_0_255(shape=(2, 6, 5, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def keras_preprocess(x: np.ndarray, preset: str) -> np.ndarray:
    """Keras's own answer (on a copy: its NumPy path works in place)."""
    if preset in MODES:
        from keras.applications import imagenet_utils

        return imagenet_utils.preprocess_input(x.copy(), data_format="channels_last", mode=preset)
    module = importlib.import_module(f"keras.applications.{preset}")
    return module.preprocess_input(x.copy(), data_format="channels_last")


def test_presets_are_exactly_the_keras_application_families():
    families = {
        name
        for name in dir(keras.applications)
        if name != "imagenet_utils" and hasattr(getattr(keras.applications, name), "preprocess_input")
    }
    assert families == set(PRESETS) - set(MODES)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_equals_keras_preprocess_input(preset):
    x = rgb_0_255()
    expected = np.asarray(keras_preprocess(x, preset), dtype=np.float32)
    got = apply_preset(x, preset)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(x, rgb_0_255())  # the input is left alone


def test_modes_by_hand():
    pixel = np.float32([[[255.0, 0.0, 127.5]]])
    np.testing.assert_allclose(apply_preset(pixel, "tf")[0, 0], [1, -1, 0])
    np.testing.assert_allclose(apply_preset(pixel, "caffe")[0, 0], [127.5 - 103.939, -116.779, 255 - 123.68], atol=1e-4)
    np.testing.assert_allclose(
        apply_preset(pixel, "torch")[0, 0], [(1 - 0.485) / 0.229, -0.456 / 0.224, (0.5 - 0.406) / 0.225], atol=1e-5
    )


def test_rgb_modes_need_three_channels_tf_does_not():
    grey = np.full((4, 4, 1), 127.5, np.float32)
    for preset in ("densenet", "torch", "resnet50", "caffe"):
        with pytest.raises(PreprocessError, match="3 channels"):
            apply_preset(grey, preset)
    np.testing.assert_array_equal(apply_preset(grey, "mobilenet"), np.zeros((4, 4, 1)))
    np.testing.assert_array_equal(apply_preset(grey, "efficientnet"), grey)
    with pytest.raises(ValueError, match="unknown preset 'imagenet'"):
        apply_preset(grey, "imagenet")


# ------------------------------------------------------------------ the spec


def test_spec_preset_names():
    assert PreprocessSpec().preset is None
    assert PreprocessSpec(preset=" DenseNet ").preset == "densenet"
    assert PreprocessSpec(preset="none").preset is None
    assert PreprocessSpec(preset="resnet50").spec_kwargs()["preset"] == "resnet50"
    assert PreprocessSpec(preset="vgg16", scale="bit_depth").model_dump()["scale"] == "stored_range"
    with pytest.raises(
        ValueError, match=r"^preset: expected one of convnext, .* got 'densnet' \(did you mean 'densenet'\?\)$"
    ):
        PreprocessSpec(preset="densnet")
    with pytest.raises(
        ValueError, match=r"^scale: with preset 'densenet' scale must be 'minmax' or 'stored_range' .*, got null$"
    ):
        PreprocessSpec(preset="densenet", scale=None)
    with pytest.raises(
        ValueError, match=r"^channels: preset 'vgg16' \(Keras mode 'caffe'\) takes 3 channels \(RGB\), got 1$"
    ):
        PreprocessSpec(preset="vgg16", channels=1)
    assert PreprocessSpec(preset="xception", channels=1).channels == 1  # tf mode works on any channel count


@pytest.fixture
def config_dict(tmp_path):
    (tmp_path / "clf.keras").write_bytes(b"")
    (tmp_path / "manifest.csv").write_text("path,label\na.png,0\n")

    def make(**preprocess):
        return {
            "model": {"path": "clf.keras"},
            "data": {"manifest": "manifest.csv"},
            "output": {"dir": "out"},
            "preprocess": preprocess,
        }

    return make


def problems(data, base) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, base_dir=base, method_registry=lambda: {"gradient": object})
    return info.value.problems


def test_config_preset_and_contradictions_name_the_keys(config_dict, tmp_path):
    config = Config.from_dict(
        config_dict(preset="ResNet50", scale="bit_depth"),
        base_dir=tmp_path,
        method_registry=lambda: {"gradient": object},
    )
    assert config.preprocess.preset == "resnet50" and config.preprocess.scale == "stored_range"
    assert problems(config_dict(preset="densnet"), tmp_path) == [
        f"preprocess.preset: expected one of {', '.join(PRESETS)} or none, got 'densnet' (did you mean 'densenet'?)"
    ]
    assert problems(config_dict(preset="densenet", scale=[0, 1], channels=1), tmp_path) == [
        "preprocess.scale: with preset 'densenet' scale must be 'minmax' or 'stored_range' "
        "(how the image reaches 0..255 for the preset), got [0.0, 1.0]",
        "preprocess.channels: preset 'densenet' (Keras mode 'torch') takes 3 channels (RGB), got 1",
    ]
    assert problems(config_dict(scale="stored range"), tmp_path) == [
        "preprocess.scale: expected 'minmax', 'stored_range', {mean: .., std: ..}, [low, high] or none, "
        "got 'stored range' (did you mean 'stored_range'?)"
    ]


# ------------------------------------------------------------- the pipeline


def test_8_bit_picture_with_stored_range_gets_exactly_keras_input(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    loaded = read_image(tmp_path / "rgb.png")
    for preset in ("resnet50", "densenet", "inception_v3", "efficientnet"):
        x, _ = Preprocessor(PreprocessSpec(preset=preset, scale="stored_range"), (9, 7, 3))(loaded)
        np.testing.assert_allclose(x, keras_preprocess(rgb.astype(np.float32), preset), atol=1e-4)


def test_16_bit_file_gives_the_8_bit_file_input_under_a_preset(tmp_path):
    grey = np.random.default_rng(2).integers(0, 256, (12, 10), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    pre = Preprocessor(PreprocessSpec(preset="vgg16", scale="stored_range"), (8, 8, 3))
    x8, _ = pre(read_image(tmp_path / "g8.png"))
    x16, _ = pre(read_image(tmp_path / "g16.png"))
    assert x8.shape == (8, 8, 3)
    np.testing.assert_allclose(x16, x8, atol=1e-3)


def test_minmax_with_a_preset_stretches_to_0_255_and_a_window_goes_through_it():
    values = np.asarray([[10.0, 20.0], [30.0, 50.0]], np.float32)[..., None]
    x, _ = Preprocessor(PreprocessSpec(preset="tf"), (2, 2, 1))(
        LoadedImage(array=values, source_path="mem", kind="npy")
    )
    np.testing.assert_allclose(x[..., 0], [[-1, -0.5], [0, 1]], atol=1e-6)
    hu = np.asarray([[-1000.0, -160.0], [40.0, 240.0]], np.float32)[..., None]
    ct = LoadedImage(
        array=hu, source_path="mem", kind="dicom", window=(40.0, 400.0), meta={"stored_range": (-1024, 3071)}
    )
    x, _ = Preprocessor(PreprocessSpec(preset="xception", scale="stored_range"), (2, 2, 3))(ct)
    np.testing.assert_allclose(x[..., 1], [[-1, -1], [0, 1]], atol=1e-6)  # window [0, 1] -> [0, 255] -> tf mode


def test_preprocessor_refuses_an_rgb_preset_for_a_grey_model_and_checks_unknown_channels():
    with pytest.raises(ValueError, match="preset 'densenet' .* takes 3 channels .* the model takes 1"):
        Preprocessor(PreprocessSpec(preset="densenet"), (8, 8, 1))
    Preprocessor(PreprocessSpec(preset="tf"), (8, 8, 1))
    pre = Preprocessor(PreprocessSpec(preset="caffe"), (None, None, None))
    with pytest.raises(PreprocessError, match="3 channels"):
        pre(LoadedImage(array=np.ones((4, 4, 1), np.float32), source_path="mem", kind="npy"))


def test_display_is_unaffected_by_the_preset():
    values = np.asarray([[0.0, 100.0], [200.0, 400.0]], np.float32)[..., None]
    image = LoadedImage(array=values, source_path="mem", kind="npy", window=(200.0, 400.0), invert=True)
    shown = Preprocessor(PreprocessSpec(preset="resnet50"), (8, 8, 3)).display(image)
    np.testing.assert_array_equal(shown, Preprocessor(PreprocessSpec(), (8, 8, 3)).display(image))
    np.testing.assert_allclose(shown[..., 0], [[1.0, 0.75], [0.5, 0.0]])


def test_presets_need_no_tensorflow():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from medxai.preprocess import PreprocessSpec, Preprocessor, apply_preset\n"
        "spec = PreprocessSpec(preset='densenet', scale='stored_range')\n"
        "apply_preset(np.zeros((2, 2, 3), np.float32), 'caffe')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
