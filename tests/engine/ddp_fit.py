"""Run by the tests under ``torchrun``: train through the Python API on every rank, then write a
digest of this rank's weights to ``OUT/rank{RANK}.sha``. ``--data`` may be given per rank
(``--bad-rank R`` gives rank R a folder that does not exist, to check that a failure stops all)."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import torch

from pixelgroup.config import RunConfig
from pixelgroup.engine import distributed
from pixelgroup.engine.train import fit


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--bad-rank", type=int, default=None)
    args = ap.parse_args()
    spec = distributed.spec_from_env(os.environ)
    device = distributed.setup(spec, "cpu")
    data = args.data + "_missing" if spec.rank == args.bad_rank else args.data
    cfg = RunConfig().replace(**{"model.width": 8, "model.depth": 2, "data.crop_size": 32, "data.batch_size": 2,
                                 "train.steps": args.steps, "train.val_every": 2})
    try:
        result = fit(cfg, data=data, out=args.out, device=device, resume=args.resume, progress=False)
    finally:
        distributed.teardown()
    with open(os.path.join(args.out, f"rank{spec.rank}.sha"), "w") as fh:
        fh.write(f"{result.steps} {weights_digest(result.model)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
