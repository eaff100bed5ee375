"""Patient-level splits from the evaluation reserve, and nested, stratified label budgets.

Splitting by image leaks a patient's anatomy across train and test and inflates results;
every split here is by patient key. Pool patients (see :mod:`medssl.data.reserve`) give the
training labels; reserved patients give the test set and, under the ``oracle`` validation
protocol, a separate validation set.

Validation protocols (``split.validation``):

* ``budget`` (default, realistic): every label used for a choice (early stopping, probe
  ``C``, Platt scaling, operating thresholds) comes out of the label budget. Each budget is
  split by patient into a *fit* and a *val* part (:func:`budget_parts`), so ``n_val_labels``
  is counted inside ``n_labels`` (Oliver et al., NeurIPS 2018, section 4.6, "small
  validation sets").
  With ``split.cross_fit``, the budget is dealt into folds of that share instead
  (:func:`budget_folds`): each fold is validated on by models fitted on the others, the
  choices are made on all of the budget's out-of-fold scores, and the chosen model is
  refitted on the whole budget, so ``n_val_labels`` is the budget itself.
* ``oracle``: choices use a fully labelled validation split drawn from reserved patients,
  whatever the budget. Reported as such; it flatters methods that need tuning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medssl.data.reserve import POOL, RESERVE, hash_unit
from medssl.data.rows import listed_rows

if TYPE_CHECKING:
    from medssl.io.pseudonym import Pseudonymizer

SPLITS = ("train", "val", "test")
#: ``split.validation`` values.
PROTOCOLS = ("budget", "oracle")


class SplitError(ValueError):
    """Protocols, pins or budgets that cannot be satisfied."""


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
    labels: pd.DataFrame,
    budgets: Sequence[int | float | str],
    seeds: Sequence[int] = (0,),
    val_fraction: float = 0.0,
    cross_fit: bool = False,
) -> list[tuple[int | float | str, int, int, int]]:
    """Check every budget and seed against the training labels before anything is trained.

    Args:
        labels: ``image_id, patient_key, label`` of the labelled training images.
        budgets: budget specs (``finetune.budgets``).
        seeds: label-subset seeds (``finetune.seeds``).
        val_fraction: within-budget validation share (0: oracle protocol).
        cross_fit: folds of that share (:func:`budget_folds`): every label validates.

    Returns:
        ``(budget, abnormal, normal, validation labels of the first seed)`` per budget.

    Raises:
        SplitError: naming the first budget (and seed) that cannot be drawn.
    """
    out = []
    for budget in budgets:
        n_val = -1
        for seed in seeds:
            try:
                fit: list[str] = []
                if cross_fit:
                    folds = budget_folds(labels, budget, seed, val_fraction)
                    val = sorted(i for fold in folds for i in fold)
                else:
                    fit, val = budget_parts(labels, budget, seed, val_fraction)
            except SplitError as exc:
                raise SplitError(f"finetune.budgets (seed {seed}): {exc}") from exc
            n_val = len(val) if n_val < 0 else n_val
        chosen = labels[labels["image_id"].isin(set(fit) | set(val))]
        n_pos = int((chosen["label"] == 1).sum())
        out.append((budget, n_pos, len(chosen) - n_pos, n_val))
    return out


def _ranked_budget(
    labels: pd.DataFrame, budget: int | float | str, seed: int
) -> tuple[list[str], dict[str, str], list[dict[str, int]]]:
    """The budget's image ids, each image's patient, and per class each patient's rank.

    Ranks follow the order the draw (:func:`budget_order`) takes patients, abnormal class
    first; they decide the validation part and the folds.
    """
    orders = budget_order(labels, seed)
    n_pos, n_neg = budget_counts(budget, len(orders[1]), len(orders[0]))
    patient_of = dict(zip(labels["image_id"], labels["patient_key"], strict=True))
    class_ranks = []
    for ids in (orders[1][:n_pos], orders[0][:n_neg]):
        ranks: dict[str, int] = {}
        for i in ids:
            ranks.setdefault(patient_of[i], len(ranks))
        class_ranks.append(ranks)
    return orders[1][:n_pos] + orders[0][:n_neg], patient_of, class_ranks


def budget_parts(
    labels: pd.DataFrame, budget: int | float | str, seed: int, val_fraction: float
) -> tuple[list[str], list[str]]:
    """Draw a budget and split it by patient into labels to fit on and labels to choose with.

    The budget is the nested, stratified draw of :func:`select_budget`. Within each class,
    patients are ranked in the order the draw takes them; patient ``r`` goes to the
    validation part when ``ceil((r + 1) f) > ceil(r f)`` (``f = val_fraction``): the first
    patient of each class, then every ``1/f``-th. The rule depends only on a patient's rank,
    so parts are nested across budgets as the budgets are (a patient labelled in both
    classes is validation if either rank says so).

    Args:
        labels: ``image_id, patient_key, label`` of the training split.
        budget: see :func:`parse_budget`.
        seed: sampling seed (the draw and hence the parts).
        val_fraction: share of each class's patients held out, in [0, 1); 0 gives no
            validation part (oracle protocol).

    Returns:
        ``(fit, val)`` sorted image ids; together they are the budget.

    Raises:
        SplitError: a part without both classes.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SplitError(f"split.budget_val_fraction must be in [0, 1), got {val_fraction}")
    f = Fraction(val_fraction).limit_denominator(10_000)
    chosen, patient_of, class_ranks = _ranked_budget(labels, budget, seed)
    held: set[str] = set()
    for ranks in class_ranks:
        held |= {p for p, r in ranks.items() if math.ceil((r + 1) * f) > math.ceil(r * f)}
    fit = sorted(i for i in chosen if patient_of[i] not in held)
    val = sorted(i for i in chosen if patient_of[i] in held)
    label_of = dict(zip(labels["image_id"], labels["label"], strict=True))
    parts = (("fit", fit), ("val", val)) if f > 0 else (("fit", fit),)
    for name, ids in parts:
        if {int(label_of[i]) for i in ids} != {0, 1}:
            raise SplitError(
                f"budget {budget!r}: its {name} part lacks a class after holding out "
                f"split.budget_val_fraction={val_fraction} of its patients for validation; "
                "raise the budget (at least 2 patients per class)"
            )
    return fit, val


def budget_folds(
    labels: pd.DataFrame, budget: int | float | str, seed: int, val_fraction: float
) -> list[list[str]]:
    """Deal a budget into folds by patient, for cross-fitted choices.

    ``K = round(1 / val_fraction)`` folds. Within each class, patients are ranked in the
    order the budget draw takes them and patient ``r`` goes to fold ``r mod K`` (a patient
    labelled in both classes takes the lower fold), so fold 0 is the validation part of
    :func:`budget_parts` when ``val_fraction`` is ``1 / K``, every fold is stratified, and
    folds are nested across budgets as the budgets are. Each fold is validated on by a model
    fitted on the others (K-fold cross-validation by group, Hastie et al., *The Elements of
    Statistical Learning*, 2nd ed., section 7.10), so every label of the budget serves both
    fitting and choosing.

    Args:
        labels: ``image_id, patient_key, label`` of the training split.
        budget: see :func:`parse_budget`.
        seed: sampling seed (the draw and hence the folds).
        val_fraction: share of each class's patients per fold, in (0, 0.5].

    Returns:
        ``K`` sorted lists of image ids; together they are the budget.

    Raises:
        SplitError: a fraction out of range, or a fold (or its complement) without both
            classes.
    """
    if not 0.0 < val_fraction <= 0.5:
        raise SplitError(
            "split.budget_val_fraction must be in (0, 0.5] with split.cross_fit, "
            f"got {val_fraction}"
        )
    k = round(1 / val_fraction)
    chosen, patient_of, class_ranks = _ranked_budget(labels, budget, seed)
    fold_of: dict[str, int] = {}
    for ranks in class_ranks:
        for p, r in ranks.items():
            fold_of[p] = min(fold_of.get(p, k), r % k)
    folds = [sorted(i for i in chosen if fold_of[patient_of[i]] == f) for f in range(k)]
    label_of = dict(zip(labels["image_id"], labels["label"], strict=True))
    for f, ids in enumerate(folds):
        rest = [i for i in chosen if fold_of[patient_of[i]] != f]
        for name, part in ((f"fold {f}", ids), (f"the complement of fold {f}", rest)):
            if {int(label_of[i]) for i in part} != {0, 1}:
                raise SplitError(
                    f"budget {budget!r}: cross-fitting in {k} folds (split.budget_val_fraction="
                    f"{val_fraction}) leaves {name} without both classes; raise the budget "
                    f"(at least {k} patients per class) or the fraction"
                )
    return folds


def make_splits(
    reserve: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    protocol: str,
    oracle_val_fraction: float,
    seed: int,
    pseudo: Pseudonymizer,
) -> pd.DataFrame:
    """Pool patients train, reserved patients test (and oracle validation).

    A label CSV may group images into patients (``patient_id``) and pin rows to a split
    (``split``). Both are checked against the reserve, never allowed to move a patient:
    a patient whose images lie on both sides, a ``train`` row on a reserved patient or a
    ``val``/``test`` row on a pool patient is an error naming the rows. Reserved patients
    pinned ``val`` form the oracle's validation split (the ``budget`` protocol neither uses
    nor scores them); without pins, the ``oracle`` protocol deals reserved patients to
    validation by a keyed hash (``oracle_val_fraction``).

    Args:
        reserve: ``image_id, patient_key, part`` (:func:`medssl.data.reserve.partition`).
        labels: from :func:`medssl.data.labels.join_labels` (``image_id, label, split_pin,
            patient_pin, row``); may be empty.
        protocol: one of :data:`PROTOCOLS`.
        oracle_val_fraction: share of reserved patients for oracle validation, in (0, 1).
        seed: seed of the oracle validation draw.
        pseudo: the ingestion pseudonymizer (keys the draw).

    Returns:
        ``image_id, patient_key, split`` sorted by image id.

    Raises:
        SplitError: an unknown protocol or fraction, or pins that cross the reserve.
    """
    if protocol not in PROTOCOLS:
        raise SplitError(f"params.yaml: 'split.validation' must be one of {PROTOCOLS}")
    if protocol == "oracle" and not 0.0 < oracle_val_fraction < 1.0:
        raise SplitError("params.yaml: 'split.oracle_val_fraction' must be in (0, 1)")
    frame = reserve[["image_id", "patient_key", "part"]].merge(
        labels[["image_id", "split_pin", "patient_pin", "row"]], on="image_id", how="left"
    )
    frame[["split_pin", "patient_pin"]] = frame[["split_pin", "patient_pin"]].fillna("")
    override = frame["patient_pin"] != ""
    frame.loc[override, "patient_key"] = frame.loc[override, "patient_pin"]
    _check_sides(frame)
    frame["split"] = np.where(frame["part"] == POOL, "train", "test")
    reserved = frame["part"] == RESERVE
    if protocol == "oracle":
        drawn = [
            hash_unit(pseudo, seed, f"oracle-val:{p}") < oracle_val_fraction
            for p in frame.loc[reserved, "patient_key"]
        ]
        frame.loc[reserved, "split"] = np.where(drawn, "val", "test")
    pins = frame[reserved & (frame["split_pin"] != "")].groupby("patient_key")["split_pin"]
    pinned = pins.agg(lambda v: "val" if set(v) == {"val"} else "test")
    has_pin = frame["patient_key"].isin(set(pinned.index)) & reserved
    frame.loc[has_pin, "split"] = frame.loc[has_pin, "patient_key"].map(pinned)
    out = frame[["image_id", "patient_key", "split"]].sort_values("image_id")
    return out.reset_index(drop=True)


def _rows(frame: pd.DataFrame, mask: pd.Series) -> str:
    rows = sorted(int(r) for r in frame.loc[mask, "row"].dropna())
    return f"label CSV row {listed_rows(rows)}" if rows else "label CSV"


def _check_sides(frame: pd.DataFrame) -> None:
    """Raise SplitError when label-CSV patients or pins cross the evaluation reserve."""
    sides = frame.groupby("patient_key")["part"].nunique()
    crossing = frame["patient_key"].isin(set(sides[sides > 1].index)) & (frame["row"].notna())
    if crossing.any():
        raise SplitError(
            f"{_rows(frame, crossing)}: 'patient_id' joins images on both sides of the "
            "evaluation reserve; give patients at ingestion (data.sidecar) or list them in "
            "reserve.path"
        )
    wrong = ((frame["split_pin"] == "train") & (frame["part"] == RESERVE)) | (
        frame["split_pin"].isin(("val", "test")) & (frame["part"] == POOL)
    )
    if wrong.any():
        raise SplitError(
            f"{_rows(frame, wrong)}: 'split' pins a patient to the other side of the "
            "evaluation reserve (train = pool, val/test = reserve); list the test patients "
            "in reserve.path, or drop the split column"
        )


def check_both_classes(splits: pd.DataFrame, labels: pd.DataFrame) -> None:
    """Every split present needs normal and abnormal labelled images to be trained or scored.

    Raises:
        SplitError: naming the split and the missing class.
    """
    joined = splits.merge(labels[["image_id", "label"]], on="image_id")
    for split in [s for s in SPLITS if s in set(splits["split"])]:
        present = set(joined.loc[joined["split"] == split, "label"].astype(int))
        for cls, name in ((0, "normal"), (1, "abnormal")):
            if cls not in present:
                raise SplitError(
                    f"the {split} split has no {name} labelled images; add labels or "
                    "change reserve.fraction / reserve.seed (or reserve.path)"
                )
