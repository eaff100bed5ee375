"""Label-efficiency figure: mean across seeds, seed band, mean per-seed CI bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer

from medssl.eval.plots import label_efficiency_figure, label_efficiency_plot


def records(seeds: int) -> list[dict[str, Any]]:
    """Per-seed headline records of two arms plus a non-headline mode, three budgets."""
    rng = np.random.default_rng(0)
    out = []
    for arm, mode, headline in (("ssl", "full", True), ("ssl", "linear", False),
                                ("scratch", "full", True)):  # fmt: skip
        for n in (8, 32, 128):
            for seed in range(seeds):
                a = float(np.clip(0.6 + 0.05 * np.log2(n / 8) + rng.normal(0, 0.03), 0, 1))
                out.append({"arm": arm, "mode": mode, "headline": headline, "n_labels": n,
                            "seed": seed, "auroc": a, "auroc_ci_low": a - 0.08,
                            "auroc_ci_high": min(1.0, a + 0.08)})  # fmt: skip
    return out


def bands(fig: Any) -> list[PolyCollection]:
    return [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


@pytest.mark.parametrize("seeds", [1, 3])
def test_figure_writes_a_png(tmp_path: Path, seeds: int) -> None:
    out = tmp_path / "plots" / "le.png"
    label_efficiency_figure(records(seeds), out)
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 1000


def test_mean_line_seed_band_and_legend() -> None:
    recs = records(3)
    fig = label_efficiency_plot(recs)
    try:
        ax = fig.axes[0]
        ssl = [r["auroc"] for r in recs if r["arm"] == "ssl" and r["mode"] == "full"]
        mean = np.array(ssl).reshape(3, 3).mean(axis=1)
        bars = next(c for c in ax.containers if str(c.get_label()).startswith("ssl / full"))
        assert isinstance(bars, ErrorbarContainer) and bars.has_yerr
        line = bars.lines[0]  # the mean line of the error-bar container
        assert np.allclose(line.get_ydata(), mean)
        assert line.get_marker() == "o"
        assert len(bands(fig)) == 2  # one seed band per headline arm
        texts = legend_texts(ax)
        assert "ssl / full (headline, 3 seeds)" in texts
        assert "mean across seeds; bars: mean per-seed 95% CI" in texts
        assert "band: min–max across seeds" in texts
    finally:
        plt.close(fig)


def test_one_seed_has_no_band() -> None:
    fig = label_efficiency_plot(records(1))
    try:
        texts = legend_texts(fig.axes[0])
        assert bands(fig) == [] and "band: min–max across seeds" not in texts
        assert "ssl / full (headline, 1 seed)" in texts
    finally:
        plt.close(fig)
