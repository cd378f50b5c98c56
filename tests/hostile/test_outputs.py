"""Outputs never replace inputs or earlier results; bad output paths are one line, exit 2."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from .helpers_inputs import noise, one_line_error, run, snapshot, tiny_checkpoint, write_tif


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture
def inputs(tmp_path):
    write_tif(tmp_path / "in" / "a.tif", noise((16, 16)))
    write_tif(tmp_path / "in" / "b.tif", noise((16, 20), seed=1))
    return tmp_path / "in"


def _predict(capsys, model, inputs, out, *extra):
    return run(capsys, "predict", "--model", model, inputs, "--out", out, "--no-progress", *extra)


def test_out_equal_to_the_input_folder_is_refused(model, inputs, capsys):
    before = snapshot(inputs)
    code, _, err = _predict(capsys, model, inputs, inputs)
    assert code == 2
    one_line_error(err, "is the folder of the input image(s)", "choose another --out")
    assert snapshot(inputs) == before


def test_out_folder_holding_an_input_file_is_refused(model, inputs, capsys):
    before = snapshot(inputs)
    code, _, err = _predict(capsys, model, inputs / "a.tif", inputs / ".")
    assert code == 2 and "is the folder of the input" in err
    assert snapshot(inputs) == before


def test_out_that_is_a_file_is_refused(model, inputs, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    code, _, err = _predict(capsys, model, inputs, target)
    assert code == 2
    one_line_error(err, "is a file, not a folder")
    assert target.read_text() == "keep me"
    code, _, err = _predict(capsys, model, inputs, target / "sub")
    assert code == 2
    one_line_error(err, "is a file, not a folder")


def test_existing_results_are_kept_unless_overwrite(model, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert _predict(capsys, model, inputs, out)[0] == 0
    before = snapshot(out)
    code, stdout, _ = _predict(capsys, model, inputs, out)  # finished inputs are skipped, never rewritten
    assert code == 0 and "skipped" in stdout
    assert snapshot(out) == before
    label = sorted(out.glob("*.tif"))[0]
    label.with_suffix(".json").unlink()  # an input with part of its results: refused, nothing written
    before = snapshot(out)
    code, _, err = _predict(capsys, model, inputs, out)
    assert code == 2
    one_line_error(err, "exist already", "--overwrite")
    assert snapshot(out) == before
    assert _predict(capsys, model, inputs, out, "--overwrite")[0] == 0
    assert label.with_suffix(".json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_results_have_normal_permissions(model, inputs, tmp_path, capsys):
    assert _predict(capsys, model, inputs, tmp_path / "out")[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    for path in (tmp_path / "out").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_out_folder(model, inputs, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code, _, err = _predict(capsys, model, inputs, locked / "out")
    assert code == 2
    one_line_error(err, "permission denied")


def test_synth_with_another_seed_does_not_overwrite(tmp_path, capsys):
    args = ["synth", tmp_path / "d", "--n", "2", "--size", "32"]
    code, out, err = run(capsys, *args)
    assert code == 0 and (out + err).count("wrote") == 1  # the summary once
    assert run(capsys, *args)[0] == 0  # the same command again: same files, allowed
    before = snapshot(tmp_path / "d")
    code, _, err = run(capsys, *args, "--seed", "1")
    assert code == 2
    one_line_error(err, "already holds a different dataset", "--overwrite")
    assert snapshot(tmp_path / "d") == before
    assert run(capsys, *args, "--seed", "1", "--overwrite")[0] == 0
    assert snapshot(tmp_path / "d") != before


def test_synth_semantic_with_another_seed_does_not_overwrite(tmp_path, capsys):
    args = ["synth", tmp_path / "s", "--kind", "semantic", "--n", "1", "--size", "32"]
    assert run(capsys, *args)[0] == 0
    before = snapshot(tmp_path / "s")
    code, _, err = run(capsys, *args, "--seed", "3")
    assert code == 2 and "--overwrite" in err and snapshot(tmp_path / "s") == before


def test_synth_into_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run(capsys, "synth", tmp_path / "f", "--n", "1", "--size", "16")
    assert code == 2
    one_line_error(err, str(tmp_path / "f"))


def _gt_and_pred(tmp_path):
    labels = np.zeros((16, 16), np.uint16)
    labels[2:8, 2:8] = 1
    write_tif(tmp_path / "gt" / "images" / "a.tif", noise((16, 16)))
    write_tif(tmp_path / "gt" / "masks" / "a.tif", labels)
    write_tif(tmp_path / "pred" / "a.tif", labels)


def test_evaluate_json_folder_and_existing_file(tmp_path, capsys):
    _gt_and_pred(tmp_path)
    base = ["evaluate", "--gt", tmp_path / "gt", "--pred", tmp_path / "pred"]
    code, _, err = run(capsys, *base, "--json", tmp_path / "gt")
    assert code == 2
    one_line_error(err, "is a folder", "results.json")
    assert run(capsys, *base, "--json", tmp_path / "r.json")[0] == 0
    first = (tmp_path / "r.json").read_bytes()
    code, _, err = run(capsys, *base, "--json", tmp_path / "r.json")
    assert code == 2
    one_line_error(err, "file exists", "--overwrite")
    assert (tmp_path / "r.json").read_bytes() == first
    assert run(capsys, *base, "--json", tmp_path / "r.json", "--overwrite")[0] == 0
    assert json.loads((tmp_path / "r.json").read_text())["ap_dsb@0.50"] == 1.0


def test_boundaries_and_proposals_refuse_existing_and_input_folder(model, inputs, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.png").write_bytes(b"earlier result")
    code, _, err = run(capsys, "boundaries", "--model", model, inputs, "--out", tmp_path / "b")
    assert code == 2
    one_line_error(err, "exist already", "--overwrite")
    assert (tmp_path / "b" / "a.png").read_bytes() == b"earlier result"
    before = snapshot(inputs)
    code, _, err = run(capsys, "proposals", "--model", model, inputs, "--out", inputs)
    assert code == 2
    one_line_error(err, "is the folder of the input")
    assert snapshot(inputs) == before


def test_explain_refuses_existing_panels(model, inputs, tmp_path, capsys):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "a_seg000_class1.png").write_bytes(b"earlier panel")
    code, _, err = run(capsys, "explain", "--model", model, inputs / "a.tif", "--out", tmp_path / "e",
                       "--data", inputs)
    assert code == 2 and ("--overwrite" in err or "segsort" in err)
    assert (tmp_path / "e" / "a_seg000_class1.png").read_bytes() == b"earlier panel"


def test_unwritable_out_folder_even_as_root(model, inputs, tmp_path, monkeypatch, capsys):
    """Root writes anywhere, so the permission answer is simulated."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    code, _, err = _predict(capsys, model, inputs, locked / "out")
    assert code == 2
    one_line_error(err, str(locked), "permission denied", "choose a folder you can write to")
    assert not (locked / "out").exists()


def test_disk_full_while_writing_is_one_line(model, inputs, tmp_path, monkeypatch, capsys):
    import pixelgroup.engine.predict as predict

    def full(path, labels):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(predict, "write_labels", full)
    code, _, err = _predict(capsys, model, inputs, tmp_path / "out")
    assert code == 2
    one_line_error(err, str(tmp_path / "out" / "a.tif"), "no space left on device")
