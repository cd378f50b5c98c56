"""Several training processes through PyTorch's own ``torch.distributed`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m pixelgroup train ...`` starts N processes and tells each its rank in
environment variables; the CLI reads them (:func:`spec_from_env`) and calls :func:`setup`, which
joins the process group (gloo on CPU, NCCL on CUDA with one GPU per process, ``LOCAL_RANK`` picking
it). :func:`~pixelgroup.engine.train.fit` then trains with DDP whenever a process group of more than
one process is initialised, whoever initialised it (the CLI, or a user's own script).

What each rank does: every rank draws different training crops (the crop stream is split by rank),
gradients are averaged by DDP, the learning-rate schedule and the stop decision are agreed on every
step (so the ranks' weights stay identical), and rank 0 alone validates, writes checkpoints,
TensorBoard scalars and the progress bar while the others wait.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

TIMEOUT = timedelta(minutes=30)
"""How long a rank waits for the others at a collective (a validation on rank 0 included)."""


@dataclass(frozen=True)
class DistributedSpec:
    """Where this process stands in a multi-process run (what ``torchrun`` says in the environment)."""

    rank: int
    world_size: int
    local_rank: int


def spec_from_env(env: Mapping[str, str]) -> DistributedSpec | None:
    """The spec from ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by ``torchrun``), or ``None``
    for a single process."""
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        return DistributedSpec(rank=int(env["RANK"]), world_size=world, local_rank=int(env.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"WORLD_SIZE, RANK and LOCAL_RANK must be integers set by torchrun ({err}); start several processes "
            "with 'torchrun --nproc_per_node=N -m pixelgroup train ...'"
        ) from None


def setup(spec: DistributedSpec, device: str | torch.device) -> torch.device:
    """Join the process group of ``spec`` and return this process's device.

    CUDA: backend NCCL and device ``cuda:LOCAL_RANK`` (one GPU per process). CPU: backend gloo. The
    rendezvous address comes from ``MASTER_ADDR``/``MASTER_PORT`` (set by ``torchrun``).
    """
    device = torch.device(device)
    if device.type == "cuda":
        if spec.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {spec.local_rank} but only {torch.cuda.device_count()} CUDA device(s); start at most "
                "one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", spec.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=spec.rank, world_size=spec.world_size, timeout=TIMEOUT)
    log.info("rank %d of %d on %s (%s)", spec.rank, spec.world_size, device, backend)
    return device


def teardown() -> None:
    """Leave the process group (if one is initialised).

    Objects still tied to it (a finished run's DistributedDataParallel reducer, kept alive by a
    reference cycle) are collected first: destroyed after the group, at interpreter exit, gloo can
    abort the process ("terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@dataclass(frozen=True)
class Ranks:
    """This process's view of the run: ``rank`` of ``world_size`` (``0`` of ``1`` alone)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> Ranks:
        """From an initialised process group, else a single process."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        """Rank 0: validates, saves, logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def agree_max(self, values: list[float], device: torch.device) -> list[float]:
        """Each value's maximum over the ranks (a no-op alone): progress and stop flags agreed."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Copy rank 0's buffers (normalisation statistics) to every rank. DDP averages gradients, so
        parameters agree anyway; running statistics are updated by each rank's own batches."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()
