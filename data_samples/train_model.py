"""Train the demo classifier shipped as ``data_samples/model.keras``.

The training images are drawn from :mod:`medxai.data.synthetic` with seeds the demo
study never uses, written as real DICOM and PNG files exactly like the study,
and read back through medxai's own readers and preprocessing
(:func:`medxai.io.read_image`, :class:`medxai.preprocess.Preprocessor`): the
model is trained on exactly the tensors ``medxai run`` feeds it.

    python data_samples/train_model.py            # about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from medxai.data.study_files import write_ct_dicom, write_xray_dicom  # noqa: E402
from medxai.data.synthetic import make_dataset  # noqa: E402
from medxai.io import read_image, read_manifest, write_png  # noqa: E402
from medxai.preprocess import Preprocessor, PreprocessSpec  # noqa: E402

INPUT_SHAPE = (64, 64, 1)
#: The demo config's preprocessing (configs/demo.yaml): VOI window from the file, per-image min-max.
SPEC = PreprocessSpec(window="auto", scale="minmax")
HERE = Path(__file__).resolve().parent


def build_model(seed: int = 0) -> keras.Model:
    """A small CNN (about 10k weights): three conv blocks, global max pooling, softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(INPUT_SHAPE, name="image")
    x = inputs
    for filters in (8, 16, 32):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="lesion")(x)
    return keras.Model(inputs, outputs, name="demo_lesion_classifier")


def write_files(folder: Path, *, n_ct: int, n_xray: int, seed: int) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Write a synthetic set as DICOM/PNG files like the study: the paths, the lesion masks and the labels."""
    ct, ct_masks, ct_labels = make_dataset(n_ct, seed=seed, kind="ct")
    xray, xray_masks, xray_labels = make_dataset(n_xray, seed=seed, kind="xray")
    paths = []
    for i, hu in enumerate(ct):
        paths.append(write_ct_dicom(folder / f"ct_{i}.dcm", hu, uid_seed=("train", seed, i)))
    for i, image in enumerate(xray):
        if i % 4 == 0:  # a quarter as MONOCHROME1 DICOM, like the study
            paths.append(write_xray_dicom(folder / f"xr_{i}.dcm", image, uid_seed=("train", seed, i)))
        else:
            path = folder / f"xr_{i}.png"
            write_png(path, image)
            paths.append(path)
    return paths, np.concatenate([ct_masks, xray_masks]), np.concatenate([ct_labels, xray_labels])


def read_tensors(paths: list[Path] | list[str]) -> np.ndarray:
    """The model inputs of image files, read and preprocessed as ``medxai run`` does."""
    preprocessor = Preprocessor(SPEC, INPUT_SHAPE)
    return np.stack([preprocessor(read_image(p))[0] for p in paths])


def files_to_tensors(folder: Path, *, n_ct: int, n_xray: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write a synthetic set as DICOM/PNG files, then read it back as the pipeline does."""
    paths, _, labels = write_files(folder, n_ct=n_ct, n_xray=n_xray, seed=seed)
    return read_tensors(paths), labels


def study_tensors(manifest: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = read_manifest(manifest, id_column="image_id", label_column="label", mask_column="mask")
    return read_tensors([r.path for r in rows]), np.array([r.label for r in rows])


def training_parser(description: str, out: Path, *, train: int, epochs: int) -> argparse.ArgumentParser:
    """The options of the demo models' training scripts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--train", type=int, default=train, help="training images (2/3 CT, 1/3 radiographs)")
    parser.add_argument("--test", type=int, default=300, help="held-out images")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    """The demo models' training loop: batches of 32, 10% validation, the rate halved on plateaus."""
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        validation_split=0.1,
        shuffle=True,
        verbose=2,
        callbacks=[keras.callbacks.ReduceLROnPlateau(patience=3, factor=0.5)],
    )


def main(argv: list[str] | None = None) -> int:
    parser = training_parser(__doc__.splitlines()[0], HERE / "model.keras", train=1600, epochs=25)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "train").mkdir()
        (tmp / "test").mkdir()
        x_train, y_train = files_to_tensors(
            tmp / "train", n_ct=2 * args.train // 3, n_xray=args.train // 3, seed=1000 + args.seed
        )
        x_test, y_test = files_to_tensors(
            tmp / "test", n_ct=2 * args.test // 3, n_xray=args.test // 3, seed=2000 + args.seed
        )

    model = build_model(args.seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit(model, x_train, y_train, args.epochs)
    _, held_out = model.evaluate(x_test, y_test, verbose=0)
    x_study, y_study = study_tensors(HERE / "study" / "manifest.csv")
    study = float(np.mean(model.predict(x_study, verbose=0).argmax(1) == y_study))
    model.save(args.out)
    print(
        f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {model.count_params()} weights): "
        f"held-out accuracy {held_out:.3f} on {len(y_test)} images, demo study accuracy {study:.3f} "
        f"on {len(y_study)} images"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
