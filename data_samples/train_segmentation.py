"""Train the demo segmentation model shipped as ``data_samples/segmentation.keras``.

A small 2D U-Net (:func:`medxai.data.unet.build_unet`, about 30k weights) with a per-pixel
sigmoid head (one unit: the lesion's probability) on the lesion masks of synthetic CT slices and
radiographs. As for the demo classifier (``train_model.py``), the training images are drawn from
:mod:`medxai.data.synthetic` with seeds the demo study never uses, written as real DICOM and PNG
files and read back through medxai's readers and the demo's preprocessing, so the model is
trained on exactly the tensors ``medxai run configs/segmentation.yaml`` feeds it; the targets are
the lesion masks resized to the 64x64 model grid (each target pixel the lesion's share of it).

    python data_samples/train_segmentation.py               # about two minutes on 2 CPU cores
    python data_samples/train_segmentation.py --evaluate    # the shipped model's Dice on the demo study

Prints the Dice of the predicted masks (probability >= 0.5) against the lesion masks on held-out
images and on the demo study (``data_samples/study``), and the predicted pixels on its negatives.
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
sys.path.insert(0, str(HERE))  # the classifier's script beside this one: the same files, readers, preprocessing

from train_model import INPUT_SHAPE, fit, read_tensors, training_parser, write_files  # noqa: E402

from medxai.data.unet import build_unet  # noqa: E402
from medxai.io import read_image, read_manifest  # noqa: E402
from medxai.preprocess.transforms import resize_spatial  # noqa: E402

#: Filters per level of the U-Net (64x64 -> 32x32 -> 16x16 at the bottleneck).
FILTERS = (8, 16, 32)


def build_model(seed: int = 0) -> keras.Model:
    """The demo U-Net: three levels of (8, 16, 32) filters, a one-unit sigmoid head."""
    return build_unet(INPUT_SHAPE, 1, head="sigmoid", filters=FILTERS, seed=seed, name="demo_lesion_segmenter")


def mask_targets(masks: np.ndarray) -> np.ndarray:
    """``(N, 64, 64, 1)`` float32: each model pixel's share of lesion (the masks resized linearly to the grid)."""
    return np.stack([resize_spatial(m[..., None].astype(np.float32), INPUT_SHAPE[:-1]) for m in masks])


def study_data(manifest: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The demo study's model inputs, lesion shares on the model grid (from the mask PNGs) and labels."""
    rows = read_manifest(manifest, id_column="image_id", label_column="label", mask_column="mask")
    masks = np.stack([read_image(r.mask_path).array[..., 0] > 0 for r in rows])
    return read_tensors([r.path for r in rows]), mask_targets(masks), np.array([r.label for r in rows])


def dice(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per image: ``2 |P & T| / (|P| + |T|)`` of bool masks ``(N, ...)`` (1 where both are empty)."""
    axes = tuple(range(1, predicted.ndim))
    overlap = np.sum(predicted & truth, axis=axes)
    total = np.sum(predicted, axis=axes) + np.sum(truth, axis=axes)
    return np.where(total > 0, 2.0 * overlap / np.maximum(total, 1), 1.0)


def segmentation_scores(model: keras.Model, images: np.ndarray, shares: np.ndarray, labels: np.ndarray) -> dict:
    """Mean Dice over the lesion images, pooled Dice, and predicted pixels per negative image."""
    predicted = model.predict(images, verbose=0) >= 0.5
    truth = shares >= 0.5
    positive = labels == 1
    pooled = dice(predicted[positive].reshape(1, -1), truth[positive].reshape(1, -1))[0]
    negatives = predicted[~positive].reshape(int(np.sum(~positive)), -1).sum(axis=1)
    return {
        "dice": float(np.mean(dice(predicted[positive], truth[positive]))),
        "pooled_dice": float(pooled),
        "negative_pixels": float(np.mean(negatives)) if len(negatives) else 0.0,
        "lesions": int(np.sum(positive)),
        "negatives": int(np.sum(~positive)),
    }


def dice_bce(y_true, y_pred):
    """Binary cross-entropy plus the soft Dice loss of the batch (lesions are a few % of the pixels)."""
    bce = keras.ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    overlap = keras.ops.sum(y_true * y_pred)
    soft_dice = (2.0 * overlap + 1.0) / (keras.ops.sum(y_true) + keras.ops.sum(y_pred) + 1.0)
    return bce + 1.0 - soft_dice


def describe(scores: dict) -> str:
    return (
        f"Dice {scores['dice']:.3f} (mean over {scores['lesions']} lesion images; pooled {scores['pooled_dice']:.3f}), "
        f"{scores['negative_pixels']:.1f} predicted pixels per negative image ({scores['negatives']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = training_parser(__doc__.splitlines()[0], HERE / "segmentation.keras", train=1200, epochs=20)
    parser.add_argument("--evaluate", action="store_true", help="score the model at --out on the demo study only")
    args = parser.parse_args(argv)
    if args.evaluate:
        model = keras.saving.load_model(args.out, compile=False)
        print(f"demo study: {describe(segmentation_scores(model, *study_data(HERE / 'study' / 'manifest.csv')))}")
        return 0

    data = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part, n, seed in (("train", args.train, 3000), ("test", args.test, 4000)):
            folder = Path(tmp) / part
            folder.mkdir()
            paths, masks, labels = write_files(folder, n_ct=2 * n // 3, n_xray=n // 3, seed=seed + args.seed)
            data[part] = read_tensors(paths), mask_targets(masks), labels

    keras.utils.set_random_seed(args.seed)
    model = build_model(args.seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=dice_bce)
    fit(model, *data["train"][:2], args.epochs)
    held_out = segmentation_scores(model, *data["test"])
    study = segmentation_scores(model, *study_data(HERE / "study" / "manifest.csv"))
    shipped = build_model(args.seed)  # uncompiled: no optimizer state or custom loss in the file
    shipped.set_weights(model.get_weights())
    shipped.save(args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {shipped.count_params()} weights)")
    print(f"held out: {describe(held_out)}")
    print(f"demo study: {describe(study)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
