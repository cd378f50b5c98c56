"""Reproduce a bundled model: train it, measure held-out AP, write ``src/pixelgroup/zoo/NAME/{model.pt,card.md}``.

    python benchmarks/train_bundled.py nuclei [--minutes 20] [--threads 2] [--no-install]
    python benchmarks/train_bundled.py shapes [--minutes 8] [--threads 2] [--no-install]

``nuclei``: real fluorescence nuclei of several sizes, microscopes and cell lines plus synthetic
ones: the DSB 2018 image StarDist ships (columns 0-383, cut into 6 tiles, see ``real_nuclei.py``),
the MNFinder wheel's training fields of its RPE-1, U2OS and mixed-cell-line series (32 fields, see
``_mnfinder.py``) and 24 ``synth --kind nuclei`` images; held out (never seen): DSB columns
384-511, the U2OS and mixed-cell-line test fields of ``real_u2os.py`` / ``real_cell_lines.py`` and 8
synthetic images of another seed. ``shapes``: 48 ``synth --kind shapes`` RGB images; held out: 8 of
another seed. Config: ``configs/zoo_NAME.yaml`` (``--minutes`` overrides its ``train.minutes``).
Prints AP_dsb@0.5/0.75 per held-out set.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import real_cell_lines
import real_u2os
import torch
from _mnfinder import fetch, stems
from _mnfinder import write_split as write_mnfinder
from real_nuclei import fetch_image, write_split

import pixelgroup
from pixelgroup.data.synth import write_synthetic
from pixelgroup.engine.build import build_model
from pixelgroup.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelgroup.engine.evaluate import evaluate_folders
from pixelgroup.engine.predict import predict_paths

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "_data"
ZOO = ROOT / "src" / "pixelgroup" / "zoo"


# MNFinder series whose training (and validation) fields train the bundled ``nuclei`` model. The
# RPE-1 field ``2022-05-26_RPE1/training-data/1`` is left out: it is the same image as the
# mixed-cell-line test field ``1`` (pixel for pixel), which must stay held out.
RPE1 = ("2022-03-18_RPE1", "2022-04-14_RPE1", "2022-05-25_RPE1", "2022-05-26_RPE1", "2022-05-27_RPE1")
LEAKS = {("2022-05-26_RPE1", "training-data", "1")}


def mnfinder_training(series: str) -> list[tuple[str, str]]:
    """The ``(split, stem)`` fields of ``series`` that train: its training fields, and its validation
    fields unless a benchmark tests on them (the U2OS one does)."""
    splits = ("training-data",) if series == real_u2os.SERIES else ("training-data", "validation-data")
    return [(split, stem) for split in splits for stem in stems(series, split) if (series, split, stem) not in LEAKS]


def merge_into(dest: Path, src: Path, prefix: str) -> None:
    """Copy the image / mask pairs of the folder ``src`` into ``dest``, their names prefixed."""
    for sub in ("images", "masks"):
        for f in (src / sub).iterdir():
            shutil.copy(f, dest / sub / f"{prefix}{f.name}")


def write_data(name: str, work: Path) -> dict[str, Path]:
    """Training folder and held-out folders ``{label: folder}`` of one bundled model."""
    kind = "nuclei" if name == "nuclei" else "shapes"
    write_synthetic(work / "train", kind=kind, n=24 if name == "nuclei" else 48, size=256, seed=0)
    write_synthetic(work / f"test_synth_{kind}", kind=kind, n=8, size=256, seed=10_000)
    tests = {f"synthetic {kind} (8 images, seed 10000)": work / f"test_synth_{kind}"}
    if name != "nuclei":
        return tests
    image, labels = fetch_image()
    rows = [slice(0, 171), slice(171, 342), slice(342, 512)]
    write_split(work / "dsb", image, labels, [(r, c) for r in rows for c in (slice(0, 192), slice(192, 384))])
    merge_into(work / "train", work / "dsb", "dsb_")
    test_tiles = [(slice(0, 256), slice(384, 512)), (slice(256, 512), slice(384, 512))]
    write_split(work / "test_dsb", image, labels, test_tiles)
    for series in (*RPE1, real_u2os.SERIES, real_cell_lines.SERIES):
        items = mnfinder_training(series)
        n = write_mnfinder(work / "mnfinder" / series, fetch(series, items), items)
        print(f"{series}: {len(items)} training fields, {n} nuclei")
        merge_into(work / "train", work / "mnfinder" / series, f"{series}_")
    n_u2os = write_mnfinder(work / "test_u2os", fetch(real_u2os.SERIES, real_u2os.TEST), real_u2os.TEST)
    misc_test = [("test-data", s) for s in stems(real_cell_lines.SERIES, "test-data")]
    n_misc = write_mnfinder(work / "test_cell_lines", fetch(real_cell_lines.SERIES, misc_test), misc_test)
    return {"DSB 2018 columns 384-511 (2 tiles, 32 nuclei)": work / "test_dsb",
            f"U2OS test fields of `real_u2os.py` (2 fields, {n_u2os} nuclei)": work / "test_u2os",
            f"mixed cell lines test fields of `real_cell_lines.py` (15 fields, {n_misc} nuclei)":
                work / "test_cell_lines",
            **tests}


def slim_checkpoint(run: Path, out: Path) -> dict:
    """The run's best checkpoint without training state or local paths (weights, config, object size,
    calibrated grouping values)."""
    cfg, state = load_checkpoint(run)
    model = build_model(cfg, in_channels=int(state["in_channels"]))
    model.load_state_dict(state["model"])
    save_checkpoint(out, cfg=cfg, model=model, in_channels=int(state["in_channels"]), step=int(state["step"]),
                    object_diameter=state.get("object_diameter"), calibration=state.get("calibration"),
                    object_diameter_range=state.get("object_diameter_range"), method_state=None)
    return state


def write_card(name: str, path: Path, *, rows: list[tuple[str, float, float]], steps: int, minutes: float,
               seg, threads: int) -> None:
    """The model card of ``name`` from its template (``benchmarks/zoo_cards/NAME.md``): the held-out
    ``rows`` ``(label, AP@0.5, AP@0.75)``, the training budget and the model's recorded values."""
    card = (ROOT / "benchmarks" / "zoo_cards" / f"{name}.md").read_text()
    table = "\n".join(f"| {label} | {a50:.3f} | {a75:.3f} |" for label, a50, a75 in rows)
    params = seg.grouper_params
    low, high = seg.object_diameter_range or (seg.object_diameter, seg.object_diameter)
    card = card.format(table=table, steps=steps, minutes=minutes, diameter=seg.object_diameter, low=low, high=high,
                       threads=threads, seed_threshold=params.get("seed_threshold"),
                       fg_threshold=params.get("fg_threshold"), min_size=params.get("min_size"))
    path.write_text(card)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=("nuclei", "shapes"))
    ap.add_argument("--minutes", type=float, default=None, help="default: the config's train.minutes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-install", action="store_true", help="do not write src/pixelgroup/zoo/NAME")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = DATA / f"zoo_{args.name}"
    if work.exists():
        shutil.rmtree(work)
    tests = write_data(args.name, work)
    cfg = pixelgroup.load_config(ROOT / "configs" / f"zoo_{args.name}.yaml")
    if args.minutes is not None:
        cfg = cfg.replace(**{"train.minutes": args.minutes})
    t0 = time.time()
    res = pixelgroup.fit(cfg, data=work / "train", out=work / "run", progress=False)
    print(f"trained {res.steps} steps in {time.time() - t0:.0f} s (best validation {res.best_metric:.3f} "
          f"at step {res.best_step})")
    seg = pixelgroup.load_model(work / "run")
    rows = []
    for label, folder in tests.items():
        pred = work / f"pred_{folder.name}"
        predict_paths(seg, [folder / "images"], pred, progress=False, overwrite=True)
        r = evaluate_folders(folder, pred)
        rows.append((label, r["ap_dsb@0.50"], r["ap_dsb@0.75"]))
        print(f"{label}: AP_dsb@0.5 {r['ap_dsb@0.50']:.3f}  AP_dsb@0.75 {r['ap_dsb@0.75']:.3f}")
    print(f"object diameter (median, training objects): {seg.object_diameter:.1f} px; grouping {seg.grouper} "
          f"{seg.grouper_params}")
    if args.no_install:
        return
    target = ZOO / args.name
    target.mkdir(parents=True, exist_ok=True)
    slim_checkpoint(work / "run", target / "model.pt")
    write_card(args.name, target / "card.md", rows=rows, steps=res.steps, minutes=cfg.train.minutes, seg=seg,
               threads=args.threads)
    print(f"wrote {target}/model.pt ({(target / 'model.pt').stat().st_size / 1e6:.2f} MB) and card.md")


if __name__ == "__main__":
    main()
