"""Kong & Fowlkes' central claim: the loss applied through T recurrent mean-shift iterations beats the
same budget with the loss on the raw embedding only (T = 0).

    python benchmarks/hypersphere_recurrent.py [--steps 600] [--threads 2]

Both runs: same synthetic nuclei (48 training images of 128 px, 16 held-out), same network, same
number of steps and seed; only ``loss.iterations`` differs. Prints held-out AP for both.
"""

from __future__ import annotations

import argparse

from _common import ROOT, fresh, set_threads, train_and_score

from pixelgroup.config import RunConfig
from pixelgroup.data.synth import write_synthetic
from pixelgroup.metrics.report import format_instance_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, nargs=2, default=(5, 0))
    args = ap.parse_args()
    set_threads(args.threads)
    work = fresh(ROOT / "hypersphere")
    write_synthetic(work / "train", kind="nuclei", n=48, size=128, seed=100)
    write_synthetic(work / "test", kind="nuclei", n=16, size=128, seed=200)
    rows, timing = {}, {}
    for t in args.iterations:
        cfg = RunConfig(method="hypersphere").replace(**{
            "train.steps": args.steps, "train.val_every": max(100, args.steps // 4), "loss.iterations": t,
            "data.crop_size": 64, "data.batch_size": 8})
        r = train_and_score(cfg, train=work / "train", test=work / "test", out=work / f"run_T{t}")
        rows[f"T={t}"] = r["results"]["meanshift"]
        timing[f"T={t}"] = r
    print(format_instance_table(rows))
    for name, r in timing.items():
        infer = r["infer_s"]["meanshift"]
        print(f"{name}: {r['steps']} steps, {r['step_s']:.2f} s/step, inference {infer:.3f} s/image")
    a, b = (rows[f"T={t}"]["ap_dsb@0.50"] for t in args.iterations)
    print(f"AP_dsb@0.5: T={args.iterations[0]} {a:.3f} vs T={args.iterations[1]} {b:.3f}")


if __name__ == "__main__":
    main()
