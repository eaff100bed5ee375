"""Resumable training checkpoints, safe to load (``torch.load(weights_only=True)``).

A checkpoint holds everything that decides the rest of a run: model, optimizer and
scheduler states, the position (epoch, step within the epoch, global step), the random
number generator states of every rank, the metric history (so the curves survive DVC
deleting the stage's plots), and a fingerprint of the configuration and the training
images, so a run never resumes from a checkpoint of a different experiment. Writes are
atomic (temporary file, then ``os.replace``): a kill during a save leaves the previous
checkpoint intact. :func:`training_state` and :func:`restore_training_state` turn a run
into such a checkpoint and back.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medssl.ssl.method import SSLMethod
from medssl.train.loop import Position

FORMAT = 1
LAST = "last.pt"  #: the checkpoint a restarted run resumes from
FINAL = "final.pt"  #: the state at the end of a finished run (never resumed)


def fingerprint(config: Mapping[str, Any], image_ids: Sequence[str]) -> str:
    """SHA-256 of the JSON of the training configuration and the ordered training images."""
    blob = json.dumps({"config": config, "images": list(image_ids)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's RNG states (torch CPU, CUDA device, NumPy global, Python ``random``)."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())  # noqa: NPY002 (the global RNG)
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002
        ("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))


def save_atomic(obj: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(dict(obj), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint with the safe unpickler (tensors and plain containers only).

    Raises:
        ValueError: when the file is not a medssl checkpoint of a known format.
    """
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not a medssl pretraining checkpoint (format {FORMAT})")
    return obj


def find_resumable(directory: Path, expected: str) -> dict[str, Any] | None:
    """The ``last.pt`` checkpoint of the same experiment, if any.

    Args:
        directory: checkpoint folder.
        expected: fingerprint of the current configuration and data.

    Returns:
        The checkpoint, or None when there is none or it belongs to another experiment
        (a message says so; the new run then starts from scratch and overwrites it).
    """
    path = directory / LAST
    if not path.exists():
        return None
    ckpt = load(path)
    if ckpt.get("fingerprint") != expected:
        print(f"{path}: checkpoint of a different configuration or data; starting afresh")
        return None
    return ckpt


def training_state(
    *,
    fingerprint: str,
    config: Mapping[str, Any],
    method: SSLMethod,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    position: Position,
    steps_per_epoch: int,
    rng: Sequence[object],
    history: Sequence[Mapping[str, float]],
    world_size: int,
) -> dict[str, Any]:
    """The checkpoint of a run at ``position`` (for :func:`save_atomic`).

    Args:
        fingerprint: of the configuration and training images (see :func:`fingerprint`).
        config: the configuration as JSON values.
        method: the unwrapped method (its ``state_dict`` keys carry no DDP prefix).
        optimizer: its state.
        scheduler: its state.
        position: where the run is; the last step of an epoch resumes at the next epoch.
        steps_per_epoch: optimizer steps of an epoch.
        rng: every rank's :func:`capture_rng`, in rank order.
        history: the logged rows so far.
        world_size: number of processes.
    """
    epoch, step_in_epoch = position.epoch, position.step_in_epoch
    if step_in_epoch == steps_per_epoch:
        epoch, step_in_epoch = epoch + 1, 0
    return {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "config": dict(config),
        "model": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "global_step": position.global_step,
        "rng": list(rng),
        "history": history,
        "world_size": world_size,
    }


def restore_training_state(
    state: Mapping[str, Any],
    method: SSLMethod,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rank: int,
    device: torch.device,
) -> Position:
    """Inverse of :func:`training_state` for this rank: load every state, return the position."""
    method.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    position = Position(state["epoch"], state["step_in_epoch"], state["global_step"])
    restore_rng(state["rng"][rank], device)
    return position
