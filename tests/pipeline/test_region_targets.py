"""Region targets through the pipeline: a segmentation model run from a config, 2D and 3D.

The models are analytic: the output logit at each pixel is ``10 * (x - 0.5)`` of the input
at that pixel (a 1x1 convolution under a per-pixel sigmoid, or a softmax over three
channels), so the predicted regions are exactly the bright pixels of the images, the
connected components are the drawn blobs and every region score has a closed form.
"""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage.io
from study_helpers import read_index, write_config

import medxai
from medxai.errors import StudyError
from medxai.pipeline.study import run as run_study

GAIN, LEVEL = 10.0, 0.5


def local_model(spatial: tuple[int, ...], head: str) -> keras.Model:
    """A per-pixel model: a spatial feature layer, then a 1x1 head (sigmoid: 1 unit; softmax: 3 channels)."""
    conv = keras.layers.Conv2D if len(spatial) == 2 else keras.layers.Conv3D
    inputs = keras.Input((*spatial, 1))
    feature = conv(1, 1, name="feature")(inputs)
    units = 1 if head == "sigmoid" else 3
    out = conv(units, 1, activation=head, name="head")(feature)
    model = keras.Model(inputs, out)
    model.get_layer("feature").set_weights([np.ones((1,) * len(spatial) + (1, 1), "f4"), np.full(1, -LEVEL, "f4")])
    if head == "sigmoid":
        kernel, bias = np.full((1,) * len(spatial) + (1, 1), GAIN, "f4"), np.zeros(1, "f4")
    else:  # channel 0: background (0), 1: bright (+z), 2: never (-2z - 10)
        kernel = np.array([0.0, GAIN, -2 * GAIN], "f4").reshape((1,) * len(spatial) + (1, 3))
        bias = np.array([0.0, 0.0, -10.0], "f4")
    model.get_layer("head").set_weights([kernel, bias])
    return model


def blobs_2d() -> dict[str, np.ndarray]:
    two = np.zeros((16, 16), np.float32)
    two[2:5, 2:5] = 1.0  # 9 pixels
    two[10:12, 10:12] = 0.9  # 4 pixels
    one = np.zeros((16, 16), np.float32)
    one[6:10, 6:8] = 0.8  # 8 pixels
    return {"two": two, "one": one, "none": np.zeros((16, 16), np.float32)}


@pytest.fixture(scope="module")
def seg_study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("segstudy")
    local_model((16, 16), "sigmoid").save(root / "model.keras")
    images = blobs_2d()
    for name, image in images.items():
        np.save(root / f"{name}.npy", image)
    # a ground-truth mask of another size (32x32) for "two": its 9-pixel blob only
    truth = np.zeros((32, 32), np.uint8)
    truth[4:10, 4:10] = 255
    skimage.io.imsave(root / "two_truth.png", truth, check_contrast=False)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "path", "label", "region"])
        writer.writerows(
            [("two", "two.npy", 1, "two_truth.png"), ("one", "one.npy", 1, ""), ("none", "none.npy", 0, "")]
        )
    return root


def config(root: Path, out: str, **changes) -> Path:
    base = {
        "model": {"path": "model.keras"},
        "data": {"manifest": "manifest.csv", "id_column": "image_id", "label_column": "label"},
        "preprocess": {"scale": None},
        "methods": [{"name": "ig", "steps": 8}, "gradient", "gradcam"],
        "targets": {"region": "connected", "channels": [1]},
        "output": {"dir": out, "formats": ["npy"]},
        "runtime": {"batch_size": 4, "progress": False},
    }
    return write_config(root, out, base=base, **changes)


def closed_form_score(image: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sum(GAIN * (image[mask] - LEVEL)))


def test_connected_components_are_rows_largest_first_with_their_closed_form_scores(seg_study):
    run_study(config(seg_study, "runs/connected"))
    rows = read_index(seg_study / "runs/connected/index.csv")
    images = blobs_2d()
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["method"] for r in ok} == {"integrated_gradients", "gradient", "gradcam"}
    ig = {(r["image_id"], r["component"]): r for r in ok if r["method"] == "integrated_gradients"}
    assert sorted(ig) == [("one", "1"), ("two", "1"), ("two", "2")]
    assert [ig["two", "1"]["region_voxels"], ig["two", "2"]["region_voxels"], ig["one", "1"]["region_voxels"]] == [
        "9",
        "4",
        "8",
    ]
    big = np.zeros((16, 16), bool)
    big[2:5, 2:5] = True
    assert float(ig["two", "1"]["region_score"]) == pytest.approx(closed_form_score(images["two"], big), rel=1e-5)
    for row in ok:
        assert (row["channel"], row["region"], row["class_index"]) == ("1", "connected", "1")
        assert row["npy_path"].endswith(f"_c1_connected{row['component']}.npy")
        assert (seg_study / "runs/connected" / row["npy_path"]).exists()
    # probabilities inside the 9-pixel blob: sigmoid(10 * 0.5)
    assert float(ig["two", "1"]["score"]) == pytest.approx(1 / (1 + np.exp(-5.0)), rel=1e-5)
    # completeness of IG against the region score (the linear logit: exact up to float32)
    assert float(ig["two", "1"]["relative_delta"]) < 1e-4


def test_an_empty_region_is_a_skipped_row_with_the_reason_never_an_error(seg_study):
    run_study(config(seg_study, "runs/empty"))
    rows = [r for r in read_index(seg_study / "runs/empty/index.csv") if r["image_id"] == "none"]
    assert len(rows) == 3 and {r["status"] for r in rows} == {"skipped"}
    assert all("empty" in r["warning"] and r["npy_path"] == "" for r in rows)


def test_components_keeps_the_largest(seg_study):
    run_study(config(seg_study, "runs/largest", targets={"region": "connected", "channels": [1], "components": 1}))
    rows = read_index(seg_study / "runs/largest/index.csv")
    two = [r for r in rows if r["image_id"] == "two" and r["method"] == "gradient"]
    assert [(r["component"], r["region_voxels"]) for r in two] == [("1", "9")]


def test_manifest_masks_are_resampled_to_the_output_grid_and_missing_ones_skipped(seg_study):
    path = config(
        seg_study,
        "runs/manifest",
        targets={"region": "manifest", "channels": [1], "reduce": "mean"},
        data={"manifest": "manifest.csv", "id_column": "image_id", "region_column": "region"},
    )
    run_study(path)
    rows = read_index(seg_study / "runs/manifest/index.csv")
    two = [r for r in rows if r["image_id"] == "two"]
    assert {r["status"] for r in two} == {"ok"}
    # the 32x32 mask's 6x6 square at [4:10] is the 3x3 square at [2:5] of the 16x16 output grid
    assert {r["region_voxels"] for r in two} == {"9"} and {r["region"] for r in two} == {"manifest"}
    mask = np.zeros((16, 16), bool)
    mask[2:5, 2:5] = True
    mean = closed_form_score(blobs_2d()["two"], mask) / 9
    assert float(two[0]["region_score"]) == pytest.approx(mean, rel=1e-5)
    others = [r for r in rows if r["image_id"] != "two"]
    assert {r["status"] for r in others} == {"skipped"}
    assert all("data.region_column" in r["warning"] for r in others)


def test_predicted_border_and_all_regions(seg_study):
    for region, voxels in (("predicted", "13"), ("border", "12"), ("all", "256")):
        out = f"runs/{region}"
        run_study(config(seg_study, out, targets={"region": region, "channels": [1]}, methods=["gradient"]))
        two = [r for r in read_index(seg_study / out / "index.csv") if r["image_id"] == "two"]
        assert [(r["region"], r["region_voxels"], r["component"]) for r in two] == [(region, voxels, "")]


def test_a_resumed_region_run_recomputes_nothing_and_keeps_every_row(seg_study, monkeypatch):
    from study_helpers import comparable, count_processed

    path = config(seg_study, "runs/resume")
    run_study(path)
    first = read_index(seg_study / "runs/resume/index.csv")
    processed = count_processed(monkeypatch)
    run_study(path)
    assert processed == []
    assert comparable(read_index(seg_study / "runs/resume/index.csv")) == comparable(first)


def test_targets_that_do_not_fit_the_model_are_refused_naming_the_setting(seg_study, study):
    with pytest.raises(StudyError, match=r"targets: the model's output is dense, .*region: predicted"):
        medxai.run(config(seg_study, "runs/classes", targets="predicted"))
    with pytest.raises(StudyError, match=r"targets.channels: class 5 is out of range"):
        medxai.run(config(seg_study, "runs/range", targets={"region": "predicted", "channels": [5]}))
    classifier = write_config(study, "runs/classifier_regions", targets={"region": "predicted"})
    with pytest.raises(StudyError, match=r"targets: \{region: \.\.\.\} explains a segmentation model's dense output"):
        medxai.run(classifier)


def test_a_3d_softmax_model_on_nifti_volumes(tmp_path):
    nib = pytest.importorskip("nibabel")
    local_model((8, 8, 8), "softmax").save(tmp_path / "model.keras")
    volume = np.zeros((8, 8, 8), np.float32)
    volume[1:3, 1:3, 1:3] = 1.0  # 8 voxels
    volume[5:8, 5:8, 6:8] = 0.9  # 18 voxels, touching the first? no: apart
    affine = np.diag([2.0, 1.5, 1.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "vol.nii.gz")
    with open(tmp_path / "manifest.csv", "w", newline="") as handle:
        handle.write("image_id,path\nvol,vol.nii.gz\n")
    path = config(
        tmp_path,
        "runs/3d",
        data={"manifest": "manifest.csv", "id_column": "image_id"},
        targets={"region": "connected", "channels": [1, 2]},
        methods=[{"name": "ig", "steps": 4}, "gradcam"],
        output={"dir": "runs/3d", "formats": ["npy", "nifti"]},
    )
    run_study(path)
    rows = read_index(tmp_path / "runs/3d/index.csv")
    ok = [r for r in rows if r["status"] == "ok" and r["method"] == "integrated_gradients"]
    assert [(r["channel"], r["component"], r["region_voxels"]) for r in ok] == [("1", "1", "18"), ("1", "2", "8")]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert {r["channel"] for r in skipped} == {"2"}  # channel 2 is never predicted
    written = nib.load(tmp_path / "runs/3d" / ok[0]["nifti_path"])
    assert written.shape[:3] == (8, 8, 8)
    np.testing.assert_allclose(written.affine, nib.load(tmp_path / "vol.nii.gz").affine, atol=1e-5)


def test_the_mask_format_writes_the_region_once_as_nifti_and_dicom_seg(tmp_path):
    hd = pytest.importorskip("highdicom")
    nib = pytest.importorskip("nibabel")
    from medxai.data.study_files import write_ct_dicom

    local_model((16, 16), "sigmoid").save(tmp_path / "model.keras")
    hu = np.full((16, 16), -100.0)
    hu[3:7, 4:9] = 300.0  # 20 pixels
    write_ct_dicom(tmp_path / "ct.dcm", hu, uid_seed="region")
    (tmp_path / "manifest.csv").write_text("image_id,path\nct,ct.dcm\n")
    path = config(
        tmp_path,
        "runs/mask",
        data={"manifest": "manifest.csv", "id_column": "image_id"},
        preprocess={"scale": "minmax"},
        targets={"region": "predicted", "channels": [1]},
        output={"dir": "runs/mask", "formats": ["npy", "overlay", "nifti", "mask"]},
    )
    run_study(path)
    rows = [r for r in read_index(tmp_path / "runs/mask/index.csv") if r["status"] == "ok"]
    assert len(rows) == 3 and len({r["mask_nifti_path"] for r in rows}) == 1  # one region file for every method
    out = tmp_path / "runs/mask"
    region = np.asarray(nib.load(out / rows[0]["mask_nifti_path"]).dataobj)
    expected = np.zeros((16, 16), bool)
    expected[3:7, 4:9] = True
    assert region.dtype == np.uint8 and int(region.sum()) == 20
    map_nifti = nib.load(out / rows[0]["nifti_path"])
    np.testing.assert_array_equal(nib.load(out / rows[0]["mask_nifti_path"]).affine, map_nifti.affine)
    seg = hd.seg.segread(out / rows[0]["mask_seg_path"])
    assert seg.number_of_segments == 1
    np.testing.assert_array_equal(np.squeeze(seg.pixel_array).astype(bool), expected)
    # the SEG written is a manifest region mask for a next run ("why did the model segment this?")
    (tmp_path / "again.csv").write_text(f"image_id,path,region\nct,ct.dcm,{out / rows[0]['mask_seg_path']}\n")
    again = config(
        tmp_path,
        "runs/again",
        data={"manifest": "again.csv", "id_column": "image_id", "region_column": "region"},
        preprocess={"scale": "minmax"},
        targets={"region": "manifest", "channels": [1]},
        methods=["gradient"],
    )
    run_study(again)
    (row,) = read_index(tmp_path / "runs/again/index.csv")
    assert (row["status"], row["region"], row["region_voxels"]) == ("ok", "manifest", "20")
    assert float(row["region_score"]) == pytest.approx(float(rows[0]["region_score"]), rel=1e-6)


def test_validate_says_what_a_segmentation_run_explains(seg_study, capsys):
    from medxai.cli import main

    path = config(seg_study, "runs/validate", targets={"region": "connected", "channels": [1], "components": 2})
    assert main(["validate", str(path)]) == 0
    said = capsys.readouterr().out
    assert "a segmentation output (16, 16, 2) (2 channels" in said
    assert "the connected region, the 2 largest of channel(s) 1 (sum)" in said
    assert "explains logits: the pre-activation of Conv2D 'head' (sigmoid removed)" in said


def test_a_resumed_run_computes_again_an_image_whose_region_file_is_gone(seg_study, monkeypatch):
    from study_helpers import count_processed

    path = config(seg_study, "runs/region_gone")
    run_study(path)
    rows = read_index(seg_study / "runs/region_gone/index.csv")
    gone = next(r for r in rows if r["image_id"] == "one" and r["region_path"])
    (seg_study / "runs/region_gone" / gone["region_path"]).unlink()
    processed = count_processed(monkeypatch)
    run_study(path)
    assert processed == ["one"]
    assert (seg_study / "runs/region_gone" / gone["region_path"]).exists()
