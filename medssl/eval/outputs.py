"""The evaluate stage's work: score every run and write the results, tables, metrics and plots.

Writes ``label_efficiency.json`` (one record per arm x mode x budget x seed),
``label_efficiency_seeds.json`` (mean and spread across seeds), ``label_efficiency.md``
(both tables and the verdict), ``metrics.json`` (for ``dvc metrics``) and plot data: ROC,
PR and calibration of each arm's headline mode at the largest budget, first seed, and AUROC
against labels.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medssl.eval.bootstrap import SingleClassResamplesWarning
from medssl.eval.plots import label_efficiency_figure
from medssl.eval.protocol import (
    evaluate_runs,
    headline_curves,
    label_efficiency_table,
    markdown_table,
)
from medssl.eval.seeds import seed_markdown_table, seed_summary, verdict
from medssl.params import EvaluateParams, FinetuneParams
from medssl.runs import RunScores, read_runs


@dataclass(frozen=True)
class Evaluated:
    """What the evaluate stage reports.

    Attributes:
        text: the Markdown tables and verdict (as in ``label_efficiency.md``).
        n_single_class: bootstrap intervals skipped for too many single-class resamples.
    """

    text: str
    n_single_class: int


def evaluate_folder(
    runs: Path, out: Path, finetune: FinetuneParams, evaluate: EvaluateParams
) -> Evaluated:
    """Score every arm x budget x seed named in params and write the results under ``out``.

    Args:
        runs: the fine-tuning runs' folder (:mod:`medssl.runs`).
        out: the results folder.
        finetune: the typed ``finetune`` section (arms, budgets, seeds, headline modes).
        evaluate: the typed ``evaluate`` section.

    Returns:
        The tables' text and the count of skipped intervals.

    Raises:
        ValueError: a headline mode that was not run, or a malformed run.
    """
    how = evaluate.patient_aggregation
    scored = read_runs(runs, finetune.arms, finetune.budgets, finetune.seeds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SingleClassResamplesWarning)
        records = evaluate_runs(
            scored,
            finetune.headline,
            how=how,
            n_boot=evaluate.n_boot,
            seed=evaluate.seed,
            method=evaluate.compare,
        )
    single = sum(issubclass(w.category, SingleClassResamplesWarning) for w in caught)
    for r in records:
        r["aggregation"] = how
    text = write_results(out, records)
    write_plots(out / "plots", records, scored, how)
    return Evaluated(text, single)


def write_plots(
    plots: Path, records: list[dict[str, Any]], runs: Sequence[RunScores], how: str
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
    across seeds (from :func:`medssl.eval.seeds.seed_summary`).
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
