"""Figures people would rather look at than read: label efficiency and ROC."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ARM_COLOURS = {"ssl": "tab:blue", "scratch": "tab:orange", "pixels": "tab:grey"}


def label_efficiency_figure(records: Sequence[dict[str, Any]], out: Path) -> None:
    """AUROC vs number of labels per arm, mean over seeds, with the 95 % CI band.

    Args:
        records: per-run records with ``arm, n_labels, auroc, auroc_ci_low, auroc_ci_high``.
        out: PNG path.
    """
    frame = pd.DataFrame(list(records))
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    for arm, part in frame.groupby("arm", sort=True):
        agg = part.groupby("n_labels")[["auroc", "auroc_ci_low", "auroc_ci_high"]].mean()
        colour = ARM_COLOURS.get(str(arm))
        ax.plot(agg.index, agg["auroc"], marker="o", label=str(arm), color=colour)
        ax.fill_between(
            agg.index, agg["auroc_ci_low"], agg["auroc_ci_high"], alpha=0.2, color=colour
        )
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test AUROC (95% CI, patient bootstrap)")
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set_ylim(0.0, 1.0)
    ax.legend(title="arm")
    ax.set_title("Label efficiency")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
