"""Atomic writers: exact round trips, parent folders, and nothing left behind on failure."""

from __future__ import annotations

import os

import numpy as np
import pytest
import skimage.io

from medxai.io import atomic_write_bytes, write_npy, write_png, write_text, writers


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


# ------------------------------------------------------------ errors name the path; a full disk says so
def test_an_oserror_names_the_file_it_could_not_write(tmp_path, monkeypatch):
    import errno

    real_open = writers.os.open

    def refuse(path, *args):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args)

    monkeypatch.setattr(writers.os, "open", refuse)
    with pytest.raises(PermissionError) as caught:
        write_text(tmp_path / "index.csv", "a\n")
    assert str(tmp_path / "index.csv") in str(caught.value) and "Permission denied" in str(caught.value)
    assert caught.value.errno == errno.EACCES


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        OSError(122, "Disk quota exceeded"),  # EDQUOT on Linux
        OSError("16384 requested and 10208 written"),  # numpy's short write, without errno
    ],
)
def test_a_full_disk_is_a_disk_full_error_naming_the_path_and_the_bytes(tmp_path, monkeypatch, failure):
    def full_save(f, array, allow_pickle):
        f.write(b"\x93NUMPY")
        raise failure

    monkeypatch.setattr(writers.np, "save", full_save)
    path = tmp_path / "maps" / "x.npy"
    with pytest.raises(writers.DiskFullError) as caught:
        write_npy(path, np.zeros((64, 64), np.float32))
    err = caught.value
    assert writers.is_disk_full(err) and err.path == str(path) and str(path) in str(err)
    assert err.needed == 64 * 64 * 4 + 128 and err.free is not None and "free there" in str(err)
    assert ("quota" in str(err)) == (failure.errno == 122)
    assert listing(path.parent) == []


def test_is_disk_full():
    import errno

    assert writers.is_disk_full(OSError(errno.ENOSPC, "x"))
    assert writers.is_disk_full(OSError("4096 requested and 0 written"))
    assert not writers.is_disk_full(OSError(errno.EACCES, "x")) and not writers.is_disk_full(ValueError("x"))


def test_probe_writable_leaves_nothing_behind_and_names_the_folder(tmp_path):
    writers.probe_writable(tmp_path / "a" / "b")
    assert listing(tmp_path) == []  # the folders it made for the check are gone again
    writers.probe_writable(tmp_path)
    assert listing(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=f"{tmp_path / 'file'} is a file, not a folder"):
        writers.probe_writable(tmp_path / "file" / "out")
    with pytest.raises(OSError, match=str(tmp_path / "file")):
        writers.probe_writable(tmp_path / "file")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes anywhere")
def test_probe_writable_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=str(folder)):
            writers.probe_writable(folder / "out")
    finally:
        folder.chmod(0o755)


def test_remove_stale_temps_only_removes_the_writers_temporary_names(tmp_path):
    maps = tmp_path / "maps" / "ig"
    maps.mkdir(parents=True)
    stale = [
        tmp_path / ".index.csv.0123456789ab.tmp",
        maps / ".a_c0.npy.abcdef012345.tmp",
        maps / ".a_c0.sc.abcdef012345.old",
        maps / ".a_c0.sc.fedcba987654.tmp",
    ]
    for path in stale[:2]:
        path.write_bytes(b"half")
    for path in stale[2:]:
        path.mkdir()
        (path / "0001.dcm").write_bytes(b"x")
    kept = [maps / "a_c0.npy", tmp_path / ".notes.tmp", tmp_path / "x.0123456789ab.tmp", maps / ".a.npy.0123.tmp"]
    for path in kept:
        path.write_bytes(b"keep")
    removed = writers.remove_stale_temps(tmp_path)
    assert removed == sorted(p.relative_to(tmp_path).as_posix() for p in stale)
    assert all(not p.exists() for p in stale) and all(p.exists() for p in kept)


def test_remove_stale_temps_with_only_sweeps_the_top_level_names_it_accepts(tmp_path):
    (tmp_path / "sub").mkdir()
    run = tmp_path / ".index.csv.0123456789ab.tmp"
    others = [tmp_path / ".notes.abcdef123456.tmp", tmp_path / "sub" / ".index.csv.0123456789ab.tmp"]
    for path in [run, *others]:
        path.write_bytes(b"x")
    assert writers.remove_stale_temps(tmp_path, only=lambda name: name.startswith(".index.csv.")) == [run.name]
    assert not run.exists() and all(p.exists() for p in others)


def test_npy_problem_and_read_npy(tmp_path):
    path = tmp_path / "m.npy"
    write_npy(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    size = path.stat().st_size
    assert writers.npy_problem(path) is None and writers.npy_problem(path, size) is None
    assert "the index recorded" in writers.npy_problem(path, size + 1)
    np.testing.assert_array_equal(writers.read_npy(path), np.arange(12, dtype=np.float32).reshape(3, 4))
    path.write_bytes(path.read_bytes()[:-5])
    assert "truncated or damaged" in writers.npy_problem(path)
    with pytest.raises(ValueError, match=f"{path} is truncated"):
        writers.read_npy(path)
    path.write_bytes(b"not numpy")
    assert "not a readable .npy file" in writers.npy_problem(path)
    assert writers.npy_problem(tmp_path / "gone.npy") == f"{tmp_path / 'gone.npy'} is missing"
