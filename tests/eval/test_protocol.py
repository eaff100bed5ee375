"""The evaluation protocol: records per arm x mode, headline flags, patient-level tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medssl.eval.metrics import aggregate_by_patient, delong_pvalue, paired_bootstrap_pvalue
from medssl.eval.plots import label_efficiency_figure
from medssl.eval.protocol import (
    RECORD_KEYS,
    compare_modes,
    evaluate_runs,
    label_efficiency_table,
    markdown_table,
    patient_level,
)

HEADLINE = {"ssl": "full", "scratch": "full", "pixels": "logistic"}


def scores_frame(modes: dict[str, float], seed: int) -> pd.DataFrame:
    """Val (30 patients) + test (40 patients) with two images each; signal per mode."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in (("val", 30), ("test", 40)):
        for p in range(n):
            label = p % 2
            for _ in range(2):
                rows.append({"patient_key": f"{split}{p:03d}", "split": split, "label": label})
    base = pd.DataFrame(rows)
    parts = []
    for mode, signal in modes.items():
        logit = rng.normal(size=len(base)) + signal * base["label"].to_numpy()
        parts.append(base.assign(mode=mode, score=1 / (1 + np.exp(-logit))))
    return pd.concat(parts, ignore_index=True)


def runs(budgets: tuple[Any, ...] = (8, "all")) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    out = []
    for i, budget in enumerate(budgets):
        n = 8 if budget == 8 else 40
        for arm, modes in (
            ("ssl", {"linear": 1.0, "full": 2.0, "knn": 0.5}),
            ("scratch", {"full": 1.0}),
            ("pixels", {"logistic": 0.8, "knn": 0.2}),
        ):
            run = {"arm": arm, "budget": budget, "seed": 0, "n_labels": n, "n_abnormal": n // 2}
            out.append((run, scores_frame(modes, seed=10 * i + len(arm))))
    return out


def test_records_cover_every_mode_with_headline_flags() -> None:
    records = evaluate_runs(runs(), HEADLINE, how="max", n_boot=100, seed=0)
    assert len(records) == 2 * 6
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert r["headline"] == (r["mode"] == HEADLINE[r["arm"]])
        assert r["n_patients"] == 40 and r["n_cases"] == 40  # one case per test patient
        assert r["auroc_ci_low"] <= r["auroc"] <= r["auroc_ci_high"]
        assert (r["p_vs_scratch"] is None) == (r["arm"] == "scratch")
        assert (r["p_vs_pixels"] is None) == (r["arm"] == "pixels")
    assert [r["n_labels"] for r in records] == [8] * 6 + [40] * 6
    assert [r["arm"] for r in records[:6]] == ["ssl"] * 3 + ["scratch"] + ["pixels"] * 2


def test_p_value_is_delong_on_patient_level_scores() -> None:
    pairs = runs((8,))
    records = evaluate_runs(pairs, HEADLINE, how="max", n_boot=100, seed=0)
    ssl = pairs[0][1][pairs[0][1]["mode"] == "full"]
    scratch = pairs[1][1]
    a = ssl[ssl["split"] == "test"]
    b = scratch[scratch["split"] == "test"]
    _, y, sa = aggregate_by_patient(a["patient_key"], a["label"], a["score"])
    _, _, sb = aggregate_by_patient(b["patient_key"], b["label"], b["score"])
    rec = next(r for r in records if r["arm"] == "ssl" and r["mode"] == "full")
    assert rec["p_vs_scratch"] == pytest.approx(delong_pvalue(y, sa, sb))
    boot = compare_modes(ssl, scratch, how="max", method="bootstrap", n_boot=200, seed=1)
    groups = np.unique(a["patient_key"])
    assert boot == pytest.approx(paired_bootstrap_pvalue(y, sa, sb, groups, n_boot=200, seed=1))


def test_headline_must_have_run() -> None:
    with pytest.raises(ValueError, match="finetune.headline.ssl='knn2' was not run"):
        evaluate_runs(runs((8,)), {**HEADLINE, "ssl": "knn2"}, how="max", n_boot=10, seed=0)
    with pytest.raises(ValueError, match="names no mode for arm 'pixels'"):
        evaluate_runs(runs((8,)), {"ssl": "full", "scratch": "full"}, how="max", n_boot=10, seed=0)


def test_compare_needs_the_same_cases() -> None:
    a = scores_frame({"full": 1.0}, 0)
    b = a[a["patient_key"] != "test000"]
    with pytest.raises(ValueError, match="same test cases"):
        compare_modes(a, b, how="max", method="delong", n_boot=10, seed=0)
    with pytest.raises(ValueError, match="evaluate.compare"):
        compare_modes(a, a, how="max", method="t-test", n_boot=10, seed=0)


def test_patient_level_keeps_or_collapses() -> None:
    frame = pd.DataFrame(
        {"patient_key": ["b", "a", "a"], "label": [0, 1, 0], "score": [0.2, 0.9, 0.1]}
    )
    assert patient_level(frame, "none")["patient_key"].tolist() == ["a", "a", "b"]
    mx = patient_level(frame, "max")
    assert mx.to_dict("list") == {"patient_key": ["a", "b"], "label": [1, 0], "score": [0.9, 0.2]}
    assert patient_level(frame, "mean")["score"].tolist() == pytest.approx([0.5, 0.2])
    with pytest.raises(ValueError, match="aggregation"):
        patient_level(frame, "median")


def test_tables_and_figure(tmp_path: Path) -> None:
    records = evaluate_runs(runs(), HEADLINE, how="max", n_boot=50, seed=0)
    table = label_efficiency_table(records)
    assert list(table.columns) == [
        "n_labels",
        *(f"{a}{s}" for a in ("ssl", "scratch", "pixels") for s in ("", "_ci_low", "_ci_high")),
    ]
    assert table["n_labels"].tolist() == [8, 40]
    ssl_full = [r["auroc"] for r in records if r["arm"] == "ssl" and r["mode"] == "full"]
    assert table["ssl"].tolist() == pytest.approx(ssl_full, abs=1e-4)
    text = markdown_table(records)
    assert text.count("\n") == 2 + len(records)
    assert "| 8 | ssl | **full** | 0 |" in text and "| 8 | ssl | knn | 0 |" in text
    label_efficiency_figure(records, tmp_path / "le.png")
    assert (tmp_path / "le.png").stat().st_size > 1000
