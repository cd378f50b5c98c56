"""Reproduce a bundled model: train it, measure held-out AP, write ``src/pixelgroup/zoo/NAME/{model.pt,card.md}``.

    python benchmarks/train_bundled.py nuclei [--minutes 8] [--threads 2] [--no-install]
    python benchmarks/train_bundled.py shapes [--minutes 8] [--threads 2] [--no-install]

``nuclei``: DSB 2018 nuclei (the image + annotation StarDist ships, columns 0-383, see
``real_nuclei.py``) plus 48 ``synth --kind nuclei`` images; held out: DSB columns 384-511 and 8
synthetic images of another seed. ``shapes``: 48 ``synth --kind shapes`` RGB images; held out: 8 of
another seed. Config: ``configs/zoo_NAME.yaml``. Prints AP_dsb@0.5/0.75 per held-out set.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch
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


def write_data(name: str, work: Path) -> dict[str, Path]:
    """Training folder and held-out folders ``{label: folder}`` of one bundled model."""
    kind = "nuclei" if name == "nuclei" else "shapes"
    write_synthetic(work / "train", kind=kind, n=48, size=256, seed=0)
    write_synthetic(work / f"test_synth_{kind}", kind=kind, n=8, size=256, seed=10_000)
    tests = {f"synthetic {kind} (8 images, seed 10000)": work / f"test_synth_{kind}"}
    if name == "nuclei":
        image, labels = fetch_image()
        rows = [slice(0, 171), slice(171, 342), slice(342, 512)]
        write_split(work / "dsb", image, labels, [(r, c) for r in rows for c in (slice(0, 192), slice(192, 384))])
        for sub in ("images", "masks"):
            for f in (work / "dsb" / sub).iterdir():
                shutil.copy(f, work / "train" / sub / f"dsb_{f.name}")
        write_split(work / "test_dsb", image, labels,
                    [(slice(0, 256), slice(384, 512)), (slice(256, 512), slice(384, 512))])
        tests = {"DSB 2018 columns 384-511 (2 tiles, 32 nuclei)": work / "test_dsb", **tests}
    return tests


def slim_checkpoint(run: Path, out: Path) -> dict:
    """The run's best checkpoint without training state or local paths (weights, config, object size)."""
    cfg, state = load_checkpoint(run)
    model = build_model(cfg, in_channels=int(state["in_channels"]))
    model.load_state_dict(state["model"])
    save_checkpoint(out, cfg=cfg, model=model, in_channels=int(state["in_channels"]), step=int(state["step"]),
                    object_diameter=state.get("object_diameter"), method_state=None)
    return state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=("nuclei", "shapes"))
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-install", action="store_true", help="do not write src/pixelgroup/zoo/NAME")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = DATA / f"zoo_{args.name}"
    if work.exists():
        shutil.rmtree(work)
    tests = write_data(args.name, work)
    cfg = pixelgroup.load_config(ROOT / "configs" / f"zoo_{args.name}.yaml").replace(
        **{"train.minutes": args.minutes})
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
    print(f"object diameter (median, training objects): {seg.object_diameter:.1f} px")
    if args.no_install:
        return
    target = ZOO / args.name
    target.mkdir(parents=True, exist_ok=True)
    slim_checkpoint(work / "run", target / "model.pt")
    card = (ROOT / "benchmarks" / "zoo_cards" / f"{args.name}.md").read_text()
    table = "\n".join(f"| {label} | {a50:.3f} | {a75:.3f} |" for label, a50, a75 in rows)
    card = card.format(table=table, steps=res.steps, minutes=args.minutes, diameter=seg.object_diameter,
                       threads=args.threads)
    (target / "card.md").write_text(card)
    print(f"wrote {target}/model.pt ({(target / 'model.pt').stat().st_size / 1e6:.2f} MB) and card.md")


if __name__ == "__main__":
    main()
