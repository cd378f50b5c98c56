"""Atomic writes: whole files only, with the permissions a plain ``open(path, "w")`` would give."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from pixelgroup.fileio import atomic_torch_save, atomic_write, atomic_write_text


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize(("mask", "expect"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask(tmp_path, umask, mask, expect):
    umask(mask)
    text = atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    model = atomic_torch_save({"x": 1}, tmp_path / "last.pt")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for path in (text, model, plain):
        assert stat.S_IMODE(path.stat().st_mode) == expect, path


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "history.jsonl", "old\n")

    def fail(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl"]
