"""Weighted kNN probe against a brute-force reference."""

from __future__ import annotations

import math

import pytest
import torch

from medssl.ssl.knn import knn_metrics, knn_scores


def test_knn_scores_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(12, 4, generator=g), torch.randn(5, 4, generator=g)
    labels = torch.randint(0, 2, (12,), generator=g)
    got = knn_scores(bank, labels, queries, k=3, tau=0.1)
    for q in range(5):
        sims = [
            float(torch.nn.functional.cosine_similarity(queries[q], bank[i], dim=0))
            for i in range(12)
        ]
        top = sorted(range(12), key=lambda i: -sims[i])[:3]
        w = [math.exp(sims[i] / 0.1) for i in top]
        expected = sum(wi * int(labels[i]) for wi, i in zip(w, top, strict=True)) / sum(w)
        assert got[q].item() == pytest.approx(expected, rel=1e-6)


def test_separable_features_score_perfectly() -> None:
    bank = torch.tensor([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]])
    labels = torch.tensor([1, 1, 0, 0])
    queries = torch.tensor([[2.0, 0.0], [-2.0, 0.3]])
    m = knn_metrics(knn_scores(bank, labels, queries, k=2), torch.tensor([1, 0]))
    assert m == {"knn_auroc": 1.0, "knn_acc": 1.0}


def test_single_class_gives_nan_auroc() -> None:
    m = knn_metrics(torch.tensor([0.2, 0.9]), torch.tensor([1, 1]))
    assert math.isnan(m["knn_auroc"]) and m["knn_acc"] == 0.5
