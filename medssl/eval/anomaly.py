"""Normal-only anomaly scores: kNN distance to a memory bank of normal embeddings.

The memory bank holds L2-normalised embeddings of the labelled *normal* training images
only, so the ranking needs no abnormal label at all. A test image's anomaly score is its
mean cosine distance to the ``k`` nearest bank entries (deep nearest-neighbour anomaly
detection, Bergman, Cohen & Hoshen 2020; PANDA, Reiss et al. 2021). Large banks are
reduced by greedy k-center coreset selection as in PatchCore (Roth et al., CVPR 2022;
Sener & Savarese, ICLR 2018), which keeps the bank's coverage of normal appearance.

Distances are not probabilities: :func:`platt_fit` maps them to the abnormal-class
probability with a one-feature logistic regression on the validation split (Platt 1999),
constrained to be increasing so that the ranking, hence AUROC, is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

_MIN_SLOPE = 1e-3  # Platt slope floor (standardised units): keeps the mapping increasing


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, ``(N, D) -> (N, D)`` float64 (zero rows stay zero)."""
    arr = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norm > 0, norm, 1.0)


def greedy_coreset(features: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Greedy k-center selection (Sener & Savarese 2018), PatchCore's memory-bank reduction.

    Starting from a seeded random point, repeatedly add the point farthest from the
    selected set, which bounds the covering radius within a factor 2 of optimal.

    Args:
        features: ``(N, D)``.
        n: points to keep; all are kept when ``n >= N``.
        seed: choice of the first point.

    Returns:
        ``(min(n, N),)`` indices into ``features``, in selection order.
    """
    if n < 1:
        raise ValueError(f"coreset size must be >= 1, got {n}")
    x = np.asarray(features, dtype=np.float64)
    if n >= len(x):
        return np.arange(len(x))
    chosen = [int(np.random.default_rng(seed).integers(len(x)))]
    dist = np.linalg.norm(x - x[chosen[0]], axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def build_memory_bank(
    features: np.ndarray, labels: np.ndarray, max_size: int = 0, seed: int = 0
) -> np.ndarray:
    """Memory bank of the normal training embeddings.

    Args:
        features: ``(N, D)`` embeddings of the labelled training images.
        labels: ``(N,)`` in {0, 1}; only the normal (0) rows enter the bank.
        max_size: coreset size cap (0: keep every normal embedding).
        seed: coreset seed.

    Returns:
        ``(M, D)`` L2-normalised normal embeddings.

    Raises:
        ValueError: when no normal image is labelled.
    """
    normal = l2_normalise(np.asarray(features)[np.asarray(labels) == 0])
    if len(normal) == 0:
        raise ValueError("the kNN memory bank needs at least one normal training image")
    if max_size and len(normal) > max_size:
        normal = normal[greedy_coreset(normal, max_size, seed)]
    return normal


def knn_scores(bank: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Mean cosine distance of each query to its ``k`` nearest bank entries.

    Args:
        bank: ``(M, D)`` L2-normalised normal embeddings.
        queries: ``(N, D)`` embeddings (normalised here).
        k: neighbours (capped at M).
        chunk: queries per distance block (bounds memory at ``chunk * M`` floats).

    Returns:
        ``(N,)`` float64 anomaly scores in [0, 2]; higher means more abnormal.
    """
    if k < 1:
        raise ValueError(f"finetune.knn_k must be >= 1, got {k}")
    q = l2_normalise(queries)
    kk = min(k, len(bank))
    out = np.empty(len(q))
    for start in range(0, len(q), chunk):
        dist = 1.0 - q[start : start + chunk] @ bank.T  # (c, M)
        nearest = np.partition(dist, kk - 1, axis=1)[:, :kk]
        out[start : start + chunk] = nearest.mean(axis=1)
    return np.clip(out, 0.0, 2.0)


@dataclass(frozen=True)
class Platt:
    """``p = sigmoid(slope * (s - centre) / spread + intercept)``, slope > 0."""

    centre: float
    spread: float
    slope: float
    intercept: float

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(N,)`` for raw scores ``(N,)``."""
        z = (np.asarray(scores, dtype=np.float64) - self.centre) / self.spread
        return np.asarray(1.0 / (1.0 + np.exp(-(self.slope * z + self.intercept))))


def platt_fit(scores: np.ndarray, labels: np.ndarray) -> Platt:
    """Fit Platt scaling on validation scores (Platt 1999), increasing by construction.

    Args:
        scores: ``(M,)`` raw validation scores (higher = more abnormal).
        labels: ``(M,)`` in {0, 1}, both classes present.

    Returns:
        The fitted :class:`Platt` map; its slope is at least a small positive floor, so a
        useless score is mapped to near-constant but still order-preserving probabilities.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if len(np.unique(y)) != 2:
        raise ValueError("Platt scaling needs both classes in the validation labels")
    centre, spread = float(s.mean()), float(s.std()) or 1.0
    model = LogisticRegression(C=1.0).fit(((s - centre) / spread)[:, None], y)
    slope = max(float(model.coef_[0, 0]), _MIN_SLOPE)
    return Platt(centre, spread, slope, float(model.intercept_[0]))
