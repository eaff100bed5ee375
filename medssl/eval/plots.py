"""Figures people would rather look at than read: the label-efficiency curve."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

ARM_COLOURS = {"ssl": "tab:blue", "scratch": "tab:orange", "pixels": "tab:grey"}
MODE_STYLES = {"full": "-", "linear": "--", "knn": ":", "logistic": "-."}


def label_efficiency_plot(records: Sequence[Mapping[str, Any]]) -> Figure:
    """Test AUROC vs number of labels for every arm and mode, mean over seeds.

    Headline modes are drawn bold with their 95 % CI band (patient bootstrap, mean of the
    seeds' bounds); the other modes thin, without band. Used by the evaluate stage's PNG
    and by the report.

    Args:
        records: records with ``arm, n_labels, auroc, auroc_ci_low, auroc_ci_high`` and,
            when present, ``mode`` and ``headline``.

    Returns:
        The open figure (the caller saves and closes it).
    """
    frame = pd.DataFrame(list(records))
    if "mode" not in frame:
        frame["mode"] = "full"
    if "headline" not in frame:
        frame["headline"] = True
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    for (arm, mode), part in frame.groupby(["arm", "mode"], sort=True):
        agg = part.groupby("n_labels")[["auroc", "auroc_ci_low", "auroc_ci_high"]].mean()
        colour = ARM_COLOURS.get(str(arm))
        bold = bool(part["headline"].fillna(False).astype(bool).any())
        ax.plot(
            agg.index,
            agg["auroc"],
            marker="o" if bold else ".",
            ls=MODE_STYLES.get(str(mode), "-"),
            lw=2.0 if bold else 1.0,
            color=colour,
            label=f"{arm} / {mode}" + (" (headline)" if bold else ""),
        )
        if bold:
            ax.fill_between(
                agg.index, agg["auroc_ci_low"], agg["auroc_ci_high"], alpha=0.2, color=colour
            )
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test AUROC (95% CI, patient bootstrap)")
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    low = float(frame["auroc_ci_low"].min()) if len(frame) else 0.0
    ax.set_ylim(max(0.0, min(0.5, low) - 0.02), 1.0)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title("Label efficiency")
    fig.tight_layout()
    return fig


def label_efficiency_figure(records: Sequence[Mapping[str, Any]], out: Path) -> None:
    """:func:`label_efficiency_plot` saved as a PNG at ``out``."""
    fig = label_efficiency_plot(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
