"""One epoch of self-supervised training: the inner loop, nothing else.

Logging, checkpointing and stopping are decided by the caller's ``after_step`` hook, so
this loop reads as the textbook sequence (views -> loss -> backward -> step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Position:
    """Where a run is.

    Attributes:
        epoch: current epoch (0-based).
        step_in_epoch: optimizer steps already taken in this epoch.
        global_step: optimizer steps taken since the start of the run.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


@dataclass(frozen=True)
class StepOutput:
    """What one step produced (all detached).

    Attributes:
        loss: scalar loss.
        features: ``(B', D)`` encoder features of the batch (views stacked).
        lr: learning rate used for this step.
    """

    loss: torch.Tensor
    features: torch.Tensor
    lr: float


#: Called after every optimizer step; returns True to stop the epoch (e.g. on SIGTERM).
StepHook = Callable[[Position, StepOutput], bool]
#: Called right after ``optimizer.step()`` with the new global step (e.g. BYOL's teacher).
UpdateHook = Callable[[int], None]


def embedding_std(features: torch.Tensor) -> float:
    """Collapse monitor: mean over dimensions of the batch std of L2-normalised features.

    About ``1 / sqrt(D)`` for well-spread features and 0 for a collapsed encoder (Chen & He,
    "Exploring simple siamese representation learning", CVPR 2021, Sec. 4.1).

    Args:
        features: ``(B, D)``, B >= 2.
    """
    return float(F.normalize(features.float(), dim=1).std(dim=0).mean())


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    position: Position,
    *,
    device: torch.device,
    bf16: bool,
    after_step: StepHook,
    after_update: UpdateHook | None = None,
) -> bool:
    """Train on every batch of ``loader`` once.

    Args:
        model: maps views ``(B, V, C, *spatial)`` to ``(loss, features)``.
        loader: yields view batches ``(B, V, C, *spatial)``.
        optimizer: updates ``model``.
        scheduler: stepped once per optimizer step.
        position: advanced in place after each step.
        device: where the model lives.
        bf16: autocast the forward pass to bfloat16.
        after_step: hook called after each step.
        after_update: called with the new global step right after each optimizer step.

    Returns:
        True when the hook asked to stop before the end of the epoch.
    """
    model.train()
    for views in loader:
        views = views.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, features = model(views)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = float(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        position.step_in_epoch += 1
        position.global_step += 1
        if after_update is not None:
            after_update(position.global_step)
        if after_step(position, StepOutput(loss.detach(), features, lr)):
            return True
    return False
