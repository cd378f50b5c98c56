"""Fine-tuning from a bundled model vs training from scratch, on a small dataset it was not trained on.

    python benchmarks/finetune_from_zoo.py [--minutes 1 2 4] [--model nuclei] [--kind rods] [--threads 2]

Data: ``pixelgroup synth --kind KIND`` (default ``rods``: thin, touching, look-alike objects, unlike
the round nuclei the ``nuclei`` model saw), 16 training and 8 held-out 128 px images. For each
budget, two runs with the default config (``configs``: none, defaults): from scratch, and with
``train.init`` = the bundled model (``--init nuclei``). Prints held-out AP_dsb@0.5 / @0.75 of each
run's ``best.pt`` (selected on a split of the training images, as ``pixelgroup train`` does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, set_threads, train_and_score  # noqa: E402

from pixelgroup.config import RunConfig  # noqa: E402
from pixelgroup.data.synth import write_synthetic  # noqa: E402
from pixelgroup.engine.zoo import resolve_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--kind", default="rods")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_threads(args.threads)
    data = ROOT / f"finetune_{args.kind}"
    if not (data / "train" / "images").is_dir():
        write_synthetic(data / "train", kind=args.kind, n=16, size=128, seed=21)
        write_synthetic(data / "test", kind=args.kind, n=8, size=128, seed=22)
    init = str(resolve_model(args.model))
    print(f"{'budget':>7} {'start':>12} {'steps':>6} {'AP@0.5':>7} {'AP@0.75':>8}")
    for minutes in args.minutes:
        for label, start in (("scratch", None), (args.model, init)):
            cfg = RunConfig().replace(**{"train.minutes": minutes, "train.steps": 100000, "train.val_every": 50,
                                         "train.init": start})
            r = train_and_score(cfg, train=data / "train", test=data / "test", out=ROOT / "finetune_run")
            m = r["results"][next(iter(r["results"]))]
            print(f"{minutes:>6g}m {label:>12} {r['steps']:>6} {m['ap_dsb@0.50']:>7.3f} {m['ap_dsb@0.75']:>8.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
