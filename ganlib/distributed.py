"""Data parallelism across processes: the same GAN on every rank, each on its share of the batch.

Started by ``torchrun`` (one node or several), a training script calls ``setup()``, which reads
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins the process group: NCCL
between GPUs, gloo on CPUs. Without torchrun every function here is a no-op, so lessons run unchanged.

What changes under N ranks, and where (as NVlabs' StyleGAN3 does it, not with DDP wrappers):

- **Gradients** are averaged across ranks at every optimiser step, in ``updates.update``, the one function
  every step of every model family goes through: one flat all-reduce of the gradients of the parameters
  that optimiser steps. DDP would hook the backward instead, and a GAN trips it three ways: D runs twice
  (real, fake) before one backward while DDP re-broadcasts buffers (batch norm, spectral norm's u) in
  place; the G step leaves D's parameters unused; and a gradient penalty's double backward does not go
  through DDP. Averaging at the step has none of these; it gives up overlapping communication with the
  backward, which for the course's models (at most a few million parameters) costs under a millisecond
  on NVLink.
- **The batch**: a recipe's ``batch_size`` is the global batch; each rank draws ``local_batch(batch_size)``
  samples of its own (``train.fit_schedule`` reseeds each rank differently at the start of a run, after
  making the models identical by a broadcast from rank 0).
- **Logs** are means over ranks (``train.fit_schedule`` all-reduces the logged sums it already reads back
  once per interval), so a NaN on one rank makes every rank raise the same ``TrainingDiverged``.
- **Rank 0** alone shows progress, runs ``on_log`` and writes checkpoints; a checkpoint stores every
  rank's RNG state, and each rank restores its own on resume.
- **Batch-coupled layers stay per rank**: batch norm normalises with each rank's statistics, minibatch
  standard deviation groups within each rank's batch. ``sync_batchnorm`` makes batch norm global, on
  CUDA only.
"""

from __future__ import annotations

import os
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn


def launched() -> bool:
    """True in a process torchrun started with more than one rank in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def active() -> bool:
    """True once this process is in a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that logs, shows progress and writes files."""
    return rank() == 0


def setup(device: str | torch.device | None = None) -> torch.device:
    """Join torchrun's process group (NCCL on CUDA, gloo on CPU) and return this rank's device.

    ``device``: ``"cuda"`` or ``"cpu"`` (default: CUDA where there is one). On CUDA each rank takes the
    GPU ``LOCAL_RANK``. Without torchrun this returns the device and starts nothing.
    """
    kind = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type
    if not launched():
        return torch.device(kind)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    here = torch.device("cuda", local) if kind == "cuda" else torch.device("cpu")
    if kind == "cuda":
        torch.cuda.set_device(here)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", device_id=here if kind == "cuda" else None)
    return here


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_batch(global_batch: int) -> int:
    """This rank's share of a global batch; the global batch must split evenly."""
    n = world()
    if global_batch % n:
        raise ValueError(f"the global batch of {global_batch} does not split evenly across {n} ranks: "
                         f"choose a batch size divisible by {n}")
    return global_batch // n


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each gradient by its mean over ranks: one flat all-reduce. Parameters without a gradient
    (None on every rank: the same code runs everywhere) are left without one, as the optimiser skips them."""
    if not active():
        return
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for p, g in zip(with_grad, flat.split([p.numel() for p in with_grad])):
        p.grad.copy_(g.view_as(p.grad))


def optimizer_params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


def mean(t: torch.Tensor) -> torch.Tensor:
    """``t`` averaged over ranks (a new tensor; ``t`` itself in one process)."""
    if not active():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


@torch.no_grad()
def broadcast(*modules: nn.Module | None) -> None:
    """Make every rank's copy of ``modules`` rank 0's: parameters and buffers."""
    if not active():
        return
    for m in modules:
        if m is None:
            continue
        for t in (*m.parameters(), *m.buffers()):
            dist.broadcast(t.data, src=0)


def gather(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if active():
        dist.barrier()


def reseed_per_rank() -> None:
    """Give each rank a random stream of its own, derived from the current one: ``seed * world + rank``,
    as NVlabs' code seeds. Without it, ranks seeded alike (as ``profiles.setup`` seeds every process)
    would draw the same images and latents: N copies of one batch."""
    if not active():
        return
    from .profiles import seed_everything

    base = int(torch.randint(0, 2**31 - 1, (1,)))  # the global CPU generator: the same on ranks seeded alike
    seed_everything(base * world() + rank())


def sync_batchnorm(module: nn.Module, *, penalty: bool = False) -> nn.Module:
    """Batch norm over the global batch (``torch.nn.SyncBatchNorm``) instead of each rank's share.

    CUDA only (torch's SyncBatchNorm refuses CPU tensors under more than one rank), and not for a
    discriminator that takes a gradient penalty or R1: their double backward through SyncBatchNorm is
    not implemented in torch (pytorch/pytorch#61222)."""
    if penalty:
        raise ValueError("sync_batchnorm: not for a model that takes a gradient penalty or R1 (double backward through "
                         "SyncBatchNorm is not implemented in torch); keep per-rank batch norm, or use a norm "
                         "without batch statistics (layer norm, none) as a penalised critic should")
    device = next(module.parameters()).device
    if device.type != "cuda":
        raise ValueError(f"sync_batchnorm: SyncBatchNorm runs on CUDA only, this model is on {device}; on CPU each "
                         "rank's batch norm uses its own share of the batch")
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)
