"""The report's interactive viewer: packing, geometry, windows, the page's data, its script in Node and Chromium.

The browser and Node tests are skipped where their program is not installed (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from test_report_browser import BROWSER, NODE, node_json
from test_report_scale import page_json

from medxai.io import read_image
from medxai.io.index import index_text
from medxai.viz.render import display_values, overlay
from medxai.viz.report import write_report
from medxai.viz.report.viewer import (
    CT_PRESETS,
    block_reduce,
    colour_table,
    factors_for,
    map_view,
    pack,
    source_view,
    unpack,
    windows_for,
)

DEPTH, SIDE, PEAK = 12, 20, (7, 5, 13)  # the volume's lesion voxel: slice 7


# ------------------------------------------------------------------ packing and geometry


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pack_round_trips_noise_and_smooth_arrays(dtype):
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    noise = rng.integers(0, top + 1, size=(3, 5, 17), dtype=dtype)
    smooth = np.broadcast_to(np.arange(17, dtype=dtype) * 3, (3, 5, 17)).copy()
    for array in (noise, smooth, np.zeros((1, 1, 1), dtype), np.full((2, 4), top, dtype)):
        text = pack(array)
        assert np.array_equal(unpack(text, dtype, array.shape), array)
    assert pack(smooth).startswith("d:")  # differences: runs of the same number
    assert pack(noise).startswith("r:")
    with pytest.raises(ValueError, match="unsigned"):
        pack(np.zeros(3, np.int16))


def test_block_reduce_keeps_a_one_voxel_peak_and_averages_the_source():
    volume = np.zeros((5, 9, 9), np.float32)
    volume[3, 4, 7] = 1.0
    peak = block_reduce(volume, (1, 2, 2), "max")
    assert peak.shape == (5, 5, 5) and peak[3, 2, 3] == 1.0 and peak.sum() == 1.0
    even = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(block_reduce(even, (2, 2), "mean"), even.reshape(2, 2, 2, 2).mean(axis=(1, 3)))
    assert block_reduce(even, (1, 1), "mean") is even


def test_the_viewer_downscales_only_what_is_large():
    assert factors_for((256, 256)) == (1, 1) and factors_for((300, 200)) == (2, 2)
    assert factors_for((64, 128, 128)) == (1, 1, 1) and factors_for((64, 512, 400)) == (1, 4, 4)
    assert factors_for((300, 128, 128)) == (2, 1, 1)


def test_windows_put_the_runs_own_first_and_offer_ct_presets():
    chosen = windows_for(-1024, 3000, (40, 400), {"center": -600, "width": 1500}, "CT")
    names = [name for name, _, _ in chosen]
    assert names[:3] == ["as the run (preprocess.window)", "from the file (DICOM window)", "full range"]
    assert chosen[0][1:] == (-600.0, 1500.0) and chosen[1][1:] == (40.0, 400.0) and chosen[2][1:] == (988.0, 4024.0)
    assert [c for c in chosen[3:]] == list(CT_PRESETS)
    plain = windows_for(0, 255, None, "auto", "OT")  # no window anywhere, not CT: the full range only
    assert plain == [("full range", 127.5, 255.0)]
    assert windows_for(-1000, 100, None, [10, 20], "")[0] == ("as the run (preprocess.window)", 10.0, 20.0)


def _loaded(array: np.ndarray, **extra) -> SimpleNamespace:
    facts = {"spacing": None, "window": None, "invert": False, "meta": {}}
    return SimpleNamespace(array=array, **{**facts, **extra})


def test_integer_hounsfield_units_are_kept_exactly_and_spacing_follows_the_factors():
    rng = np.random.default_rng(1)
    hu = rng.integers(-1024, 3000, size=(6, 300, 260, 1)).astype(np.float32)
    view = source_view(_loaded(hu[:, :128, :128], spacing=(2.5, 0.7, 0.7), meta={"modality": "CT"}))
    assert view.scale == 1.0 and view.factors == (1, 1, 1) and view.dims == (6, 128, 128)
    stored = unpack(view.payload, np.uint16, (1, *view.dims))[0]
    assert np.array_equal(stored + view.offset, hu[:, :128, :128, 0])
    assert view.spacing == (2.5, 0.7, 0.7) and any(name == "lung" for name, _, _ in view.windows)
    big = source_view(_loaded(hu, spacing=(2.5, 0.7, 0.7)))
    assert big.factors == (1, 3, 3) and big.dims == (6, 100, 87) and big.spacing == pytest.approx((2.5, 2.1, 2.1))
    assert big.slice_index == list(range(6))
    far = source_view(_loaded(hu[:, :8, :8] + 100_000))  # integers far from 0: the offset keeps them exact
    assert far.scale == 1.0 and far.offset == float(hu[:, :8, :8].min()) + 100_000


def test_float_sources_are_quantised_within_half_a_step_and_rgb_is_kept():
    rgb = np.random.default_rng(2).random((40, 30, 3)).astype(np.float32)
    view = source_view(_loaded(rgb))
    assert view.channels == 3 and view.dims == (1, 40, 30)
    planes = unpack(view.payload, np.uint16, (3, 1, 40, 30))
    restored = view.offset + view.scale * planes.astype(np.float64)
    assert np.abs(np.moveaxis(restored[:, 0], 0, -1) - rgb).max() <= view.scale / 2 + 1e-9
    with pytest.raises(ValueError, match="1 or 3 channels"):
        source_view(_loaded(np.zeros((4, 4, 2), np.float32)))


def test_a_maps_view_holds_its_shown_values_and_its_peak_voxel():
    heat = np.random.default_rng(3).random((DEPTH, SIDE, SIDE)).astype(np.float32) * 0.1
    heat[PEAK] = 1.0
    view = source_view(_loaded(np.zeros((DEPTH, SIDE, SIDE, 1), np.float32)))
    shown = display_values(heat)
    packed = map_view(heat, view, shown)
    assert packed["peak"] == list(PEAK)
    stored = unpack(packed["map"], np.uint8, (DEPTH, SIDE, SIDE))
    assert np.array_equal(stored, np.round(shown * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="source's geometry"):
        map_view(heat[:, :10], view, shown[:, :10])


# ------------------------------------------------------------------ a run with a volume and a 2D image


def _write_nifti(path: Path, volume: np.ndarray) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.5, 1.0])), str(path))


def viewer_run(root: Path) -> Path:
    """A run folder of a CT volume (integer HU, NIfTI) with two methods' maps, and a 2D PNG image with one."""
    from PIL import Image

    (root / "maps").mkdir(parents=True)
    (root / "src").mkdir()
    rng = np.random.default_rng(4)
    _write_nifti(root / "src" / "vol.nii.gz", rng.integers(-1000, 400, size=(SIDE, SIDE, DEPTH)).astype(np.int16))
    spatial = read_image(root / "src" / "vol.nii.gz").array.shape[:-1]
    lesion = np.zeros((SIDE, SIDE, DEPTH), np.uint8)
    lesion[3:9, 10:16, 5:9] = 1  # a box in the file's axes; the page gets it in the reader's
    _write_nifti(root / "src" / "vol_mask.nii.gz", lesion)
    Image.fromarray(rng.integers(0, 255, size=(24, 32), dtype=np.uint8)).save(root / "src" / "flat.png")
    rows = []
    for method, scale in (("integrated_gradients", 0.1), ("gradient", 0.3)):
        heat = rng.random(spatial).astype(np.float32) * scale
        heat[PEAK] = 1.0
        np.save(root / "maps" / f"vol_{method}.npy", heat)
        rows.append({"image_id": "vol", "source_path": str(root / "src" / "vol.nii.gz"), "method": method,
                     "class_index": 1, "score": 0.9, "label": 1, "predicted": 1, "status": "ok",
                     "npy_path": f"maps/vol_{method}.npy",
                     "mask_path": str(root / "src" / "vol_mask.nii.gz")})  # fmt: skip
    flat = rng.random((24, 32)).astype(np.float32) * 0.2
    flat[3, 30] = 1.0
    np.save(root / "maps" / "flat.npy", flat)
    rows.append({"image_id": "flat", "source_path": str(root / "src" / "flat.png"), "method": "gradient",
                 "class_index": 0, "score": 0.8, "label": 0, "predicted": 0, "status": "ok",
                 "npy_path": "maps/flat.npy"})  # fmt: skip
    (root / "index.csv").write_text(index_text(rows, header=True), encoding="utf-8")
    info = {
        "status": "finished",
        "config": {"targets": "predicted", "preprocess": {"window": {"center": 40, "width": 400}},
                   "output": {"colormap": "inferno", "alpha": 0.6}},
        "methods": [{"name": m, "params": {}} for m in ("integrated_gradients", "gradient")],
        "model": {"path": "model.keras", "classes": 2, "class_names": ["normal", "lesion"]},
    }  # fmt: skip
    (root / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return root


def root_of(report: Path) -> Path:
    return report.parent


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return write_report(viewer_run(tmp_path_factory.mktemp("viewer") / "run"), progress=False)[0]


def test_the_page_carries_each_image_and_map_for_the_viewer(report):
    data = page_json(report.read_text(encoding="utf-8"))
    volume, flat = data["images"]
    spatial = read_image(volume["source"]).array.shape[:-1]
    assert volume["view"]["dims"] == list(spatial) and flat["view"]["dims"] == [1, 24, 32]
    assert volume["view"]["windows"][0] == {"name": "as the run (preprocess.window)", "c": 40.0, "w": 400.0}
    assert volume["view"]["alpha"] == 0.6 and volume["view"]["spacing"] == [2.5, 1.0, 1.0]
    assert [m["view"]["peak"] for m in volume["maps"]] == [list(PEAK), list(PEAK)]  # opens on the lesion slice
    assert flat["maps"][0]["view"]["peak"] == [0, 3, 30]
    source = read_image(volume["source"]).array[..., 0]
    stored = unpack(volume["view"]["src"], np.uint16, (1, *spatial))[0]
    assert np.array_equal(stored + volume["view"]["offset"], source)  # lossless Hounsfield units
    assert len(data["lut"]) == 1536 and data["lut"] == colour_table("inferno")
    mask = read_image(root_of(report) / "src" / "vol_mask.nii.gz").array[..., 0] > 0
    assert np.array_equal(unpack(volume["view"]["mask"], np.uint8, spatial), mask.astype(np.uint8))
    assert "mask" not in flat["view"]  # no mask in the manifest


def test_viewer_mb_bounds_the_viewers_and_says_so(tmp_path):
    run = viewer_run(tmp_path / "run")
    data = page_json(write_report(run, progress=False, viewer_mb=0.001)[0].read_text(encoding="utf-8"))
    assert "view" in data["images"][0] and "view" not in data["images"][1]  # the budget is spent by the first
    assert all("view" not in m for m in data["images"][1]["maps"])
    first = data["images"][0]
    spent = len(first["view"]["src"]) + sum(len(m["view"]["map"]) for m in first["maps"])
    page = (run / "report.html").read_text(encoding="utf-8")
    assert f"embedded for the first 1 of 2 images with maps ({spent / 1e6:.1f} MB; viewer_mb=0.001)" in page
    every = page_json(write_report(run, progress=False, viewer_mb=spent / 1e6 + 0.001)[0].read_text(encoding="utf-8"))
    assert all("view" in image for image in every["images"])
    none = page_json(write_report(run, progress=False, viewer_mb=0)[0].read_text(encoding="utf-8"))
    assert not any("view" in image for image in none["images"])
    for bad in (-1, float("nan"), True, "10"):
        with pytest.raises(ValueError, match="viewer_mb"):
            write_report(run, progress=False, viewer_mb=bad)


def test_a_source_that_is_gone_leaves_one_note_not_a_failure(tmp_path):
    run = viewer_run(tmp_path / "run")
    shutil.rmtree(run / "src")
    page = write_report(run, progress=False)[0].read_text(encoding="utf-8")
    data = page_json(page)
    assert not any("view" in image for image in data["images"])
    assert page.count("No interactive viewer for 2 images (e.g. vol: the source cannot be read") == 1


# ------------------------------------------------------------------ the page's script


@pytest.mark.skipif(NODE is None, reason="Node.js not installed")
def test_the_script_decodes_and_blends_as_the_python_side_does(tmp_path):
    rng = np.random.default_rng(5)
    arrays = {
        "u16": rng.integers(0, 65536, (2, 3, 9)).astype(np.uint16),
        "u8": np.tile(np.arange(9, dtype=np.uint8), (4, 1)),
    }
    packed = {key: [pack(a), a.dtype.itemsize, a.shape[-1]] for key, a in arrays.items()}
    values = [0.0, 0.1, 0.3, 0.5, 0.8, 1.0]
    greys = [0.0, 0.25, 0.7]
    lut = colour_table("viridis")
    script = files("medxai.viz.report") / "templates" / "report.js"
    code = (
        f"const r = require({json.dumps(str(script))}); const zlib = require('zlib');"
        f"const packed = {json.dumps(packed)}; const lut = Buffer.from({json.dumps(lut)}, 'hex');"
        "const out = {};"
        "for (const k in packed) { const [t, size, row] = packed[k];"
        "  const bytes = new Uint8Array(zlib.inflateSync(Buffer.from(t.slice(2), 'base64')));"
        "  out[k] = Array.from(r.unplane(bytes, size, t.slice(0, 2) === 'd:', row)); }"
        f"out.blend = {json.dumps(greys)}.map(g => {json.dumps(values)}.map(v => "
        "  r.blend([g, g, g], Math.round(v * 255), lut, 0.6)));"
        "console.log(JSON.stringify(out));"
    )
    result = node_json(code)
    for key, array in arrays.items():
        assert result[key] == array.ravel().tolist()
    for g, row in zip(greys, result["blend"], strict=True):
        for v, rgb in zip(values, row, strict=True):
            quantised = round(v * 255) / 255  # what the page holds
            expected = overlay(np.full((1, 1, 1), g), np.full((1, 1), quantised), colormap="viridis", alpha=0.6)
            # within a neighbouring entry of the 256-colour table (matplotlib bins v * 256) and rounding
            assert np.abs(np.array(rgb) - expected[0, 0]).max() <= 2.0, (g, v)


_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("rejection: " + e.reason); });
(function () { var original = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); }; })();
</script>"""

_ACTIONS = """<script>
function __pixels(canvas) {
  return Array.from(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data);
}
function __sum(a) { var s = 0; for (var i = 0; i < a.length; i++) s = (s * 31 + a[i]) % 1000000007; return s; }
function __grey(a) {
  for (var i = 0; i < a.length; i += 4) if (a[i] !== a[i + 1] || a[i] !== a[i + 2]) return false;
  return true;
}
function __run() {
  var viewer = document.querySelector(".viewer[data-ready]");
  var out = {errors: window.__errors, viewers: document.querySelectorAll(".viewer").length,
             ready: document.querySelectorAll(".viewer[data-ready]").length};
  if (viewer) {
    var slice = viewer.querySelector("input.v-slice"), label = viewer.querySelector(".v-slice-label");
    var axial = viewer.querySelector("canvas.v-axial");
    out.first = {slice: slice.value, label: label.textContent, sum: __sum(__pixels(axial))};
    slice.value = "2"; slice.dispatchEvent(new Event("input"));
    out.moved = {slice: slice.value, label: label.textContent, sum: __sum(__pixels(axial))};
    axial.dispatchEvent(new WheelEvent("wheel", {deltaY: 100, bubbles: true, cancelable: true}));
    out.wheeled = {slice: slice.value, label: label.textContent};
    var flat = document.querySelectorAll(".viewer[data-ready]")[1];  // the 2D image: no cross drawn
    var opacity = flat.querySelector("input.v-opacity"), plain = flat.querySelector("canvas.v-axial");
    out.tinted = !__grey(__pixels(plain));
    opacity.value = "0"; opacity.dispatchEvent(new Event("input"));
    out.clear = __grey(__pixels(plain));
    out.flatSlider = flat.querySelectorAll("input.v-slice").length;
    var choice = viewer.querySelector("select.v-window"), before = __sum(__pixels(axial));
    choice.value = "1"; choice.dispatchEvent(new Event("change"));
    out.windowed = __sum(__pixels(axial)) !== before;
    out.planes = viewer.querySelectorAll("canvas.v-plane").length;
    var outline = viewer.querySelector("input.v-outline");
    slice.value = "6"; slice.dispatchEvent(new Event("input"));  // a slice through the mask
    var drawn = __sum(__pixels(axial));
    outline.checked = false; outline.dispatchEvent(new Event("change"));
    out.outlineToggles = __sum(__pixels(axial)) !== drawn;
    out.flatOutline = flat.querySelectorAll("input.v-outline").length;
  }
  var p = document.createElement("pre"); p.id = "probe"; p.textContent = JSON.stringify(out);
  document.body.appendChild(p);
}
setTimeout(__run, 1500);
</script>"""


@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome installed")
def test_in_chromium_the_slider_and_wheel_change_the_slice_with_no_console_errors(report, tmp_path):
    page = report.read_text(encoding="utf-8").replace("<head>", "<head>" + _PROBE, 1)
    probe = report.parent / "probe.html"
    probe.write_text(page.replace("</body>", _ACTIONS + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--virtual-time-budget=10000",
         f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = done.stdout.split('<pre id="probe">', 1)
    assert len(found) == 2, "the probe did not run"
    result = json.loads(found[1].split("</pre>", 1)[0].replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert result["viewers"] == 2 and result["ready"] == 2
    depth = len(json.loads(json.dumps(page_json(page)["images"][0]["view"]["z"])))
    assert result["first"]["slice"] == str(PEAK[0]) and result["first"]["label"].startswith(
        f" {PEAK[0]} of {depth - 1}"
    )
    assert result["moved"]["slice"] == "2" and result["moved"]["label"].startswith(" 2 of")
    assert result["moved"]["sum"] != result["first"]["sum"]  # another slice is drawn
    assert result["wheeled"]["slice"] == "3"
    assert result["tinted"] is True and result["clear"] is True  # opacity 0: the windowed source alone (grey)
    assert result["flatSlider"] == 0  # a 2D image has no slices
    assert result["windowed"] is True
    assert result["planes"] == 6  # two maps x (axial, coronal, sagittal), side by side, one slider
    assert result["outlineToggles"] is True and result["flatOutline"] == 0  # the mask's outline, where there is one


def test_the_colour_table_is_the_colormaps():
    table = bytes.fromhex(colour_table("magma"))
    expected = (matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    assert table == expected.tobytes()
    assert colour_table("no-such-map") == colour_table("inferno")


@pytest.mark.slow
def test_the_3d_demo_shows_every_maps_peak_slice_in_its_png_and_its_report(tmp_path):
    """The 3D demo (data_samples/study3d, model3d.keras): each map's peak slice is a tile of its PNG and
    the report's viewer holds it (the page opens a map's peak with one click); Grad-CAM and the gradient."""
    from PIL import Image

    import medxai
    from medxai.viz.render import read_layout

    demo = Path(__file__).resolve().parents[2] / "configs" / "demo3d.yaml"
    summary = medxai.run(
        demo,
        overrides=[f"output.dir={tmp_path / 'run'}", "methods=[{name: gradient}, {name: gradcam}]", "evaluate=null"],
        progress=False,
    )
    assert summary.errors == 0
    data = page_json(write_report(tmp_path / "run", progress=False)[0].read_text(encoding="utf-8"))
    import pandas as pd

    index = pd.read_csv(tmp_path / "run" / "index.csv", keep_default_na=False)
    assert len(index) == 16 and (index["status"] == "ok").all()
    cards = {(image["id"], m["method"]): m for image in data["images"] for m in image["maps"]}
    for row in index.itertuples():
        heatmap = np.load(tmp_path / "run" / row.npy_path)
        peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
        with Image.open(tmp_path / "run" / row.png_path) as picture:
            _, slices = read_layout(picture.text)
        assert slices is not None and peak[0] in slices, (row.image_id, row.method)
        assert cards[(row.image_id, row.method)]["view"]["peak"] == [int(i) for i in peak]
