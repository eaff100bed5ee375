"""Patient-level seeded splits and nested, stratified label budgets.

Splitting by image leaks a patient's anatomy across train and test and inflates results;
every split here is by patient key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from medssl.data.rows import listed_rows

SPLITS = ("train", "val", "test")


class SplitError(ValueError):
    """Fractions, pins or budgets that cannot be satisfied."""


def assign_splits(
    patients: Sequence[str],
    fractions: Mapping[str, float],
    seed: int,
    pinned: Mapping[str, str] | None = None,
    strata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Assign each patient to train/val/test, stratified.

    Within each stratum (e.g. patients with an abnormal label, with only normal labels,
    unlabelled) patients are sorted, permuted with a seeded generator and dealt to the split
    furthest below its target share, so every split gets its share of each stratum. Pinned
    patients keep their split and count towards its share.

    Args:
        patients: patient keys (duplicates ignored).
        fractions: ``{"train": .6, "val": .2, "test": .2}``, summing to 1.
        seed: permutation seed.
        pinned: ``patient -> split`` fixed by the label CSV.
        strata: ``patient -> stratum name``; one stratum when omitted.

    Returns:
        ``patient -> split``.
    """
    if set(fractions) != set(SPLITS) or any(f < 0 for f in fractions.values()):
        raise SplitError(f"split fractions must give train, val, test >= 0, got {fractions}")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise SplitError(f"split fractions must sum to 1, got {sum(fractions.values()):.3f}")
    pinned = dict(pinned or {})
    strata = strata or {}
    groups: dict[str, list[str]] = {}
    for p in sorted(set(patients)):
        groups.setdefault(strata.get(p, ""), []).append(p)
    rng = np.random.default_rng(seed)
    out = dict(pinned)
    for name in sorted(groups):
        members = groups[name]
        free = [p for p in members if p not in pinned]
        targets = {s: fractions[s] * len(members) for s in SPLITS}
        counts = {s: sum(1 for p in members if pinned.get(p) == s) for s in SPLITS}
        for idx in rng.permutation(len(free)):
            split = max(SPLITS, key=lambda s: (targets[s] - counts[s], -SPLITS.index(s)))
            out[free[idx]] = split
            counts[split] += 1
    return out


def patient_overlap(splits: pd.DataFrame) -> int:
    """Number of patients found in more than one split (must be 0)."""
    per_patient = splits.groupby("patient_key")["split"].nunique()
    return int((per_patient > 1).sum())


def parse_budget(budget: int | float | str, n_available: int) -> int:
    """Turn a budget spec into a label count.

    Args:
        budget: an absolute count (int >= 1), a fraction in (0, 1] (float), or ``"all"``.
        n_available: labelled training images.

    Returns:
        The number of labels to use.
    """
    if budget == "all":
        return n_available
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise SplitError(f"budget must be a count, a fraction or 'all', got {budget!r}")
    if isinstance(budget, float):
        if not 0 < budget <= 1:
            raise SplitError(f"fractional budget must be in (0, 1], got {budget}")
        return max(2, int(round(budget * n_available)))
    if budget < 2:
        raise SplitError(f"budget must be >= 2 labels (one per class), got {budget}")
    if budget > n_available:
        raise SplitError(f"budget {budget} exceeds the {n_available} labelled training images")
    return budget


def budget_order(labels: pd.DataFrame, seed: int) -> dict[int, list[str]]:
    """A seeded order of labelled training images per class, grouped by patient.

    Taking a prefix of each class's list gives nested budgets: the set for a smaller
    budget is inside the set for a larger one (same seed).

    Args:
        labels: ``image_id, patient_key, label`` of the training split.
        seed: sampling seed.

    Returns:
        ``{0: [image ids], 1: [image ids]}``.
    """
    rng = np.random.default_rng(seed)
    orders: dict[int, list[str]] = {}
    for cls in (0, 1):
        sub = labels[labels["label"] == cls].sort_values("image_id")
        patients = sorted(sub["patient_key"].unique())
        ranked = {p: i for i, p in enumerate(rng.permutation(patients))}
        sub = sub.assign(rank=sub["patient_key"].map(ranked)).sort_values(["rank", "image_id"])
        orders[cls] = sub["image_id"].tolist()
    return orders


def budget_counts(budget: int | float | str, n_pos: int, n_neg: int) -> tuple[int, int]:
    """Abnormal and normal labels a budget draws, stratified by class.

    The abnormal share follows the pool's prevalence, with at least one image of each class.

    Args:
        budget: see :func:`parse_budget`.
        n_pos: labelled abnormal training images.
        n_neg: labelled normal training images.

    Returns:
        ``(abnormal, normal)`` counts.

    Raises:
        SplitError: naming the budget and the class that is short.
    """
    n = parse_budget(budget, n_pos + n_neg)
    for have, name in ((n_pos, "abnormal"), (n_neg, "normal")):
        if have == 0:
            raise SplitError(f"budget {budget!r}: the training split has no {name} labelled images")
    take_pos = min(max(int(round(n * n_pos / (n_pos + n_neg))), 1), n - 1, n_pos)
    take_neg = n - take_pos
    if take_neg > n_neg:
        raise SplitError(
            f"budget {budget!r} needs {take_neg} normal training labels, only {n_neg} labelled"
        )
    return take_pos, take_neg


def select_budget(labels: pd.DataFrame, budget: int | float | str, seed: int) -> list[str]:
    """Pick ``budget`` labelled training images, stratified by class and nested.

    Args:
        labels: ``image_id, patient_key, label`` of the training split.
        budget: see :func:`parse_budget`.
        seed: sampling seed.

    Returns:
        Sorted image ids.

    Raises:
        SplitError: when either class has too few images for the budget.
    """
    orders = budget_order(labels, seed)
    n_pos, n_neg = budget_counts(budget, len(orders[1]), len(orders[0]))
    return sorted(orders[1][:n_pos] + orders[0][:n_neg])


def check_budgets(
    labels: pd.DataFrame, budgets: Sequence[int | float | str]
) -> list[tuple[int | float | str, int, int]]:
    """Check every budget against the training labels before anything is trained.

    Args:
        labels: ``label`` column of the labelled training images.
        budgets: budget specs (``finetune.budgets``).

    Returns:
        ``(budget, abnormal, normal)`` per budget.

    Raises:
        SplitError: naming the first budget that cannot be drawn.
    """
    n_pos = int((labels["label"] == 1).sum())
    n_neg = int((labels["label"] == 0).sum())
    out = []
    for budget in budgets:
        try:
            take = budget_counts(budget, n_pos, n_neg)
        except SplitError as exc:
            raise SplitError(f"finetune.budgets: {exc}") from exc
        out.append((budget, *take))
    return out


def make_splits(
    manifest: pd.DataFrame, labels: pd.DataFrame, fractions: Mapping[str, float], seed: int
) -> pd.DataFrame:
    """Split every ingested image by patient, honouring pins from the label CSV.

    Args:
        manifest: ``image_id, patient_key`` (all ingested images).
        labels: from :func:`medssl.data.labels.join_labels` (``image_id, label,
            split_pin, patient_pin``).
        fractions: split shares.
        seed: split seed.

    Returns:
        ``image_id, patient_key, split`` sorted by image id.

    Raises:
        SplitError: when one patient is pinned to two splits.
    """
    frame = manifest[["image_id", "patient_key"]].merge(
        labels[["image_id", "split_pin", "patient_pin"]], on="image_id", how="left"
    )
    frame = frame.fillna("")
    override = frame["patient_pin"] != ""
    frame.loc[override, "patient_key"] = frame.loc[override, "patient_pin"]
    pins = frame[frame["split_pin"] != ""].groupby("patient_key")["split_pin"].unique()
    clash = [str(p) for p, s in pins.items() if len(s) > 1]
    if clash:
        raise SplitError(_clash_message(frame, labels, clash))
    pinned = {str(p): str(s[0]) for p, s in pins.items()}
    labelled = frame.merge(labels[["image_id", "label"]], on="image_id")
    status = labelled.groupby("patient_key")["label"].max()
    strata = {str(p): ("abnormal" if v == 1 else "normal") for p, v in status.items()}
    assignment = assign_splits(frame["patient_key"].tolist(), fractions, seed, pinned, strata)
    frame["split"] = frame["patient_key"].map(assignment)
    out = frame[["image_id", "patient_key", "split"]].sort_values("image_id")
    return out.reset_index(drop=True)


def _clash_message(frame: pd.DataFrame, labels: pd.DataFrame, clash: Sequence[str]) -> str:
    """Name the label CSV rows that pin one patient's images to different splits."""
    text = f"{len(clash)} patient(s) pinned to two splits by the label CSV"
    if "row" not in labels:
        return text
    ids = frame.loc[frame["patient_key"].isin(set(clash)) & (frame["split_pin"] != ""), "image_id"]
    rows = sorted(int(r) for r in labels.loc[labels["image_id"].isin(set(ids)), "row"])
    return f"label CSV row {listed_rows(rows)}: {text}"


def check_both_classes(splits: pd.DataFrame, labels: pd.DataFrame) -> None:
    """Every split needs normal and abnormal labelled images to be trained or scored.

    Raises:
        SplitError: naming the split and the missing class.
    """
    joined = splits.merge(labels[["image_id", "label"]], on="image_id")
    for split in SPLITS:
        present = set(joined.loc[joined["split"] == split, "label"].astype(int))
        for cls, name in ((0, "normal"), (1, "abnormal")):
            if cls not in present:
                raise SplitError(
                    f"the {split} split has no {name} labelled images; add labels or "
                    "change split.fractions / split.seed"
                )
