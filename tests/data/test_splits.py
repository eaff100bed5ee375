"""Reserve-based patient splits and nested, stratified label budgets with validation parts."""

from __future__ import annotations

import pandas as pd
import pytest

from medssl.data.reserve import partition
from medssl.data.splits import (
    SplitError,
    budget_parts,
    make_splits,
    patient_overlap,
    select_budget,
)
from medssl.io.pseudonym import Pseudonymizer

PSEUDO = Pseudonymizer(b"0123456789abcdef0123")
NO_LABELS = pd.DataFrame(columns=["image_id", "label", "split_pin", "patient_pin", "row"])


def _reserve(n_patients: int = 10, per_patient: int = 3, reserved: int = 3) -> pd.DataFrame:
    manifest = pd.DataFrame(
        {
            "image_id": [f"i{k:03d}" for k in range(n_patients * per_patient)],
            "patient_key": [f"p{k // per_patient:02d}" for k in range(n_patients * per_patient)],
        }
    )
    return partition(manifest, {f"p{k:02d}" for k in range(reserved)})


def _split(reserve: pd.DataFrame, labels: pd.DataFrame, protocol: str = "budget") -> pd.DataFrame:
    return make_splits(
        reserve, labels, protocol=protocol, oracle_val_fraction=0.5, seed=0, pseudo=PSEUDO
    )


def test_pool_trains_and_reserve_tests() -> None:
    reserve = _reserve()
    splits = _split(reserve, NO_LABELS)
    assert patient_overlap(splits) == 0
    merged = splits.merge(reserve, on=["image_id", "patient_key"])
    assert set(merged.loc[merged["part"] == "pool", "split"]) == {"train"}
    assert set(merged.loc[merged["part"] == "reserve", "split"]) == {"test"}


def test_oracle_validation_comes_from_the_reserve() -> None:
    reserve = _reserve(n_patients=60, reserved=40)
    splits = _split(reserve, NO_LABELS, protocol="oracle").merge(reserve)
    assert set(splits.loc[splits["part"] == "pool", "split"]) == {"train"}
    held = splits[splits["part"] == "reserve"]
    assert set(held["split"]) == {"val", "test"}
    assert held.groupby("patient_key")["split"].nunique().max() == 1
    assert splits.equals(_split(reserve, NO_LABELS, protocol="oracle").merge(reserve))


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(SplitError, match="split.validation"):
        _split(_reserve(), NO_LABELS, protocol="cv")


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
    assert check_budgets(labels, [4, "all"]) == [(4, 1, 3, 0), ("all", 3, 10, 0)]
    with pytest.raises(SplitError, match=r"finetune.budgets \(seed 0\): budget 50 exceeds"):
        check_budgets(labels, [4, 50])
    with pytest.raises(SplitError, match=r"finetune.budgets \(seed 0\): budget 4: .* no abnorm"):
        check_budgets(_train_labels(0, 10), [4])
    with pytest.raises(SplitError, match=r"budget 4: its fit part lacks a class"):
        check_budgets(labels, [4], seeds=[0], val_fraction=0.25)
    with pytest.raises(SplitError, match="budget must be >= 2"):
        check_budgets(labels, [1])


def _labels(rows: list[tuple[str, int, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["image_id", "label", "split_pin", "patient_pin"])
    return frame.assign(row=range(2, len(frame) + 2))


def test_pins_across_the_reserve_name_label_rows() -> None:
    reserve = _reserve()  # p00..p02 reserved: images i000..i008
    wrong = _labels([("i000", 1, "train", ""), ("i020", 0, "test", ""), ("i021", 0, "", "")])
    with pytest.raises(SplitError, match=r"label CSV row 2, 3: 'split' pins a patient"):
        _split(reserve, wrong)
    joined = _labels([("i000", 1, "", "P"), ("i020", 0, "", "P")])
    with pytest.raises(SplitError, match=r"label CSV row 2, 3: 'patient_id' joins images"):
        _split(reserve, joined)
    fine = _labels([("i000", 1, "val", ""), ("i003", 0, "test", ""), ("i020", 0, "train", "")])
    splits = _split(reserve, fine).set_index("image_id")["split"]
    assert splits["i001"] == "val" and splits["i003"] == "test" and splits["i020"] == "train"


def test_budget_parts_are_nested_stratified_and_by_patient() -> None:
    labels = _train_labels(20, 40)  # two images per patient
    fit8, val8 = budget_parts(labels, 8, seed=0, val_fraction=0.25)
    fit30, val30 = budget_parts(labels, 30, seed=0, val_fraction=0.25)
    assert sorted(fit8 + val8) == select_budget(labels, 8, seed=0)
    assert set(val8) <= set(val30) and set(fit8) <= set(fit30)
    for fit, val in ((fit8, val8), (fit30, val30)):
        patients = labels.set_index("image_id")["patient_key"]
        assert not set(patients[fit]) & set(patients[val])
        assert {i[:3] for i in val} == {"pos", "neg"} == {i[:3] for i in fit}
    assert 0.15 <= len(val30) / 30 <= 0.4
    assert budget_parts(labels, 8, seed=0, val_fraction=0.0)[1] == []
    with pytest.raises(SplitError, match="budget_val_fraction"):
        budget_parts(labels, 8, seed=0, val_fraction=1.0)


def test_budget_folds_deal_the_budget_by_patient_and_fold_0_is_the_val_part() -> None:
    from medssl.data.splits import budget_folds

    labels = _train_labels(20, 40)  # two images per patient
    folds24 = budget_folds(labels, 24, seed=0, val_fraction=0.25)
    folds48 = budget_folds(labels, 48, seed=0, val_fraction=0.25)
    assert len(folds48) == 4
    assert sorted(i for f in folds48 for i in f) == select_budget(labels, 48, seed=0)
    assert folds48[0] == budget_parts(labels, 48, seed=0, val_fraction=0.25)[1]
    patients = labels.set_index("image_id")["patient_key"]
    seen: set[str] = set()
    for small, large in zip(folds24, folds48, strict=True):
        assert set(small) <= set(large)  # nested across budgets, fold by fold
        assert {i[:3] for i in large} == {"pos", "neg"}  # stratified
        assert not seen & set(patients[large])  # a patient lies in one fold
        seen |= set(patients[large])


def test_budget_folds_refuse_a_fold_without_both_classes() -> None:
    from medssl.data.splits import budget_folds, check_budgets

    labels = _train_labels(20, 40)
    with pytest.raises(SplitError, match=r"budget 6: cross-fitting in 4 folds .* fold \d"):
        budget_folds(labels, 6, seed=0, val_fraction=0.25)
    with pytest.raises(SplitError, match="with split.cross_fit"):
        budget_folds(labels, 30, seed=0, val_fraction=0.6)
    counts = check_budgets(labels, [48], seeds=[0, 1], val_fraction=0.25, cross_fit=True)
    assert counts[0][3] == 48  # every label of the budget validates once
