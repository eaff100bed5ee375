"""Reproducible pretraining: seeding, deterministic kernels and the flags of the run record.

MONAI ``set_determinism`` seeds torch, NumPy and ``random``; on GPU deterministic cuBLAS and
cuDNN kernels are demanded too. CPU kernels are deterministic at a fixed thread count
already (the tests check that reruns are bit-identical); ``torch.use_deterministic_algorithms``
would only swap in slower ones there (not benchmarked by a script here).
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import monai
import numpy as np
import torch
from monai.utils.misc import set_determinism

from medssl.train import distributed as dist
from medssl.train.pretrain_config import PretrainConfig


def _set_determinism(c: PretrainConfig, device: torch.device) -> None:
    """Seed everything; on GPU, also demand deterministic kernels (cuDNN, cuBLAS, atomics)."""
    set_determinism(seed=c.seed)  # torch, numpy, random; cuDNN deterministic, no benchmark
    if device.type != "cuda":
        return
    if c.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


@contextmanager
def seeded(c: PretrainConfig, device: torch.device) -> Iterator[None]:
    """Seed and set deterministic kernels for a run; undo both afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    _set_determinism(c, device)
    try:
        yield
    finally:
        set_determinism(seed=None)
        torch.use_deterministic_algorithms(previous)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed NumPy and ``random`` from the worker's torch seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)  # noqa: NPY002 (the legacy global RNG that libraries use)
    random.seed(s)


def determinism_flags(c: PretrainConfig, info: dist.DistInfo) -> dict[str, Any]:
    """The settings that decide whether a rerun is bit-identical, for the run record."""
    return {
        "seed": c.seed,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "torch_num_threads": torch.get_num_threads(),
        "world_size": info.world_size,
        "device": str(info.device),
        "precision": c.precision,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
