"""Stage evaluate: test-split metrics with patient-bootstrap CIs, label-efficiency table."""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from medssl.eval.plots import label_efficiency_figure
from medssl.eval.protocol import compare_arms, roc_table, score_run
from medssl.params import get, get_positive, load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # degenerate DeLong covariance on tiny sets
    p = load_params(args.params)
    how = get(p, "evaluate.patient_aggregation", str)
    n_boot = get_positive(p, "evaluate.n_boot", int)
    boot_seed = get(p, "evaluate.seed", int)
    records: list[dict[str, Any]] = []
    scores: dict[tuple[str, str, int], pd.DataFrame] = {}
    for arm in get(p, "finetune.arms", list):
        for budget in get(p, "finetune.budgets", list):
            for seed in get(p, "finetune.seeds", list):
                run_dir = args.runs / f"{arm}-{budget}-{seed}"
                run = json.loads((run_dir / "run.json").read_text())
                frame = pd.read_csv(run_dir / "scores.csv", dtype={"patient_key": str})
                scores[(arm, str(budget), seed)] = frame
                records.append(score_run(run, frame, how=how, n_boot=n_boot, seed=boot_seed))
    for rec in records:
        if rec["arm"] == "ssl" and ("scratch", str(rec["budget"]), rec["seed"]) in scores:
            key_ssl = ("ssl", str(rec["budget"]), rec["seed"])
            key_scr = ("scratch", str(rec["budget"]), rec["seed"])
            p_value = compare_arms(scores[key_ssl], scores[key_scr], how)
            rec["p_vs_scratch"] = p_value if math.isfinite(p_value) else None
    write_outputs(args.out, records, scores, how)


def write_outputs(
    out: Path,
    records: list[dict[str, Any]],
    scores: dict[tuple[str, str, int], pd.DataFrame],
    how: str,
) -> None:
    """label_efficiency.json, metrics.json and the plot files."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    (out / "label_efficiency.json").write_text(json.dumps(records, indent=2) + "\n")
    metrics: dict[str, Any] = {}
    for r in records:
        key = f"n{r['n_labels']}_seed{r['seed']}"
        metrics.setdefault(r["arm"], {})[key] = {
            k: r[k] for k in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "sens_at_spec90")
        }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    frame = pd.DataFrame(records)
    table = frame.pivot_table(index="n_labels", columns="arm", values="auroc", aggfunc="mean")
    table.round(4).reset_index().to_csv(plots / "label_efficiency.csv", index=False)
    top = max(records, key=lambda r: (r["n_labels"], -r["seed"]))
    curves = {
        arm: s
        for (arm, budget, seed), s in scores.items()
        if budget == str(top["budget"]) and seed == top["seed"]
    }
    roc_table(curves, how).to_csv(plots / "roc.csv", index=False)
    label_efficiency_figure(records, plots / "label_efficiency.png")
    for r in sorted(records, key=lambda r: (r["arm"], r["n_labels"], r["seed"])):
        print(
            f"{r['arm']:>8} n={r['n_labels']:<4} seed={r['seed']} AUROC {r['auroc']:.3f} "
            f"[{r['auroc_ci_low']:.3f}, {r['auroc_ci_high']:.3f}]"
        )


if __name__ == "__main__":
    main()
