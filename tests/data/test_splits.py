"""Patient-level splits and nested, stratified label budgets."""

from __future__ import annotations

import pandas as pd
import pytest

from medssl.data.splits import (
    SplitError,
    assign_splits,
    make_splits,
    patient_overlap,
    select_budget,
)

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def test_fractions_and_determinism() -> None:
    patients = [f"p{i:03d}" for i in range(100)]
    a = assign_splits(patients, FRACTIONS, seed=1)
    assert a == assign_splits(list(reversed(patients)), FRACTIONS, seed=1)
    assert a != assign_splits(patients, FRACTIONS, seed=2)
    counts = pd.Series(a).value_counts()
    assert counts["train"] == 60 and counts["val"] == 20 and counts["test"] == 20


def test_pins_are_honoured() -> None:
    patients = [f"p{i}" for i in range(10)]
    out = assign_splits(patients, FRACTIONS, seed=0, pinned={"p1": "test", "p2": "test"})
    assert out["p1"] == "test" and out["p2"] == "test"


def test_bad_fractions() -> None:
    with pytest.raises(SplitError, match="sum to 1"):
        assign_splits(["a"], {"train": 0.5, "val": 0.2, "test": 0.2}, seed=0)


def test_make_splits_keeps_patients_together() -> None:
    manifest = pd.DataFrame(
        {"image_id": [f"i{k}" for k in range(30)], "patient_key": [f"p{k // 3}" for k in range(30)]}
    )
    labels = pd.DataFrame(columns=["image_id", "label", "split_pin", "patient_pin"])
    splits = make_splits(manifest, labels, FRACTIONS, seed=0)
    assert patient_overlap(splits) == 0
    assert splits.groupby("patient_key")["split"].nunique().max() == 1


def _train_labels(n_pos: int, n_neg: int) -> pd.DataFrame:
    rows = [
        {"image_id": f"pos{i:02d}", "patient_key": f"pp{i // 2}", "label": 1} for i in range(n_pos)
    ]
    rows += [
        {"image_id": f"neg{i:02d}", "patient_key": f"pn{i // 2}", "label": 0} for i in range(n_neg)
    ]
    return pd.DataFrame(rows)


def test_budgets_are_nested_and_stratified() -> None:
    labels = _train_labels(20, 40)
    small = select_budget(labels, 6, seed=0)
    large = select_budget(labels, 30, seed=0)
    assert set(small) <= set(large)
    assert len(small) == 6 and len(large) == 30
    assert sum(i.startswith("pos") for i in large) == 10  # 1/3 positives, as in the pool
    assert len(select_budget(labels, "all", seed=0)) == 60
    assert len(select_budget(labels, 0.5, seed=0)) == 30
    assert select_budget(labels, 6, seed=1) != small


def test_budget_errors() -> None:
    labels = _train_labels(3, 10)
    with pytest.raises(SplitError, match="exceeds"):
        select_budget(labels, 50, seed=0)
    with pytest.raises(SplitError, match="no abnormal labelled images"):
        select_budget(_train_labels(0, 10), 4, seed=0)


def test_strata_spread_abnormal_patients_over_splits() -> None:
    patients = [f"p{i:02d}" for i in range(20)]
    strata = {p: ("abnormal" if i < 5 else "normal") for i, p in enumerate(patients)}
    out = assign_splits(patients, FRACTIONS, seed=0, strata=strata)
    abnormal_splits = {out[p] for p in patients[:5]}
    assert abnormal_splits == {"train", "val", "test"}


def test_check_both_classes_names_the_split() -> None:
    from medssl.data.splits import check_both_classes

    splits = pd.DataFrame({"image_id": ["a", "b", "c"], "split": ["train", "val", "test"]})
    labels = pd.DataFrame({"image_id": ["a", "b", "c"], "label": [1, 0, 1]})
    with pytest.raises(SplitError, match="the train split has no normal"):
        check_both_classes(splits, labels)


def test_budget_counts_and_checks_name_the_budget() -> None:
    from medssl.data.splits import budget_counts, check_budgets

    assert budget_counts(8, 30, 10) == (6, 2)
    assert budget_counts(0.1, 3, 97) == (1, 9)  # at least one abnormal
    assert budget_counts("all", 3, 7) == (3, 7)
    labels = _train_labels(3, 10)
    assert check_budgets(labels, [4, "all"]) == [(4, 1, 3), ("all", 3, 10)]
    with pytest.raises(SplitError, match=r"finetune.budgets: budget 50 exceeds the 13"):
        check_budgets(labels, [4, 50])
    with pytest.raises(SplitError, match=r"finetune.budgets: budget 4: .* no abnormal"):
        check_budgets(_train_labels(0, 10), [4])
    with pytest.raises(SplitError, match="budget must be >= 2"):
        check_budgets(labels, [1])


def test_pin_clash_names_label_rows() -> None:
    manifest = pd.DataFrame({"image_id": ["i0", "i1", "i2"], "patient_key": ["p", "p", "q"]})
    labels = pd.DataFrame(
        {
            "image_id": ["i0", "i1", "i2"],
            "label": [1, 0, 0],
            "split_pin": ["train", "test", ""],
            "patient_pin": ["", "", ""],
            "row": [2, 3, 4],
        }
    )
    with pytest.raises(SplitError, match=r"label CSV row 2, 3: 1 patient\(s\) pinned to two"):
        make_splits(manifest, labels, FRACTIONS, seed=0)
