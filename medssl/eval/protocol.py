"""Score every arm x mode x budget x seed on the test split: the label-efficiency protocol.

Each mode's validation scores freeze its operating thresholds; its test scores give the
metrics (:func:`medssl.eval.binary_report.binary_report`) with 95 % CIs from a bootstrap that
resamples patients. Scores are first collapsed to one per patient (a patient is abnormal if
any image is), so a patient with many images is one case, not many. Each ``ssl`` mode is
compared with the ``scratch`` and ``pixels`` headline modes on the same test patients
(DeLong et al. 1988, or a paired patient bootstrap).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from medssl.eval.binary_report import binary_report
from medssl.eval.bootstrap import paired_bootstrap_pvalue
from medssl.eval.delong import delong_pvalue
from medssl.eval.metrics import MAX_CURVE_POINTS, aggregate_by_patient, auroc, curve_points
from medssl.runs import RunScores

AGGREGATIONS = ("none", "max", "mean")
COMPARISONS = ("delong", "bootstrap")
ARM_ORDER = ("ssl", "scratch", "pixels")
#: Record keys that every ``results/label_efficiency.json`` record carries.
RECORD_KEYS = (
    "arm",
    "mode",
    "headline",
    "budget",
    "n_labels",
    "n_val_labels",
    "val_protocol",
    "seed",
    "val_auroc",
    "auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "auprc",
    "auprc_ci_low",
    "auprc_ci_high",
)


def patient_level(scores: pd.DataFrame, how: str) -> pd.DataFrame:
    """Collapse image scores to one row per patient (``how="none"`` keeps images).

    Args:
        scores: ``patient_key, label, score`` (one split, one mode).
        how: ``"none"``, ``"max"`` or ``"mean"``.

    Returns:
        ``patient_key, label, score`` sorted by patient key.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"patient aggregation must be one of {AGGREGATIONS}, got {how!r}")
    if how == "none":
        out = scores[["patient_key", "label", "score"]]
        return out.sort_values("patient_key", kind="stable").reset_index(drop=True)
    patients, y, s = aggregate_by_patient(
        scores["patient_key"].to_numpy(),
        scores["label"].to_numpy(),
        scores["score"].to_numpy(),
        how=how,  # type: ignore[arg-type]
    )
    return pd.DataFrame({"patient_key": patients, "label": y, "score": s})


def split_level(scores: pd.DataFrame, split: str, how: str) -> pd.DataFrame:
    """:func:`patient_level` of one split (``val`` or ``test``) of one mode's scores."""
    return patient_level(scores[scores["split"] == split], how)


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def score_mode(
    scores: pd.DataFrame,
    *,
    how: str,
    n_boot: int,
    seed: int,
    specificities: Sequence[float] = (0.90, 0.95),
) -> dict[str, Any]:
    """Test metrics of one mode, thresholds frozen on its validation scores.

    Args:
        scores: ``patient_key, split, label, score`` of one mode (val and test images).
        how: patient aggregation.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        specificities: target specificities of the operating points.

    Returns:
        ``val_auroc`` plus the flat :func:`binary_report` (non-finite values become None).
    """
    val, test = split_level(scores, "val", how), split_level(scores, "test", how)
    report = binary_report(
        test["label"],
        test["score"],
        test["patient_key"],
        val["label"],
        val["score"],
        specificities=specificities,
        n_boot=n_boot,
        seed=seed,
    )
    out: dict[str, Any] = {"val_auroc": auroc(val["label"], val["score"])}
    out.update(report)
    return {k: _finite(v) for k, v in out.items()}


def compare_modes(
    a: pd.DataFrame, b: pd.DataFrame, *, how: str, method: str, n_boot: int, seed: int
) -> float | None:
    """Two-sided p-value that two modes have equal test AUROC on the same patients.

    Args:
        a: scores of the first mode (``patient_key, split, label, score``).
        b: scores of the second mode.
        how: patient aggregation (``"none"`` keeps images; use ``"bootstrap"`` then).
        method: ``"delong"`` (DeLong et al. 1988) or ``"bootstrap"`` (paired, by patient).
        n_boot: resamples of the bootstrap test.
        seed: bootstrap seed.

    Returns:
        The p-value, or None where it is undefined (degenerate variance).
    """
    if method not in COMPARISONS:
        raise ValueError(f"evaluate.compare must be one of {COMPARISONS}, got {method!r}")
    ta, tb = split_level(a, "test", how), split_level(b, "test", how)
    if not (
        np.array_equal(ta["patient_key"].to_numpy(), tb["patient_key"].to_numpy())
        and np.array_equal(ta["label"].to_numpy(), tb["label"].to_numpy())
    ):
        raise ValueError("the two modes were not scored on the same test cases")
    if method == "delong":
        p = delong_pvalue(ta["label"], ta["score"], tb["score"])
    else:
        p = paired_bootstrap_pvalue(
            ta["label"], ta["score"], tb["score"], ta["patient_key"], n_boot=n_boot, seed=seed
        )
    return p if math.isfinite(p) else None


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)


#: ``finetune.headline`` value: each run's headline is the mode its validation ranks first.
AUTO = "auto"
#: Tie-break of :data:`AUTO` (equal validation AUROC): the simpler mode first.
MODE_PREFERENCE = ("linear", "logistic", "knn", "full")


def choose_headline(records: Sequence[dict[str, Any]]) -> None:
    """Mark the headline of one run: the mode with the best validation AUROC.

    The choice uses only the run's validation labels (inside the budget under the
    ``budget`` protocol), never the test split; ties go to the simpler mode
    (:data:`MODE_PREFERENCE`). Sets ``headline`` and ``headline_rule`` in place.

    Args:
        records: the records of every mode of one arm x budget x seed.
    """

    def rank(r: Mapping[str, Any]) -> tuple[float, int]:
        val = r.get("val_auroc")
        score = float(val) if val is not None and math.isfinite(float(val)) else -1.0
        order = MODE_PREFERENCE.index(r["mode"]) if r["mode"] in MODE_PREFERENCE else 9
        return (-score, order)

    best = min(records, key=rank)
    for r in records:
        r["headline"] = r is best
        r["headline_rule"] = "auto: best validation AUROC"


def evaluate_runs(
    runs: Sequence[RunScores],
    headline: Mapping[str, str],
    *,
    how: str,
    n_boot: int,
    seed: int,
    method: str = "delong",
) -> list[dict[str, Any]]:
    """One record per arm x mode x budget x seed, with comparisons to the baselines.

    Args:
        runs: ``(run.json, scores.csv)`` pairs (:func:`medssl.runs.read_runs`); scores
            hold a ``mode`` column.
        headline: arm -> the mode it is reported by, fixed beforehand, or ``"auto"``: per
            run, the mode with the best validation AUROC (:func:`choose_headline`).
        how: patient aggregation.
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        method: comparison test, see :func:`compare_modes`.

    Returns:
        Records sorted by budget size, arm, mode and seed; ``p_vs_scratch`` /
        ``p_vs_pixels`` compare each mode with that baseline's headline mode on the same
        budget and seed (None where not applicable). ``n_val_labels`` (labels behind the
        validation choices) and ``val_protocol`` (``"budget"``: counted in the budget;
        ``"oracle"``: a separate, fully labelled split) are copied from run.json, None
        where an older run.json lacks them.
    """
    by_key: dict[tuple[str, str, int, str], pd.DataFrame] = {}
    records: list[dict[str, Any]] = []
    quiet = not sys.stderr.isatty()
    for run, scores in tqdm(runs, unit="run", desc="evaluate (bootstrap)", disable=quiet):
        arm, budget, rseed = str(run["arm"]), str(run["budget"]), int(run["seed"])
        if arm not in headline:
            raise ValueError(f"finetune.headline names no mode for arm {arm!r}")
        modes = sorted(set(scores["mode"]))
        if headline[arm] not in (*modes, AUTO):
            raise ValueError(f"finetune.headline.{arm}={headline[arm]!r} was not run: {modes}")
        first = len(records)
        for mode in modes:
            part = scores[scores["mode"] == mode]
            by_key[(arm, budget, rseed, mode)] = part
            rec: dict[str, Any] = {
                "arm": arm,
                "mode": mode,
                "headline": mode == headline[arm],
                "headline_rule": "fixed",
                "budget": run["budget"],
                "n_labels": int(run["n_labels"]),
                "n_abnormal": int(run.get("n_abnormal", -1)),
                "n_val_labels": _optional(run.get("n_val_labels"), int),
                "val_protocol": _optional(run.get("val_protocol"), str),
                "seed": rseed,
            }
            rec.update(score_mode(part, how=how, n_boot=n_boot, seed=seed))
            records.append(rec)
        if headline[arm] == AUTO:
            choose_headline(records[first:])
    chosen = {(r["arm"], str(r["budget"]), r["seed"]): r["mode"] for r in records if r["headline"]}
    for rec in records:
        key = (rec["arm"], str(rec["budget"]), rec["seed"], rec["mode"])
        for base in ("scratch", "pixels"):
            other = by_key.get((base, key[1], key[2], chosen.get((base, key[1], key[2]), "")))
            p = None
            if rec["arm"] != base and other is not None:
                p = compare_modes(
                    by_key[key], other, how=how, method=method, n_boot=n_boot, seed=seed
                )
            rec[f"p_vs_{base}"] = p
        rec["compare"] = method
    return sorted(records, key=_rank)


def _rank(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key: labels, arm (``ARM_ORDER`` first), mode, seed (when the row has one)."""
    order = {a: i for i, a in enumerate(ARM_ORDER)}
    arm = str(row["arm"])
    return (row["n_labels"], order.get(arm, 9), arm, str(row["mode"]), row.get("seed", -1))


def headline_curves(
    scores: pd.DataFrame, how: str, max_points: int | None = MAX_CURVE_POINTS
) -> dict[str, list[dict[str, float]]]:
    """ROC, PR and reliability points of one mode on the test split, one case per patient.

    The one source of these curves: the evaluate stage writes them as DVC plots
    (``plots/{roc,pr,calibration}/{arm}.json``) and the report draws them
    (:func:`medssl.report.figures.arm_curves`).

    Args:
        scores: one mode's ``patient_key, split, label, score``.
        how: patient aggregation.
        max_points: ROC and PR thinning (``None``: every point, as the report draws them).

    Returns:
        ``{"roc": [{fpr, tpr, threshold}], "pr": [{recall, precision}],
        "calibration": [{prob_pred, prob_true, count}]}``
        (:func:`~medssl.eval.metrics.curve_points`).
    """
    test = split_level(scores, "test", how)
    return curve_points(test["label"], test["score"], max_points)


def label_efficiency_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Headline AUROC and CI per arm vs number of labels, mean over seeds.

    Returns:
        ``n_labels`` plus ``{arm}``, ``{arm}_ci_low``, ``{arm}_ci_high`` (means over seeds)
        and ``{arm}_seed_min``, ``{arm}_seed_max`` (AUROC range across seeds) per arm.
    """
    frame = pd.DataFrame([r for r in records if r["headline"]])
    cols = ["auroc", "auroc_ci_low", "auroc_ci_high"]
    grouped = frame.groupby(["n_labels", "arm"])
    mean = grouped[cols].mean().unstack("arm")
    low, high = grouped["auroc"].min().unstack("arm"), grouped["auroc"].max().unstack("arm")
    table = pd.DataFrame(index=mean.index)
    arms = [a for a in ARM_ORDER if a in set(frame["arm"])]
    arms += sorted(set(frame["arm"]) - set(arms))
    for arm in arms:
        table[arm] = mean[("auroc", arm)]
        table[f"{arm}_ci_low"] = mean[("auroc_ci_low", arm)]
        table[f"{arm}_ci_high"] = mean[("auroc_ci_high", arm)]
        table[f"{arm}_seed_min"] = low[arm]
        table[f"{arm}_seed_max"] = high[arm]
    return table.round(4).reset_index()


#: ``value [low, high]``, the style of the report and the Markdown tables.
CI_BRACKETS = "{v:.3f} [{lo:.3f}, {hi:.3f}]"


def format_ci(record: Mapping[str, Any], metric: str, template: str = CI_BRACKETS) -> str:
    """A metric with its 95% CI from a record (``n/a`` when missing or not finite).

    Args:
        record: holds ``metric``, ``{metric}_ci_low`` and ``{metric}_ci_high``.
        metric: e.g. ``"auroc"``.
        template: format with fields ``v``, ``lo``, ``hi``.

    Returns:
        The formatted text; the bare value when the CI is missing.
    """
    value = record.get(metric)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    low, high = record.get(f"{metric}_ci_low"), record.get(f"{metric}_ci_high")
    if low is None or high is None:
        return f"{value:.3f}"
    return template.format(v=value, lo=low, hi=high)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: Any) -> str:
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def markdown_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The records as a Markdown table (headline modes in bold).

    Columns: labels, arm, mode, seed, validation AUROC, test AUROC [95 % CI], AUPRC [CI],
    sensitivity at 90 % and 95 % specificity (thresholds frozen on validation), ECE, Brier,
    p-values vs ``scratch`` and ``pixels``.
    """
    head = (
        "| labels | arm | mode | seed | val AUROC | test AUROC [95% CI] | AUPRC [95% CI] "
        "| sens@90%spec | sens@95%spec | ECE | Brier | p vs scratch | p vs pixels |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in records:
        mode = f"**{r['mode']}**" if r["headline"] else str(r["mode"])
        lines.append(
            f"| {r['n_labels']} | {r['arm']} | {mode} | {r['seed']} | {_fmt(r['val_auroc'])} "
            f"| {_fmt(r['auroc'])} [{_fmt(r['auroc_ci_low'])}, {_fmt(r['auroc_ci_high'])}] "
            f"| {_fmt(r['auprc'])} [{_fmt(r['auprc_ci_low'])}, {_fmt(r['auprc_ci_high'])}] "
            f"| {_fmt(r.get('sens_at_spec90'))} | {_fmt(r.get('sens_at_spec95'))} "
            f"| {_fmt(r.get('ece'))} | {_fmt(r.get('brier'))} "
            f"| {_p(r.get('p_vs_scratch'))} | {_p(r.get('p_vs_pixels'))} |"
        )
    return "\n".join(lines) + "\n"
