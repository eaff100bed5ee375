"""Figures people would rather look at than read: the label-efficiency curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

ARM_COLOURS = {"ssl": "tab:blue", "scratch": "tab:orange", "pixels": "tab:grey"}
MODE_STYLES = {"full": "-", "linear": "--", "knn": ":", "logistic": "-."}


def _by_labels(part: pd.DataFrame) -> pd.DataFrame:
    """Per ``n_labels``: AUROC mean, min, max and count across seeds, mean CI bounds."""
    grouped = part.groupby("n_labels")
    out = grouped[["auroc", "auroc_ci_low", "auroc_ci_high"]].mean()
    out["seed_min"] = grouped["auroc"].min()
    out["seed_max"] = grouped["auroc"].max()
    out["n_seeds"] = grouped["auroc"].count()
    return out


def _draw_headline(ax: Axes, agg: pd.DataFrame, colour: str | None, label: str) -> bool:
    """Mean line with markers, mean per-seed CI as error bars, seed range as a band.

    Returns:
        Whether a seed band was drawn (some budget has more than one seed).
    """
    x, mean = agg.index.to_numpy(dtype=float), agg["auroc"].to_numpy(dtype=float)
    below = np.nan_to_num(mean - agg["auroc_ci_low"].to_numpy(dtype=float)).clip(min=0)
    above = np.nan_to_num(agg["auroc_ci_high"].to_numpy(dtype=float) - mean).clip(min=0)
    ax.errorbar(
        x, mean, yerr=[below, above], marker="o", lw=2.0, capsize=3, color=colour, label=label
    )
    spread = bool((agg["n_seeds"] > 1).any())
    if spread:
        ax.fill_between(x, agg["seed_min"], agg["seed_max"], alpha=0.2, color=colour, lw=0)
    return spread


def _legend(ax: Axes, spread: bool) -> None:
    """Arm entries plus two keys: what the line, bars and band mean."""
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="k", marker="o", lw=2.0))
    labels.append("mean across seeds; bars: mean per-seed 95% CI")
    if spread:
        handles.append(Patch(color="k", alpha=0.2, lw=0))
        labels.append("band: min–max across seeds")
    ax.legend(handles, labels, fontsize="small", loc="lower right")


def label_efficiency_plot(records: Sequence[Mapping[str, Any]]) -> Figure:
    """Test AUROC vs number of labels for every arm and mode, mean across seeds.

    Headline modes are drawn bold: the mean AUROC across seeds as a line with markers, the
    mean of the seeds' 95 % CIs (patient bootstrap) as error bars, and the range across
    seeds (min..max) as a band where a budget has more than one seed. The other modes are
    thin mean lines. Used by the evaluate stage's PNG and by the report.

    Args:
        records: records with ``arm, n_labels, auroc, auroc_ci_low, auroc_ci_high`` and,
            when present, ``mode`` and ``headline`` (one record per seed).

    Returns:
        The open figure (the caller saves and closes it).
    """
    frame = pd.DataFrame(list(records))
    if "mode" not in frame:
        frame["mode"] = "full"
    if "headline" not in frame:
        frame["headline"] = True
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    spread = False
    is_headline = frame["headline"].fillna(False).astype(bool)
    for name, part in frame[is_headline].groupby("arm", sort=True):
        agg = _by_labels(part)
        modes = "/".join(sorted(set(part["mode"].astype(str))))
        seeds = int(agg["n_seeds"].max())
        label = f"{name} / {modes} (headline, {seeds} seed{'s' if seeds > 1 else ''})"
        spread = _draw_headline(ax, agg, ARM_COLOURS.get(str(name)), label) or spread
    for (arm, mode), part in frame.groupby(["arm", "mode"], sort=True):
        agg = _by_labels(part)
        ls, label = MODE_STYLES.get(str(mode), "-"), f"{arm} / {mode}"
        colour = ARM_COLOURS.get(str(arm))
        ax.plot(agg.index, agg["auroc"], marker=".", ls=ls, lw=0.8, color=colour, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test AUROC (mean across seeds)")
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    low = float(frame[["auroc_ci_low", "auroc"]].min().min()) if len(frame) else 0.0
    ax.set_ylim(max(0.0, min(0.5, low) - 0.02), 1.0)
    _legend(ax, spread)
    ax.set_title("Label efficiency")
    fig.tight_layout()
    return fig


def label_efficiency_figure(records: Sequence[Mapping[str, Any]], out: Path) -> None:
    """:func:`label_efficiency_plot` saved as a PNG at ``out``."""
    fig = label_efficiency_plot(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
