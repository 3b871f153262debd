"""Shared test set-up: quiet TensorFlow, deterministic seeds, tiny analytic models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A small study of real files: PNG (other size), CT DICOM, NPY, a fake DICOM, a missing file and a NaN image."""
    import csv

    import numpy as np
    import skimage.io
    from analytic_models import tiny_model

    from medxai.data.study_files import write_ct_dicom

    root = tmp_path_factory.mktemp("study")
    tiny_model().save(root / "model.keras")
    rng = np.random.default_rng(0)
    skimage.io.imsave(root / "wide.png", (rng.random((20, 24)) * 255).astype(np.uint8), check_contrast=False)
    write_ct_dicom(root / "ct.dcm", rng.normal(40, 200, size=(16, 16)).round(), uid_seed="test")
    np.save(root / "same.npy", rng.random((16, 16)).astype(np.float32))
    (root / "fake.dcm").write_text("this is not a DICOM file")
    nan = rng.random((16, 16)).astype(np.float32)
    nan[3, 3] = np.nan
    np.save(root / "nan.npy", nan)
    rows = [
        ("wide", "wide.png", 0),
        ("ct", "ct.dcm", 1),
        ("same", "same.npy", 1),
        ("fake", "fake.dcm", 0),
        ("gone", "missing.png", 0),
        ("nan", "nan.npy", 1),
        ("../../escape", "same.npy", 0),
    ]
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "path", "label"])
        writer.writerows(rows)
    return root
