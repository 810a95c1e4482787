"""torchrun glue: process group set-up from the environment, rank helpers, a resumable sampler.

Launched plainly, everything runs in one process; launched by ``torchrun --nproc_per_node=K``, each
process joins a process group (gloo on CPU, nccl on CUDA) as documented by torchrun (multi-node too:
``--nnodes``, ``--rdzv-endpoint``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from recapture.devices import check_device


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks this rank's CUDA device when available, else the CPU; DeviceError for a name that is
    not a device of this machine."""
    name = check_device(name, allow_auto=True)
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def setup_distributed(device: str = "auto") -> DistributedContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; otherwise a one-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def cleanup_distributed(wait_for_peers: bool = True) -> None:
    """Leave the process group. With ``wait_for_peers`` (a normal end) all ranks meet at a barrier first, so
    none tears down its connections while another still uses them: a gloo rank whose peer had already left
    was aborted at exit ("terminate called without an active exception", 1 run in 4 of the two-process
    test). After an error no barrier is waited for (the failed peer may never come)."""
    if dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Mean of a tensor over ranks (identity in one process)."""
    if not context.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / context.world_size


class ResumableDistributedSampler(Sampler[int]):
    """DistributedSampler-like: a per-epoch permutation seeded by ``(seed, epoch)``, split across ranks
    (padded to a multiple of the world size), that can start ``start_batch`` batches into an epoch.

    ``set_epoch`` must be called each epoch (as with DistributedSampler); ``set_start`` skips the
    batches already consumed before a resume, so resumed training sees exactly the same samples.
    """

    def __init__(self, length: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True) -> None:
        if length <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.length, self.batch_size = length, batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch = 0
        self.start_batch = 0
        self.per_rank = -(-length // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start_batch: int) -> None:
        self.start_batch = start_batch

    def batches_per_epoch(self) -> int:
        """Full batches per rank and epoch (the trainer drops a final partial batch)."""
        return self.per_rank // self.batch_size

    def epoch_indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        total = self.per_rank * self.world_size
        order = (order * (total // self.length + 1))[:total]
        return order[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()[self.start_batch * self.batch_size:]
        return iter(indices)

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start_batch * self.batch_size)
