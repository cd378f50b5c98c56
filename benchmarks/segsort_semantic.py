"""SegSort's two claims on the synthetic semantic benchmark, same backbone and budget:
supervised SegSort vs a pixel-wise softmax baseline, and unsupervised SegSort (trained from a
Felzenszwalb over-segmentation, labels used only for nearest-neighbour retrieval) as a share of
supervised SegSort's mIoU.

    python benchmarks/segsort_semantic.py [--steps 1200] [--seeds 0 1 2] [--n-train 192]
        [--palette class|shared] [--runs softmax supervised unsupervised] [--pretrain] [--threads 2]

Data: ``--n-train`` training and 64 held-out 128 px scenes of ``synth --kind semantic`` (6 classes;
``--palette shared`` for the variant where classes share their colours). Every model is scored on
all 64 held-out images (with 16 the mIoU of one model moved by +-0.05 between image sets) and each
run is repeated for every ``--seeds`` value (training seed: initialisation, crops, sampling); the
table gives the mean and standard deviation over seeds. SegSort uses the authors' inference
settings (5 x 5 grid, 10 k-means iterations, k = 15, majority vote); the ``vmf vote`` column scores
the same models with ``vote: vmf``.

With 48 training images the unsupervised model memorises its few thousand regions (it learns to
tell every region from every other, its objective) and retrieval suffers; the paper trains on
10,582 images. 192 images is the default.

``--pretrain`` mirrors the paper's ImageNet initialisation: a ``spatial`` instance model is first
trained on 48 images of ``synth --kind shapes`` (another task on other data, no semantic classes;
1200 steps) and all runs start from its weights (``train.init``).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import FLIPS_ONLY, ROOT, fresh, set_threads, train_and_score

from pixelgroup import fit
from pixelgroup.config import RunConfig
from pixelgroup.data.synth import write_synthetic
from pixelgroup.data.synth_semantic import CLASS_NAMES, PALETTES, write_synthetic_semantic

RUNS = {"softmax": "softmax", "supervised": "segsort (supervised)", "unsupervised": "segsort (unsupervised)"}
VMF = [{"name": None, "params": {"vote": "vmf"}, "label": "vmf"}]  # the same SegSort model, vmf votes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--n-train", type=int, default=192, help="training images (64 are held out for the test)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pretrain", action="store_true", help="start every run from a backbone trained on shapes")
    ap.add_argument("--palette", default="class", choices=PALETTES,
                    help="synthetic scenes whose classes have their own hue (default) or share one palette")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (mean and spread)")
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--work", default="segsort", help="folder under benchmarks/_data")
    args = ap.parse_args()
    set_threads(args.threads)
    work = fresh(ROOT / args.work)
    write_synthetic_semantic(work / "train", n=args.n_train, size=128, seed=0, palette=args.palette)
    write_synthetic_semantic(work / "test", n=64, size=128, seed=1000, palette=args.palette)
    base = {"train.steps": args.steps, "train.val_every": max(100, args.steps // 4), "data.crop_size": 64,
            "data.batch_size": 8, "data.format": "semantic_folder", "model.n_classes": 6, **FLIPS_ONLY}
    if args.pretrain:
        write_synthetic(work / "pretrain_data", kind="shapes", n=48, size=128, seed=7)
        pre = RunConfig(method="spatial").replace(**{"train.steps": 1200, "train.val_every": 600,
                                                     "data.crop_size": 64, "data.batch_size": 8, **FLIPS_ONLY})
        fit(pre, data=work / "pretrain_data", out=work / "pretrain", device="cpu", progress=False)
        base["train.init"] = str(work / "pretrain")
    configs = {
        "softmax": RunConfig(method="softmax").replace(**base),
        "segsort (supervised)": RunConfig(method="segsort").replace(**base, **{"model.embedding_dim": 32}),
        "segsort (unsupervised)": RunConfig(method="segsort").replace(**base, **{
            "model.embedding_dim": 32, "loss.unsupervised": True, "data.segments": "felzenszwalb"}),
    }
    table: dict[str, list[tuple]] = {}
    for key, name in RUNS.items():
        if key not in args.runs:
            continue
        for seed in args.seeds:
            cfg = configs[name].replace(**{"train.seed": seed})
            r = train_and_score(cfg, train=work / "train", test=work / "test", out=work / f"{key}_seed{seed}",
                                grouping=VMF if cfg.method == "segsort" else None)
            results = r["results"]
            vmf = results.pop("vmf")["miou"] if "vmf" in results else float("nan")
            (res,) = results.values()
            table.setdefault(name, []).append((res["miou"], res["pixel_accuracy"], r["step_s"], res["iou"], vmf))
            print(f"{name} seed {seed}: mIoU {res['miou']:.3f} (vmf vote {vmf:.3f})", flush=True)
    short = [c.split("_")[-1][:8] for c in CLASS_NAMES]
    print(f"\n{args.palette} palette, {args.n_train} training images, {args.steps} steps"
          f"{', pretrained backbone' if args.pretrain else ''}, seeds {args.seeds}")
    print(f"{'run':<24} {'mIoU':>6} {'+-sd':>5} {'vmf vote':>8} {'pix acc':>7} {'s/step':>6}  "
          + " ".join(f"{c:>8}" for c in short))
    mean, mean_vmf = {}, {}
    for name, rows in table.items():
        miou = np.array([r[0] for r in rows])
        mean[name], mean_vmf[name] = miou.mean(), np.mean([r[4] for r in rows])
        iou = np.mean([r[3] for r in rows], axis=0)
        print(f"{name:<24} {miou.mean():6.3f} {miou.std():5.3f} {mean_vmf[name]:8.3f} "
              f"{np.mean([r[1] for r in rows]):7.3f} {np.mean([r[2] for r in rows]):6.2f}  "
              + " ".join(f"{v:8.3f}" for v in iou))
    sup, uns, soft = ("segsort (supervised)", "segsort (unsupervised)", "softmax")
    if sup in mean and uns in mean:
        print(f"unsupervised / supervised SegSort mIoU: {mean[uns] / mean[sup]:.1%} (target >= 76%); "
              f"with vmf votes {mean_vmf[uns] / mean_vmf[sup]:.1%}")
    if sup in mean and soft in mean:
        print(f"supervised SegSort - softmax mIoU: {mean[sup] - mean[soft]:+.3f} "
              f"(vmf vote {mean_vmf[sup] - mean[soft]:+.3f})")


if __name__ == "__main__":
    main()
