"""Distributed data parallel helpers: launch, process group, global-batch gather, sampler.

``pretrain.nproc > 1`` on one machine: the stage script re-executes itself under
``torch.distributed.run --standalone`` (so ``dvc.yaml`` keeps a single command). Across
machines, start ``torchrun`` yourself on each node (see the README); the script then sees
``RANK``/``WORLD_SIZE`` and does not re-launch. Backend: NCCL on GPUs, Gloo on CPU.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 writes logs, checkpoints and outputs).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: where this process trains.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def under_torchrun() -> bool:
    """Whether ``torchrun`` (or another launcher) set the rank variables."""
    return all(v in os.environ for v in TORCHRUN_VARS)


def torchrun_argv(nproc: int, script: str, args: Sequence[str]) -> list[str]:
    """Command line that runs ``script args`` on ``nproc`` local processes."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        script,
        *args,
    ]


def relaunch_under_torchrun(nproc: int, script: str, args: Sequence[str]) -> None:
    """Replace this process by ``torchrun`` (same PID, so SIGTERM reaches its agent)."""
    argv = torchrun_argv(nproc, script, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def resolve_device(name: str, local_rank: int) -> torch.device:
    """``"auto"`` -> the local GPU if there is one, else CPU; ``"cpu"``; ``"cuda"``."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no GPU is visible")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; a one-process job otherwise.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        The rank, world size and device of this process.
    """
    if not under_torchrun():
        return DistInfo(0, 1, 0, resolve_device(device, 0))
    local_rank = int(os.environ["LOCAL_RANK"])
    dev = resolve_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)


def teardown() -> None:
    """Leave the process group, if any, once every rank is done with it.

    The barrier keeps a fast rank from destroying the group while another still runs a
    collective (gloo then aborts with "terminate called without an active exception").
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` ``(b, ...)`` from all ranks into ``(world * b, ...)``.

    Differentiable: the backward pass sums the gradients that every rank computed for this
    rank's slice (``torch.distributed.nn.functional.all_gather``). With DDP's gradient
    averaging, a loss computed on the gathered batch on every rank thus gets the gradient
    of the global-batch loss.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    gather: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] = all_gather  # torch: untyped
    return torch.cat(gather(x), dim=0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (e.g. a SIGTERM seen by one)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_main(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (``obj`` itself in a one-process job)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)  # replaces box[0] by rank 0's object
    return box[0]


def barrier() -> None:
    """Wait for all ranks."""
    if dist.is_initialized():
        dist.barrier()


class EpochSampler(DistributedSampler[Any]):
    """``DistributedSampler`` that yields ``(epoch, index)`` keys and resumes mid-epoch.

    The permutation of an epoch is the one of ``DistributedSampler`` (seeded with
    ``seed + epoch`` through :meth:`set_epoch`); :meth:`set_start` skips the samples this
    rank already trained on before a checkpoint. Yielding the epoch with each index lets
    persistent DataLoader workers seed each image's views from ``(seed, epoch, index)``.

    Args:
        dataset: a map-style dataset (only its length is used).
        num_replicas: world size.
        rank: this rank.
        seed: shuffling seed, the same on all ranks.
    """

    def __init__(self, dataset: Dataset[Any], num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank in the current epoch."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start must be in [0, {self.num_samples}], got {start}")
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.start :]
        return iter([(self.epoch, int(i)) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.start
