"""Stage evaluate: every arm x mode x budget x seed on the test split, with patient CIs.

Writes ``label_efficiency.json`` (one record per seed), ``label_efficiency_seeds.json``
(mean and spread across seeds per arm x mode x budget), ``label_efficiency.md`` (both
tables), DVC metrics and plot data (ROC, PR, calibration of each arm's headline mode at the
last budget; AUROC vs labels).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from medssl.eval.metrics import SingleClassResamplesWarning
from medssl.eval.plots import label_efficiency_figure
from medssl.eval.protocol import (
    evaluate_runs,
    headline_curves,
    label_efficiency_table,
    markdown_table,
)
from medssl.eval.seeds import seed_markdown_table, seed_summary, verdict
from medssl.params import ParamsError, get, get_positive, load_params


def read_runs(runs: Path, p: dict[str, Any]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """``(run.json, scores.csv)`` of every arm x budget x seed named in params."""
    out = []
    for arm in get(p, "finetune.arms", list):
        for budget in get(p, "finetune.budgets", list):
            for seed in get(p, "finetune.seeds", list):
                folder = runs / f"{arm}-{budget}-{seed}"
                run = json.loads((folder / "run.json").read_text())
                scores = pd.read_csv(folder / "scores.csv", dtype={"patient_key": str})
                out.append((run, scores))
    return out


def write_plots(
    plots: Path,
    records: list[dict[str, Any]],
    runs: list[tuple[dict[str, Any], pd.DataFrame]],
    how: str,
) -> None:
    """Label-efficiency CSV and PNG; ROC / PR / calibration JSON per arm.

    The curves are those of each arm's headline mode at the largest budget, first seed.
    """
    plots.mkdir(parents=True, exist_ok=True)
    label_efficiency_table(records).to_csv(plots / "label_efficiency.csv", index=False)
    label_efficiency_figure(records, plots / "label_efficiency.png")
    top = max(records, key=lambda r: (r["n_labels"], -r["seed"]))
    headline = {
        r["arm"]: r["mode"]
        for r in records
        if r["headline"] and str(r["budget"]) == str(top["budget"]) and r["seed"] == top["seed"]
    }
    for run, scores in runs:
        if str(run["budget"]) != str(top["budget"]) or int(run["seed"]) != top["seed"]:
            continue
        mode = headline[run["arm"]]
        for kind, points in headline_curves(scores[scores["mode"] == mode], how).items():
            (plots / kind).mkdir(exist_ok=True)
            (plots / kind / f"{run['arm']}.json").write_text(json.dumps(points, indent=1) + "\n")


def metrics_summary(records: list[dict[str, Any]], summary: list[dict[str, Any]]) -> dict[str, Any]:
    """``arm -> mode -> n{labels}_seed{seed}`` headline metrics for ``dvc metrics``.

    Each ``arm -> mode`` also holds ``n{labels}_mean``: ``auroc_mean`` and ``auroc_sd``
    across seeds (from :func:`seed_summary`).
    """
    keys = ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "sens_at_spec90", "ece")
    out: dict[str, Any] = {}
    for r in records:
        cell = out.setdefault(r["arm"], {}).setdefault(r["mode"], {})
        cell[f"n{r['n_labels']}_seed{r['seed']}"] = {k: r.get(k) for k in keys}
    for row in summary:
        cell = out.setdefault(row["arm"], {}).setdefault(row["mode"], {})
        cell[f"n{row['n_labels']}_mean"] = {k: row[k] for k in ("auroc_mean", "auroc_sd")}
    return out


def write_results(out: Path, records: list[dict[str, Any]]) -> str:
    """Per-seed and across-seed JSON, both Markdown tables and ``metrics.json``.

    Returns:
        The Markdown text (per-seed table, then the mean across seeds).
    """
    summary = seed_summary(records)
    out.mkdir(parents=True, exist_ok=True)
    (out / "label_efficiency.json").write_text(json.dumps(records, indent=2) + "\n")
    (out / "label_efficiency_seeds.json").write_text(json.dumps(summary, indent=2) + "\n")
    said = "".join(f"- {line}\n" for line in verdict(summary))
    text = markdown_table(records) + "\n### Mean across seeds\n\n" + seed_markdown_table(summary)
    text += f"\n### Does self-supervision pay here?\n\n{said or '- no ssl/scratch pair'}\n"
    (out / "label_efficiency.md").write_text(text)
    (out / "metrics.json").write_text(
        json.dumps(metrics_summary(records, summary), indent=2, sort_keys=True) + "\n"
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    try:
        how = get(p, "evaluate.patient_aggregation", str)
        headline = {str(k): str(v) for k, v in get(p, "finetune.headline", dict).items()}
        runs = read_runs(args.runs, p)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SingleClassResamplesWarning)
            records = evaluate_runs(
                runs,
                headline,
                how=how,
                n_boot=get_positive(p, "evaluate.n_boot", int),
                seed=get(p, "evaluate.seed", int),
                method=get(p, "evaluate.compare", str),
            )
    except (ParamsError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    single = sum(issubclass(w.category, SingleClassResamplesWarning) for w in caught)
    if single:
        print(f"note: {single} bootstrap intervals skipped >10% single-class resamples (few cases)")
    for r in records:
        r["aggregation"] = how
    text = write_results(args.out, records)
    write_plots(args.out / "plots", records, runs, how)
    print(text)


if __name__ == "__main__":
    main()
