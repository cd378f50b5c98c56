"""Does the ReNet context module help the discriminative loss, and at what cost? Mean shift vs HDBSCAN
grouping on the same trained models.

    python benchmarks/discriminative_context.py [--steps 600] [--threads 2] [--kind rods]

Data: ``pixelgroup synth --kind rods`` (long, thin, identical-looking rods that touch side by side:
telling them apart needs context along the whole rod), 48 training and 16 held-out 128 px images.
Both models: same network, steps and seed; only ``model.context`` differs.
"""

from __future__ import annotations

import argparse

from _common import FLIPS_ONLY, ROOT, fresh, set_threads, train_and_score

from pixelgroup.config import RunConfig
from pixelgroup.data.synth import write_synthetic
from pixelgroup.metrics.report import format_instance_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kind", default="rods")
    args = ap.parse_args()
    set_threads(args.threads)
    work = fresh(ROOT / "discriminative")
    write_synthetic(work / "train", kind=args.kind, n=48, size=128, seed=300)
    write_synthetic(work / "test", kind=args.kind, n=16, size=128, seed=400)
    rows, notes = {}, []
    for context in (None, "renet"):
        cfg = RunConfig(method="discriminative").replace(**{
            "train.steps": args.steps, "train.val_every": max(100, args.steps // 4), "data.crop_size": 64,
            "data.batch_size": 8, "model.context": context}, **FLIPS_ONLY)
        r = train_and_score(cfg, train=work / "train", test=work / "test", out=work / f"run_{context}",
                            grouping=[{"name": "hdbscan"}])
        for grouper, res in r["results"].items():
            rows[f"{context or 'no context'} + {grouper}"] = res
        infer = ", ".join(f"{g} {t:.3f} s/image" for g, t in r["infer_s"].items())
        notes.append(f"{context or 'no context'}: {r['steps']} steps, {r['step_s']:.3f} s/step; inference {infer}")
    print(format_instance_table(rows))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
