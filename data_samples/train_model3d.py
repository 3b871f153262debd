"""Train the 3D demo classifier shipped as ``data_samples/model3d.keras``.

A small 3D CNN (Conv3D blocks, global max pooling, softmax over 2 classes) on
CT-like volumes from :func:`medxai.data.synthetic.make_volumes` (seeds the 3D demo
study never uses), written as NIfTI files like ``data_samples/study3d`` and read
back through :func:`medxai.read_image` and the :class:`medxai.preprocess.Preprocessor`
with ``configs/demo3d.yaml``'s preprocessing (NIfTI has no window tags: the
soft-tissue window 40/400 is given explicitly, then per-volume min-max). A quarter
of the positives carry a lesion on one slice only, as the study's first two positives.

    python data_samples/train_model3d.py               # a few minutes on 2 CPU cores
    python data_samples/train_model3d.py --evaluate    # the shipped model's accuracy on data_samples/study3d
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the 2D classifier's script beside this one: the shared options and training loop

from train_model import fit, training_parser  # noqa: E402

from medxai.data.study_files import write_ct_nifti  # noqa: E402
from medxai.data.synthetic import make_volumes  # noqa: E402
from medxai.io import read_image, read_manifest  # noqa: E402
from medxai.preprocess import Preprocessor, PreprocessSpec  # noqa: E402

INPUT_SHAPE = (32, 32, 32, 1)
#: configs/demo3d.yaml's preprocessing: the soft-tissue window (NIfTI has none), per-volume min-max.
SPEC = PreprocessSpec(window=(40, 400), scale="minmax")


def build_model(seed: int = 0) -> keras.Model:
    """A small 3D CNN (about 15k weights): three Conv3D blocks, global max pooling, softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(INPUT_SHAPE, name="volume")
    x = inputs
    for filters in (8, 16):
        x = keras.layers.Conv3D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling3D()(x)
    x = keras.layers.Conv3D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling3D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="lesion")(x)
    return keras.Model(inputs, outputs, name="demo3d_lesion_classifier")


def read_volumes(paths: list[Path] | list[str]) -> np.ndarray:
    """The model inputs of NIfTI volumes, read and preprocessed as ``medxai run configs/demo3d.yaml`` does."""
    preprocessor = Preprocessor(SPEC, INPUT_SHAPE)
    return np.stack([preprocessor(read_image(p))[0] for p in paths])


def files_to_tensors(folder: Path, *, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write synthetic volumes as NIfTI files, then read them back as the pipeline does."""
    volumes, _, labels = make_volumes(n, seed=seed)
    paths = [write_ct_nifti(folder / f"vol_{i}.nii.gz", hu) for i, hu in enumerate(volumes)]
    return read_volumes(paths), labels


def study_accuracy(model: keras.Model, manifest: Path) -> tuple[float, int]:
    """The model's accuracy on a 3D study's manifest, and the number of volumes."""
    rows = read_manifest(manifest, id_column="image_id", label_column="label", mask_column="mask")
    x, y = read_volumes([r.path for r in rows]), np.array([r.label for r in rows])
    return float(np.mean(model.predict(x, verbose=0).argmax(1) == y)), len(y)


def main(argv: list[str] | None = None) -> int:
    parser = training_parser(__doc__.splitlines()[0], HERE / "model3d.keras", train=800, epochs=20)
    parser.add_argument("--evaluate", action="store_true", help="only print the shipped model's study accuracy")
    args = parser.parse_args(argv)
    manifest = HERE / "study3d" / "manifest.csv"
    if args.evaluate:
        accuracy, n = study_accuracy(keras.models.load_model(args.out), manifest)
        print(f"{args.out}: 3D demo study accuracy {accuracy:.3f} on {n} volumes")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "train").mkdir()
        (tmp / "test").mkdir()
        x_train, y_train = files_to_tensors(tmp / "train", n=args.train, seed=3000 + args.seed)
        x_test, y_test = files_to_tensors(tmp / "test", n=args.test, seed=4000 + args.seed)

    model = build_model(args.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit(model, x_train, y_train, args.epochs)
    _, held_out = model.evaluate(x_test, y_test, verbose=0)
    study, n_study = study_accuracy(model, manifest)
    shipped = build_model(args.seed)  # uncompiled: no optimizer state in the file (about a third of the size)
    shipped.set_weights(model.get_weights())
    shipped.save(args.out)
    print(
        f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {model.count_params()} weights): "
        f"held-out accuracy {held_out:.3f} on {len(y_test)} volumes, 3D demo study accuracy {study:.3f} "
        f"on {n_study} volumes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
