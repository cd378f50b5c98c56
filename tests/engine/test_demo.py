"""``pixelgroup demo`` end to end (data, a few seconds of training, predict, evaluate), twice in one folder."""

from __future__ import annotations

import json

from pixelgroup.cli import main


def test_demo_runs_end_to_end_and_again(tmp_path, capsys):
    out = tmp_path / "demo"
    for _ in range(2):  # a second run in the same folder works too
        assert main(["demo", "--out", str(out), "--minutes", "0.02", "--no-progress"]) == 0
        assert "overlays:" in capsys.readouterr().out
    assert len(list((out / "pred").glob("*.tif"))) == len(list((out / "test" / "images").iterdir())) > 0
    assert "ap_dsb@0.50" in json.loads((out / "results.json").read_text())
    assert (out / "run" / "best.pt").is_file()
