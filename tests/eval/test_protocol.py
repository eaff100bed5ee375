"""The evaluation protocol: records per arm x mode, headline flags, patient-level tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from medssl.eval.bootstrap import paired_bootstrap_pvalue
from medssl.eval.delong import delong_pvalue
from medssl.eval.metrics import (
    CALIBRATION_BINS,
    aggregate_by_patient,
    calibration_curve_points,
    pr_points,
    roc_points,
)
from medssl.eval.plots import label_efficiency_figure
from medssl.eval.protocol import (
    RECORD_KEYS,
    compare_modes,
    evaluate_runs,
    headline_curves,
    label_efficiency_table,
    markdown_table,
    patient_level,
)
from medssl.eval.seeds import SEED_SUMMARY_KEYS, seed_markdown_table, seed_summary

HEADLINE = {"ssl": "full", "scratch": "full", "pixels": "logistic"}
REPO = Path(__file__).resolve().parents[2]


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


def runs(
    budgets: tuple[Any, ...] = (8, "all"), seeds: tuple[int, ...] = (0,), **extra: Any
) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """Fake (run.json, scores.csv) pairs; ``extra`` keys go into every run.json."""
    out = []
    for i, budget in enumerate(budgets):
        n = 8 if budget == 8 else 40
        for arm, modes in (
            ("ssl", {"linear": 1.0, "full": 2.0, "knn": 0.5}),
            ("scratch", {"full": 1.0}),
            ("pixels", {"logistic": 0.8, "knn": 0.2}),
        ):
            for seed in seeds:
                run = {"arm": arm, "budget": budget, "seed": seed, "n_labels": n}
                run.update(n_abnormal=n // 2, **extra)
                out.append((run, scores_frame(modes, seed=100 * seed + 10 * i + len(arm))))
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
    assert all(r["n_val_labels"] is None and r["val_protocol"] is None for r in records)


def test_records_carry_the_validation_labels() -> None:
    pairs = runs((8,), n_val_labels=np.int64(4), val_protocol="budget")
    records = evaluate_runs(pairs, HEADLINE, how="max", n_boot=20, seed=0)
    assert {"n_val_labels", "val_protocol"} <= set(RECORD_KEYS)
    assert all(r["n_val_labels"] == 4 and type(r["n_val_labels"]) is int for r in records)
    assert all(r["val_protocol"] == "budget" for r in records)
    json.dumps(records)  # plain types only


def synthetic(aurocs: list[float], **extra: Any) -> list[dict[str, Any]]:
    """Per-seed records of one arm x mode x budget (seeds 0, 1, ...), CI = AUROC ± 0.1."""
    return [
        {"arm": "ssl", "mode": "full", "headline": True, "budget": "0.1", "n_labels": 40,
         "seed": seed, "auroc": a, "auroc_ci_low": a - 0.1, "auroc_ci_high": a + 0.1,
         "auprc": a - 0.2, "sens_at_spec90": a / 2, **extra}
        for seed, a in enumerate(aurocs)
    ]  # fmt: skip


def test_seed_summary_matches_numpy() -> None:
    aurocs = [0.71, 0.84, 0.77]
    records = synthetic(aurocs, n_val_labels=10, val_protocol="budget")
    other = {**records[0], "arm": "scratch", "seed": 5, "auroc": 0.6}
    (row, single) = seed_summary([*reversed(records), other])
    assert set(row) == set(SEED_SUMMARY_KEYS)
    assert row["arm"] == "ssl" and single["arm"] == "scratch"
    assert row["n_seeds"] == 3 and row["seeds"] == [0, 1, 2]
    assert row["auroc_mean"] == pytest.approx(np.mean(aurocs))
    assert row["auroc_sd"] == pytest.approx(np.std(aurocs, ddof=1))
    assert (row["auroc_min"], row["auroc_max"]) == (0.71, 0.84)
    assert row["auroc_ci_low_mean"] == pytest.approx(np.mean(aurocs) - 0.1)
    assert row["auroc_ci_high_mean"] == pytest.approx(np.mean(aurocs) + 0.1)
    assert row["auprc_mean"] == pytest.approx(np.mean(aurocs) - 0.2)
    assert row["sens_at_spec90_mean"] == pytest.approx(np.mean(aurocs) / 2)
    assert (row["n_labels"], row["n_val_labels"], row["val_protocol"]) == (40, 10, "budget")
    assert row["budget"] == "0.1" and row["headline"] is True
    assert single["n_seeds"] == 1 and single["auroc_sd"] is None
    assert single["auroc_min"] == single["auroc_max"] == single["auroc_mean"] == 0.6


def test_seed_summary_of_evaluated_runs_and_table() -> None:
    records = evaluate_runs(runs(seeds=(0, 1, 2)), HEADLINE, how="max", n_boot=20, seed=0)
    summary = seed_summary(records)
    assert len(summary) == 2 * 6 and all(r["n_seeds"] == 3 for r in summary)
    assert [(r["n_labels"], r["arm"], r["mode"]) for r in summary] == [
        (r["n_labels"], r["arm"], r["mode"]) for r in records[::3]
    ]
    assert all(r["n_val_labels"] is None and r["val_protocol"] is None for r in summary)
    text = seed_markdown_table(summary)
    assert text.count("\n") == 2 + len(summary)
    assert text.startswith("| labels | arm | mode | seeds | n val labels | protocol |")
    assert "| 8 | ssl | **full** | 3 | – | – | " in text
    one = seed_markdown_table(seed_summary(synthetic([0.7], n_val_labels=6, val_protocol="oracle")))
    assert "| 40 | ssl | **full** | 1 | 6 | oracle | 0.700 ± – [0.700, 0.700] " in one


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


def test_headline_curves_keep_the_plot_file_format() -> None:
    """``plots/{roc,pr,calibration}/*.json``: same keys, thinning and uniform binning."""
    scores = scores_frame({"full": 2.0}, seed=0)
    points = headline_curves(scores, "max")
    test = patient_level(scores[scores["split"] == "test"], "max")
    y, s = test["label"], test["score"]
    assert points == {
        "roc": roc_points(y, s),
        "pr": pr_points(y, s),
        "calibration": calibration_curve_points(y, s, n_bins=CALIBRATION_BINS),
    }
    assert set(points["roc"][0]) == {"fpr", "tpr", "threshold"}
    assert set(points["pr"][0]) == {"recall", "precision"}
    assert all(set(p) == {"prob_pred", "prob_true", "count"} for p in points["calibration"])
    assert sum(p["count"] for p in points["calibration"]) == len(test) == 40
    assert len(points["calibration"]) <= CALIBRATION_BINS == 10
    every = headline_curves(scores, "max", max_points=None)
    assert len(every["roc"]) >= len(points["roc"]) and every["calibration"] == points["calibration"]


def test_tables_and_figure(tmp_path: Path) -> None:
    records = evaluate_runs(runs(), HEADLINE, how="max", n_boot=50, seed=0)
    table = label_efficiency_table(records)
    suffixes = ("", "_ci_low", "_ci_high", "_seed_min", "_seed_max")
    assert list(table.columns) == [
        "n_labels",
        *(f"{a}{s}" for a in ("ssl", "scratch", "pixels") for s in suffixes),
    ]
    assert table["n_labels"].tolist() == [8, 40]
    ssl_full = [r["auroc"] for r in records if r["arm"] == "ssl" and r["mode"] == "full"]
    assert table["ssl"].tolist() == pytest.approx(ssl_full, abs=1e-4)
    text = markdown_table(records)
    assert text.count("\n") == 2 + len(records)
    assert "| 8 | ssl | **full** | 0 |" in text and "| 8 | ssl | knn | 0 |" in text
    label_efficiency_figure(records, tmp_path / "le.png")
    assert (tmp_path / "le.png").stat().st_size > 1000


def test_table_spans_the_seeds() -> None:
    records = evaluate_runs(runs((8,), seeds=(0, 1)), HEADLINE, how="max", n_boot=20, seed=0)
    table = label_efficiency_table(records).iloc[0]
    ssl = [r["auroc"] for r in records if r["arm"] == "ssl" and r["mode"] == "full"]
    assert table["ssl"] == pytest.approx(np.mean(ssl), abs=1e-4)
    assert (table["ssl_seed_min"], table["ssl_seed_max"]) == pytest.approx(
        (min(ssl), max(ssl)), abs=1e-4
    )


def test_stage_writes_seed_summary(tmp_path: Path) -> None:
    for run, scores in runs((8,), seeds=(0, 1), n_val_labels=4, val_protocol="budget"):
        folder = tmp_path / "runs" / f"{run['arm']}-{run['budget']}-{run['seed']}"
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps(run))
        scores.to_csv(folder / "scores.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())  # every section is validated
    params["finetune"].update(arms=["ssl", "scratch", "pixels"], budgets=[8], seeds=[0, 1],
                              headline=HEADLINE)  # fmt: skip
    params["evaluate"].update(patient_aggregation="max", n_boot=20, seed=0, compare="delong")
    (tmp_path / "params.yaml").write_text(json.dumps(params))
    cmd = [sys.executable, str(REPO / "pipelines" / "evaluate.py"),
           "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "results"),
           "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results"
    summary = json.loads((out / "label_efficiency_seeds.json").read_text())
    assert len(summary) == 6 and all(r["seeds"] == [0, 1] for r in summary)
    assert all(r["n_val_labels"] == 4 and r["val_protocol"] == "budget" for r in summary)
    metrics = json.loads((out / "metrics.json").read_text())
    ssl = metrics["ssl"]["full"]
    assert {"n8_seed0", "n8_seed1", "n8_mean"} <= set(ssl)
    assert set(ssl["n8_mean"]) == {"auroc_mean", "auroc_sd"}
    assert ssl["n8_mean"]["auroc_mean"] == pytest.approx(
        (ssl["n8_seed0"]["auroc"] + ssl["n8_seed1"]["auroc"]) / 2
    )
    text = (out / "label_efficiency.md").read_text()
    assert "| labels | arm | mode | seed |" in text and "### Mean across seeds" in text
    assert "| 8 | ssl | **full** | 2 | 4 | budget |" in text and "Mean across seeds" in proc.stdout
    assert (out / "plots" / "label_efficiency.png").stat().st_size > 1000


def test_auto_headline_takes_the_best_validation_mode_per_run() -> None:
    from medssl.eval.protocol import choose_headline
    from medssl.eval.seeds import seed_summary

    recs = [
        {"arm": "ssl", "mode": "full", "val_auroc": 0.9},
        {"arm": "ssl", "mode": "linear", "val_auroc": 0.9},
        {"arm": "ssl", "mode": "knn", "val_auroc": 0.7},
    ]
    choose_headline(recs)
    assert [r["headline"] for r in recs] == [False, True, False]  # tie: the simpler mode
    assert recs[1]["headline_rule"].startswith("auto")
    base = {"arm": "ssl", "budget": 8, "n_labels": 8, "auroc_ci_low": 0.5, "auroc_ci_high": 0.9}
    records = [
        {**base, "mode": "linear", "seed": 0, "auroc": 0.8, "headline": True},
        {**base, "mode": "full", "seed": 0, "auroc": 0.7, "headline": False},
        {**base, "mode": "linear", "seed": 1, "auroc": 0.6, "headline": False},
        {**base, "mode": "full", "seed": 1, "auroc": 0.9, "headline": True},
    ]
    rows = {r["mode"]: r for r in seed_summary(records)}
    assert not rows["linear"]["headline"] and not rows["full"]["headline"]
    assert rows["headline(full/linear)"]["headline"]
    assert rows["headline(full/linear)"]["auroc_mean"] == pytest.approx(0.85)


def test_verdict_says_plainly_when_ssl_does_not_beat_scratch() -> None:
    from medssl.eval.seeds import verdict

    row = {"budget": 8, "n_labels": 8, "n_val_labels": 2, "val_protocol": "budget",
           "n_seeds": 3, "headline": True}  # fmt: skip
    summary = [
        {**row, "arm": "ssl", "mode": "linear", "val_auroc_mean": 0.70, "auroc_mean": 0.8},
        {**row, "arm": "scratch", "mode": "full", "val_auroc_mean": 0.75, "auroc_mean": 0.7},
        {**row, "arm": "pixels", "mode": "logistic", "val_auroc_mean": 0.9, "auroc_mean": 0.9},
    ]
    (line,) = verdict(summary)
    assert line.startswith("8 labels: SSL does NOT beat scratch on validation (0.700 vs 0.750")
    assert line.endswith(
        "SSL does NOT beat raw pixels on validation (0.700 vs 0.900); test 0.800 vs 0.900."
    )
    summary[0]["val_auroc_mean"] = 0.95
    assert "SSL beats scratch" in verdict(summary)[0]
    assert "SSL beats raw pixels on validation (0.950 vs 0.900)" in verdict(summary)[0]
    assert "raw pixels" not in verdict(summary[:2])[0]  # no pixels arm, no pixel sentence
