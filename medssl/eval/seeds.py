"""Seeds are part of the result: mean and spread across seeds, the headline text, the verdict.

With few labels, which labels were drawn matters as much as the test sample, so every arm x
mode x budget is summarised across seeds beside the mean of each seed's patient-bootstrap CI
(records from :func:`medssl.eval.protocol.evaluate_runs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medssl.eval.protocol import ARM_ORDER, _fmt, _rank, format_ci

#: ``mode`` prefix of a :func:`seed_summary` row over headline records of several modes.
HEADLINE_ROW = "headline"
#: Keys of each :func:`seed_summary` row (``results/label_efficiency_seeds.json``).
SEED_SUMMARY_KEYS = (
    "arm",
    "mode",
    "headline",
    "budget",
    "n_labels",
    "n_val_labels",
    "val_protocol",
    "n_seeds",
    "seeds",
    "auroc_mean",
    "auroc_sd",
    "auroc_min",
    "auroc_max",
    "auroc_ci_low_mean",
    "auroc_ci_high_mean",
    "auprc_mean",
    "sens_at_spec90_mean",
    "val_auroc_mean",
)


def _finite_values(group: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    values = [r.get(key) for r in group]
    out = np.array([v for v in values if v is not None], dtype=float)
    finite: np.ndarray = out[np.isfinite(out)]
    return finite


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _int_mean(values: Sequence[Any]) -> int | None:
    known = [float(v) for v in values if v is not None]
    return round(sum(known) / len(known)) if known else None


def _shared(values: Sequence[Any]) -> str | None:
    """The value the seeds share; differing values joined with ``+``; None when none."""
    known = sorted({str(v) for v in values if v is not None})
    return "+".join(known) if known else None


def _auroc_spread(group: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Mean, sample SD (ddof=1, None below two seeds), min and max of the seeds' AUROC."""
    values = _finite_values(group, "auroc")
    return {
        "auroc_mean": _mean(values),
        "auroc_sd": float(values.std(ddof=1)) if values.size > 1 else None,
        "auroc_min": float(values.min()) if values.size else None,
        "auroc_max": float(values.max()) if values.size else None,
    }


def _summarise(group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One :func:`seed_summary` row from the records of one arm x mode x budget."""
    first = group[0]
    row: dict[str, Any] = {
        "arm": first["arm"],
        "mode": first["mode"],
        "headline": all(bool(r.get("headline")) for r in group),
        "budget": first["budget"],
        "n_labels": _int_mean([r["n_labels"] for r in group]),
        "n_val_labels": _int_mean([r.get("n_val_labels") for r in group]),
        "val_protocol": _shared([r.get("val_protocol") for r in group]),
        "n_seeds": len(group),
        "seeds": sorted(int(r["seed"]) for r in group),
    }
    row.update(_auroc_spread(group))
    for key in ("auroc_ci_low", "auroc_ci_high", "auprc", "sens_at_spec90", "val_auroc"):
        row[f"{key}_mean"] = _mean(_finite_values(group, key))
    return row


def seed_summary(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread across seeds, one row per arm x mode x budget.

    With few labels, which labels were drawn matters as much as the test sample: the spread
    across seeds is reported beside the mean of each seed's patient-bootstrap CI.

    Args:
        records: :func:`evaluate_runs` records (one per arm x mode x budget x seed).

    Returns:
        Rows with :data:`SEED_SUMMARY_KEYS`, sorted like :func:`evaluate_runs`. ``auroc_sd``
        is the sample SD (ddof=1), None with one seed; means skip missing (None) values.
        ``val_protocol`` joins differing values with ``+``. A mode row is ``headline`` when
        it was the headline of every seed; where an ``auto`` headline differs between
        seeds, one more row (``mode`` = ``headline(linear/full)``) summarises the headline
        records whatever their mode.
    """
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((str(r["arm"]), str(r["mode"]), str(r["budget"])), []).append(r)
    rows = [_summarise(g) for g in groups.values()]
    covered = {(r["arm"], str(r["budget"])) for r in rows if r["headline"]}
    mixed: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:  # auto headlines that differ between seeds: one row over their modes
        key = (str(r["arm"]), str(r["budget"]))
        if r.get("headline") and key not in covered:
            mixed.setdefault(key, []).append(r)
    for group in mixed.values():
        modes = "/".join(sorted({str(r["mode"]) for r in group}))
        rows.append({**_summarise(group), "mode": f"{HEADLINE_ROW}({modes})", "headline": True})
    return sorted(rows, key=_rank)


def headline_text(summary: Sequence[Mapping[str, Any]]) -> str:
    """The answer on the screen: each arm's headline AUROC and CI at each budget, the verdict.

    Args:
        summary: :func:`seed_summary` rows.

    Returns:
        A plain-text table (one row per budget, one column per arm: mean test AUROC across
        seeds with the mean per-seed 95 % CI) followed by the :func:`verdict` sentences.
    """
    heads = [r for r in summary if r["headline"]]
    arms = [a for a in ARM_ORDER if any(r["arm"] == a for r in heads)]
    budgets = sorted({(int(r["n_labels"]), str(r["budget"])) for r in heads})
    cells = {(str(r["budget"]), r["arm"]): r for r in heads}
    width = 24
    lines = ["labels  " + "".join(f"{a:<{width}}" for a in arms)]
    for n, budget in budgets:
        row = f"{n:<8}"
        for arm in arms:
            r = cells.get((budget, arm))
            text = "–" if r is None else format_ci(
                {"v": r["auroc_mean"], "v_ci_low": r["auroc_ci_low_mean"],
                 "v_ci_high": r["auroc_ci_high_mean"]}, "v")  # fmt: skip
            row += f"{text:<{width}}"
        lines.append(row.rstrip())
    seeds = max((int(r["n_seeds"]) for r in heads), default=0)
    lines.append(f"(test AUROC of each arm's headline mode, mean of {seeds} seed(s) [mean 95% CI])")
    return "\n".join([*lines, "", *verdict(summary)]) + "\n"


def verdict(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    """Plain sentences: does the SSL arm beat scratch (and raw pixels), budget by budget?

    Judged on what a site can see before any test: the headline modes' mean validation
    AUROC across seeds (within-budget labels under the ``budget`` protocol); the test
    means are given beside it, for the record. Where the ``pixels`` arm ran, the sentence
    says whether SSL beats it too.

    Args:
        summary: :func:`seed_summary` rows.

    Returns:
        One sentence per budget that has headline rows for both ``ssl`` and ``scratch``.
    """
    heads = {(r["arm"], str(r["budget"])): r for r in summary if r["headline"]}
    lines = []
    for (arm, budget), ssl in sorted(heads.items(), key=lambda kv: kv[1]["n_labels"]):
        scratch = heads.get(("scratch", budget))
        if arm != "ssl" or scratch is None:
            continue
        sv, cv = ssl.get("val_auroc_mean"), scratch.get("val_auroc_mean")
        if sv is None or cv is None:
            continue
        word = "beats" if sv > cv else "does NOT beat"
        line = (
            f"{ssl['n_labels']} labels: SSL {word} scratch on validation "
            f"({sv:.3f} vs {cv:.3f}, {ssl['n_val_labels']} validation labels, "
            f"{ssl['val_protocol']} protocol); test {_fmt(ssl['auroc_mean'])} vs "
            f"{_fmt(scratch['auroc_mean'])}, mean of {ssl['n_seeds']} seed(s)."
        )
        pixels = heads.get(("pixels", budget))
        pv = None if pixels is None else pixels.get("val_auroc_mean")
        if pixels is not None and pv is not None:
            word = "beats" if sv > pv else "does NOT beat"
            line += (
                f" SSL {word} raw pixels on validation ({sv:.3f} vs {pv:.3f}); test "
                f"{_fmt(ssl['auroc_mean'])} vs {_fmt(pixels['auroc_mean'])}."
            )
        lines.append(line)
    return lines


def seed_markdown_table(summary: Sequence[Mapping[str, Any]]) -> str:
    """:func:`seed_summary` rows as a Markdown table (headline modes in bold).

    Columns: labels, arm, mode, number of seeds, validation labels and their protocol
    (``budget`` or ``oracle``), test AUROC mean ± SD [min, max] across seeds, and the mean of
    the seeds' 95 % CI bounds (patient bootstrap).
    """
    head = (
        "| labels | arm | mode | seeds | n val labels | protocol "
        "| AUROC mean ± SD [min, max] | mean per-seed 95% CI |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in summary:
        mode = f"**{r['mode']}**" if r["headline"] else str(r["mode"])
        n_val = "–" if r.get("n_val_labels") is None else str(r["n_val_labels"])
        spread = (
            f"{_fmt(r['auroc_mean'])} ± {_fmt(r['auroc_sd'])} "
            f"[{_fmt(r['auroc_min'])}, {_fmt(r['auroc_max'])}]"
        )
        lines.append(
            f"| {r['n_labels']} | {r['arm']} | {mode} | {r['n_seeds']} | {n_val} "
            f"| {r.get('val_protocol') or '–'} | {spread} "
            f"| [{_fmt(r['auroc_ci_low_mean'])}, {_fmt(r['auroc_ci_high_mean'])}] |"
        )
    return "\n".join(lines) + "\n"
