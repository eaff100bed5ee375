"""What a pretraining run reports: logged rows (loss, lr, collapse monitor) and the kNN probe.

Rows are logged on rank 0 only, kept as the history stored in the checkpoint (so a resumed
run replays its curves) and passed to a callback (dvclive in the stage script).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from medssl.ssl.knn import knn_metrics, knn_scores
from medssl.ssl.method import SSLMethod
from medssl.train import distributed as dist
from medssl.train.loop import StepOutput, embedding_std

#: ``(step, {metric: value})``, called on rank 0 for every logged row (also when a resumed
#: run replays the history stored in its checkpoint).
MetricsCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class ProbeSet:
    """Labelled images for the kNN probe: a training-split bank and validation queries.

    Attributes:
        bank: ``(N, 1, *spatial)`` preprocessed images.
        bank_labels: ``(N,)`` in {0, 1}.
        queries: ``(Q, 1, *spatial)``.
        query_labels: ``(Q,)`` in {0, 1}.
    """

    bank: torch.Tensor
    bank_labels: torch.Tensor
    queries: torch.Tensor
    query_labels: torch.Tensor


class RunLog:
    """The logged rows of one pretraining run (one per process; rank 0 records).

    Args:
        info: rank and device.
        log_every: optimizer steps between logged rows (loss averaged over them).
        on_metrics: rank-0 callback for every row, or None.
    """

    def __init__(
        self, info: dist.DistInfo, log_every: int, on_metrics: MetricsCallback | None
    ) -> None:
        self.info = info
        self.log_every = log_every
        self.on_metrics = on_metrics
        self.history: list[dict[str, float]] = []
        self.loss_sum = torch.zeros((), device=info.device)
        self.loss_count = 0
        self.bar: tqdm[Any] | None = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record a row (rank 0): history for the checkpoint, callback for dvclive."""
        if not self.info.is_main:
            return
        self.history.append({"step": step, **metrics})
        if self.on_metrics is not None:
            self.on_metrics(step, metrics)

    def replay(self, history: Sequence[Mapping[str, float]]) -> None:
        """Send the rows of a resumed checkpoint to the callback again."""
        for row in history:
            metrics = {k: float(v) for k, v in row.items() if k != "step"}
            self.log(int(row["step"]), metrics)

    def step_metrics(self, out: StepOutput, step: int) -> None:
        """Accumulate the loss; every ``log_every`` steps, log loss, lr and embedding std."""
        self.loss_sum += out.loss.float()
        self.loss_count += 1
        if step % self.log_every != 0:
            return
        loss = float(self.loss_sum) / self.loss_count
        self.loss_sum.zero_()
        self.loss_count = 0
        if not math.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss} at step {step} (pretrain.lr?)")
        metrics = {
            "train/loss": loss,
            "train/lr": out.lr,
            "train/embedding_std": embedding_std(out.features),
        }
        self.log(step, metrics)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)


@torch.no_grad()
def _features(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    device: torch.device,
    bf16: bool,
    batch: int = 64,
) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(embed(images[i : i + batch].to(device)).float().cpu())
    return torch.cat(out)


def run_probe(
    method: SSLMethod, probe: ProbeSet, k: int, device: torch.device, bf16: bool
) -> dict[str, float]:
    """kNN AUROC and accuracy of the method's current encoder on the validation queries."""
    was_training = method.training
    method.train(False)
    bank = _features(method.embed, probe.bank, device, bf16)
    queries = _features(method.embed, probe.queries, device, bf16)
    method.train(was_training)
    scores = knn_scores(bank, probe.bank_labels, queries, k)
    return {f"val/{name}": v for name, v in knn_metrics(scores, probe.query_labels).items()}
