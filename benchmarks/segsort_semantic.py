"""SegSort's two claims on the synthetic semantic benchmark, same backbone and budget:
supervised SegSort vs a pixel-wise softmax baseline, and unsupervised SegSort (trained from a
Felzenszwalb over-segmentation, labels used only for nearest-neighbour retrieval) as a share of
supervised SegSort's mIoU.

    python benchmarks/segsort_semantic.py [--steps 2400] [--threads 2] [--pretrain]

Data: 48 training and 64 held-out 128 px scenes of ``synth --kind semantic`` (6 classes). Every
model is scored on all 64 held-out images; with 16 the mIoU of one model moved by +-0.05 between
image sets, more than the differences being measured. SegSort uses the authors' inference
settings (5 x 5 grid, 10 k-means iterations, k = 15, majority vote).

``--pretrain`` mirrors the paper's setting, where every model starts from an ImageNet-trained
backbone: a ``spatial`` instance model is first trained on 48 images of ``synth --kind shapes``
(another task on other data, with no semantic classes; 1200 steps) and all three runs start from
its weights (``train.init``).
"""

from __future__ import annotations

import argparse

from _common import ROOT, fresh, set_threads, train_and_score

from pixelgroup import fit
from pixelgroup.config import RunConfig
from pixelgroup.data.synth import write_synthetic
from pixelgroup.data.synth_semantic import CLASS_NAMES, write_synthetic_semantic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pretrain", action="store_true", help="start every run from a backbone trained on shapes")
    args = ap.parse_args()
    set_threads(args.threads)
    work = fresh(ROOT / "segsort")
    write_synthetic_semantic(work / "train", n=48, size=128, seed=0)
    write_synthetic_semantic(work / "test", n=64, size=128, seed=1000)
    base = {"train.steps": args.steps, "train.val_every": max(100, args.steps // 4), "data.crop_size": 64,
            "data.batch_size": 8, "data.format": "semantic_folder", "model.n_classes": 6}
    if args.pretrain:
        write_synthetic(work / "pretrain_data", kind="shapes", n=48, size=128, seed=7)
        pre = RunConfig(method="spatial").replace(**{"train.steps": 1200, "train.val_every": 600,
                                                     "data.crop_size": 64, "data.batch_size": 8})
        fit(pre, data=work / "pretrain_data", out=work / "pretrain", device="cpu", progress=False)
        base["train.init"] = str(work / "pretrain")
    runs = {
        "softmax": RunConfig(method="softmax").replace(**base),
        "segsort (supervised)": RunConfig(method="segsort").replace(**base, **{"model.embedding_dim": 32}),
        "segsort (unsupervised)": RunConfig(method="segsort").replace(**base, **{
            "model.embedding_dim": 32, "loss.unsupervised": True, "data.segments": "felzenszwalb"}),
    }
    table = {}
    for name, cfg in runs.items():
        run_dir = work / name.replace(" ", "_").replace("(", "").replace(")", "")
        r = train_and_score(cfg, train=work / "train", test=work / "test", out=run_dir)
        (res,) = r["results"].values()
        table[name] = (res["miou"], res["pixel_accuracy"], r["step_s"], res["iou"])
    short = [c.split("_")[-1][:8] for c in CLASS_NAMES]
    print(f"{'run':<24} {'mIoU':>6} {'pix acc':>7} {'s/step':>6}  " + " ".join(f"{c:>8}" for c in short))
    for name, (miou, acc, step_s, iou) in table.items():
        print(f"{name:<24} {miou:6.3f} {acc:7.3f} {step_s:6.2f}  " + " ".join(f"{v:8.3f}" for v in iou))
    sup, uns = table["segsort (supervised)"][0], table["segsort (unsupervised)"][0]
    print(f"unsupervised / supervised SegSort mIoU: {uns / sup:.1%} (target >= 76%)")
    print(f"supervised SegSort - softmax mIoU: {sup - table['softmax'][0]:+.3f}")


if __name__ == "__main__":
    main()
