"""Training throughput with 1 and 2 processes (torchrun, DistributedDataParallel, gloo on the CPU).

    python benchmarks/ddp_throughput.py [--steps 60] [--procs 1 2] [--batch-size 8] [--crop-size 128]

Each configuration runs ``torchrun --standalone --nproc_per_node=N`` on this script in worker mode,
which trains the default spatial model on synthetic nuclei through ``pixelgroup.fit`` (validation
only at the end) and reports the training time of rank 0 (``FitResult.seconds``: the steps, without
the start-up and the final validation). Prints steps/s and samples/s (samples = crops over all ranks).
On a 2-core machine expect little gain: the point is that the same command runs on a multi-GPU node.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "_data"


def worker(args: argparse.Namespace) -> None:
    import torch

    from pixelgroup.config import RunConfig
    from pixelgroup.engine import distributed
    from pixelgroup.engine.train import fit

    spec = distributed.spec_from_env(os.environ)
    device = distributed.setup(spec, "cpu") if spec else torch.device("cpu")
    torch.set_num_threads(args.threads)
    cfg = RunConfig().replace(**{"train.steps": args.steps, "train.val_every": 10 * args.steps,
                                 "data.batch_size": args.batch_size, "data.crop_size": args.crop_size})
    out = Path(args.out)
    result = fit(cfg, data=args.data, out=out, device=device, progress=False)
    distributed.teardown()
    if spec is None or spec.rank == 0:
        world = spec.world_size if spec else 1
        print(json.dumps({"procs": world, "steps": result.steps, "seconds": result.seconds,
                          "samples": result.steps * args.batch_size * world}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process (default: cores / procs)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", default=str(DATA / "ddp_nuclei"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    from pixelgroup.data.synth import write_synthetic

    if not Path(args.data, "images").is_dir():
        write_synthetic(args.data, kind="nuclei", n=32, size=256, seed=0)
    cores = os.cpu_count() or 1
    print(f"{'procs':>5} {'steps':>6} {'s':>7} {'steps/s':>8} {'samples/s':>10}")
    for n in args.procs:
        out = DATA / f"ddp_run_{n}"
        if out.exists():
            subprocess.run(["rm", "-rf", str(out)], check=True)
        threads = args.threads or max(1, cores // n)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", __file__,
               "--worker", "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--crop-size",
               str(args.crop_size), "--threads", str(threads), "--data", args.data, "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
        print(f"{n:>5} {r['steps']:>6} {r['seconds']:>7.1f} {r['steps'] / r['seconds']:>8.2f} "
              f"{r['samples'] / r['seconds']:>10.1f}")


if __name__ == "__main__":
    main()
