"""Atomic writers: exact round trips, parent folders, and nothing left behind on failure."""

from __future__ import annotations

import os

import numpy as np
import pytest
import skimage.io

from medxai.io import atomic_write_bytes, write_npy, write_png, write_text
from medxai.io import writers


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_bytes_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(path, b"first")
    assert path.read_bytes() == b"first"
    atomic_write_bytes(path, b"second", fsync=True)
    assert path.read_bytes() == b"second"
    assert listing(path.parent) == ["out.bin"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "p.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "p.bin").stat().st_mode & 0o777 == 0o644


def test_write_npy_exact_float32_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((7, 9), dtype=np.float32)
    data[0, 0] = np.float32(1e-38)
    path = tmp_path / "maps" / "m.npy"
    write_npy(path, data)
    back = np.load(path, allow_pickle=False)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, data)
    assert back.tobytes() == data.tobytes()


def test_write_npy_uses_the_path_as_given(tmp_path):
    write_npy(tmp_path / "map.raw", np.zeros(3, np.float32))
    assert listing(tmp_path) == ["map.raw"]


def test_write_png_uint8_grey_rgb_rgba(tmp_path):
    grey = (np.arange(256).reshape(16, 16)).astype(np.uint8)
    for name, data in {
        "g.png": grey,
        "rgb.png": np.stack([grey, grey[::-1], grey.T], axis=-1),
        "rgba.png": np.stack([grey, grey, grey, np.full_like(grey, 128)], axis=-1),
    }.items():
        write_png(tmp_path / name, data)
        np.testing.assert_array_equal(skimage.io.imread(tmp_path / name), data)


def test_write_png_float_is_rounded(tmp_path):
    data = np.array([[0.0, 1.0, 0.5, 0.2], [0.998, 0.002, 1.0000001, -1e-9]], np.float32)
    write_png(tmp_path / "f.png", data)
    np.testing.assert_array_equal(skimage.io.imread(tmp_path / "f.png"), [[0, 255, 128, 51], [254, 1, 255, 0]])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4, 4, 1), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros((4, 4), np.uint16),
        np.full((4, 4), 1.5),
        np.full((4, 4), np.nan),
    ],
)
def test_write_png_refuses_bad_input(tmp_path, bad):
    with pytest.raises(ValueError):
        write_png(tmp_path / "bad.png", bad)
    assert listing(tmp_path) == []


def test_write_text_is_utf8_and_exact(tmp_path):
    text = "id,path\r\nü,ä.png\n"
    write_text(tmp_path / "index.csv", text)
    assert (tmp_path / "index.csv").read_bytes() == text.encode("utf-8")


def test_object_array_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="object"):
        write_npy(tmp_path / "x.npy", np.array([object()], dtype=object))
    assert listing(tmp_path) == []


def test_failure_mid_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def half_save(f, array, allow_pickle):
        f.write(b"\x93NUMPY half a header")
        raise OSError("device went away")

    monkeypatch.setattr(writers.np, "save", half_save)
    path = tmp_path / "out" / "x.npy"
    with pytest.raises(OSError, match="device went away"):
        write_npy(path, np.zeros((4, 4), np.float32))
    assert listing(path.parent) == []


def test_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.bin"
    path.write_bytes(b"old")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with writers.atomic_open(path) as f:
            f.write(b"half of the new")
            raise Boom
    assert path.read_bytes() == b"old"
    assert listing(tmp_path) == ["keep.bin"]


def test_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(writers.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_text(tmp_path / "index.csv", "a,b\n")
    assert listing(tmp_path) == []


def test_failed_png_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "h.png"
    write_png(path, np.zeros((4, 4), np.uint8))
    before = path.read_bytes()
    real_write = writers.atomic_open

    def failing_open(p, **kw):
        raise OSError("no space left")

    monkeypatch.setattr(writers, "atomic_open", failing_open)
    with pytest.raises(OSError):
        write_png(path, np.ones((4, 4), np.uint8))
    monkeypatch.setattr(writers, "atomic_open", real_write)
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["h.png"]
