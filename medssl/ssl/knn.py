"""Weighted k-nearest-neighbour probe of frozen features (Wu et al., CVPR 2018).

The standard monitor of self-supervised training (also in DINO, Caron et al. 2021):
labelled training images form the memory bank, labelled validation images are classified
by a vote of their k most cosine-similar bank entries weighted by ``exp(sim / tau)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score


def knn_scores(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, tau: float = 0.07
) -> torch.Tensor:
    """Probability of class 1 for each query.

    Args:
        bank: ``(N, D)`` features of labelled images.
        bank_labels: ``(N,)`` in {0, 1}.
        queries: ``(Q, D)`` features to classify.
        k: neighbours (capped at N).
        tau: vote temperature.

    Returns:
        ``(Q,)`` float64 in [0, 1].
    """
    if bank.shape[0] == 0:
        raise ValueError("the kNN memory bank is empty")
    sim = F.normalize(queries.double(), dim=1) @ F.normalize(bank.double(), dim=1).T  # (Q, N)
    top, idx = sim.topk(min(k, bank.shape[0]), dim=1)  # (Q, k)
    weights = torch.exp(top / tau)
    votes = bank_labels.double()[idx]  # (Q, k)
    return (weights * votes).sum(dim=1) / weights.sum(dim=1)


def knn_metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """AUROC (NaN with one class) and accuracy at 0.5 of kNN scores ``(Q,)`` vs labels ``(Q,)``."""
    y = labels.numpy().astype(int)
    s = scores.numpy()
    auroc = float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")
    return {"knn_auroc": auroc, "knn_acc": float(((s > 0.5).astype(int) == y).mean())}
