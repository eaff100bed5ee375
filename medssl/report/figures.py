"""Report figures as PNG bytes: sample images, curves, label efficiency, saliency overlays.

PNGs are written without the ``Software`` text chunk and without timestamps, so the same
inputs give the same bytes (the report is a DVC output and must be reproducible).
ROC, precision-recall and reliability curves are the evaluate stage's
(:func:`medssl.eval.protocol.headline_curves`, :func:`medssl.eval.metrics.curve_points`):
:mod:`sklearn.metrics` curves and one reliability binning,
:data:`~medssl.eval.metrics.CALIBRATION_BINS` equal-width bins
(:func:`sklearn.calibration.calibration_curve`; Niculescu-Mizil & Caruana, ICML 2005).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from sklearn.metrics import auc  # noqa: E402

from medssl.eval.metrics import curve_points  # noqa: E402
from medssl.eval.plots import ARM_COLOURS, label_efficiency_plot  # noqa: E402
from medssl.eval.protocol import headline_curves  # noqa: E402

DPI = 100


def png_of(fig: Figure) -> bytes:
    """Render and close a figure; PNG bytes without metadata text."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def display_slice(image: NDArray[Any]) -> NDArray[np.float64]:
    """A 2D view of an image for display.

    Radiographs keep the stored row/column layout of the source (the DICOM presentation:
    NIfTI axis 0 is the column, axis 1 the row). Volumes (RAS+ after ingestion) show
    their middle axial slice in radiological convention: patient's right on the left of
    the picture, anterior at the top.

    Args:
        image: ``(X, Y)`` or ``(X, Y, Z)`` in NIfTI voxel order, optionally with a
            leading channel axis of size 1.

    Returns:
        ``(rows, cols)`` float64.
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim in (3, 4) and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        return np.ascontiguousarray(arr.T)
    if arr.ndim == 3:
        axial = arr[:, :, arr.shape[2] // 2]
        return np.ascontiguousarray(axial.T[::-1, ::-1])
    raise ValueError(f"expected a 2D or 3D image, got shape {np.shape(image)}")


def sample_grid(items: Sequence[tuple[NDArray[Any], str]], ncols: int = 4) -> bytes:
    """Thumbnails in a grid.

    Args:
        items: ``(image, caption)``; image as accepted by :func:`display_slice`.
        ncols: thumbnails per row.

    Returns:
        PNG bytes.
    """
    n = max(len(items), 1)
    cols = min(ncols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image, caption) in zip(axes.ravel(), items, strict=False):
        ax.imshow(display_slice(image), cmap="gray")
        ax.set_title(caption, fontsize=9)
    fig.tight_layout()
    return png_of(fig)


@dataclass(frozen=True)
class Curves:
    """Points of ROC, precision-recall and reliability curves of one arm.

    Attributes:
        fpr, tpr: ROC points.
        recall, precision: PR points.
        prob_pred, prob_true: reliability diagram (mean predicted, observed frequency).
        auroc: area under the ROC curve.
        prevalence: fraction of positives (PR baseline).
    """

    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]
    recall: NDArray[np.float64]
    precision: NDArray[np.float64]
    prob_pred: NDArray[np.float64]
    prob_true: NDArray[np.float64]
    auroc: float
    prevalence: float


#: Curve points as :func:`medssl.eval.metrics.curve_points` gives them.
CurvePoints = Mapping[str, Sequence[Mapping[str, float]]]


def curves_from_points(points: CurvePoints) -> Curves:
    """Drawable arrays from ``{"roc", "pr", "calibration"}`` points.

    Args:
        points: from :func:`medssl.eval.protocol.headline_curves` or
            :func:`medssl.eval.metrics.curve_points`; unthinned (``max_points=None``) for an
            exact AUROC.

    Returns:
        The curves; ``auroc`` is the trapezoidal area under the ROC points (equal to
        :func:`sklearn.metrics.roc_auc_score` for unthinned points), ``prevalence`` the
        count-weighted observed fraction of the reliability bins (exact).
    """

    def column(kind: str, key: str) -> NDArray[np.float64]:
        return np.array([float(p[key]) for p in points[kind]], dtype=np.float64)

    fpr, tpr = column("roc", "fpr"), column("roc", "tpr")
    counts = column("calibration", "count")
    prob_true = column("calibration", "prob_true")
    return Curves(
        fpr,
        tpr,
        column("pr", "recall"),
        column("pr", "precision"),
        column("calibration", "prob_pred"),
        prob_true,
        float(auc(fpr, tpr)),
        float((counts * prob_true).sum() / counts.sum()),
    )


def curves_of(labels: NDArray[Any], scores: NDArray[Any]) -> Curves:
    """ROC, PR and reliability curves of labels and probabilities (every ROC/PR point).

    Args:
        labels: ``(n,)`` in {0, 1}, both classes present.
        scores: ``(n,)`` probabilities of the abnormal class, in [0, 1].

    Returns:
        The curves (:func:`curves_from_points` of :func:`medssl.eval.metrics.curve_points`).

    Raises:
        ValueError: with a single class, or scores outside [0, 1].
    """
    y = np.asarray(labels, dtype=np.int64)
    if len(np.unique(y)) != 2:
        raise ValueError("curves need both classes among the labels")
    return curves_from_points(curve_points(y, np.asarray(scores, dtype=np.float64), None))


def arm_curves(
    records: Iterable[Mapping[str, Any]],
    scores_of: Callable[[Mapping[str, Any]], pd.DataFrame | None],
    n_labels: int,
    seed: int,
    how: str,
) -> dict[str, Curves]:
    """The curves of each record at one budget and seed, as the evaluate stage computes them.

    Args:
        records: metrics records (``arm``, ``mode``, ``n_labels``, ``seed``), e.g. the
            headline ones (:func:`medssl.audit.headline_records`).
        scores_of: a record's test scores (``patient_key, split, label, score``), or
            ``None`` when its run is missing; records without both classes are left out.
        n_labels: the budget.
        seed: the seed.
        how: patient aggregation (``evaluate.patient_aggregation``).

    Returns:
        ``"{arm} {mode}"`` -> :func:`curves_from_points` of
        :func:`medssl.eval.protocol.headline_curves` (unthinned).
    """
    out = {}
    for r in records:
        if r["n_labels"] != n_labels or r["seed"] != seed:
            continue
        scores = scores_of(r)
        if scores is None or scores["label"].nunique() < 2:
            continue
        points = headline_curves(scores, how, max_points=None)
        out[f"{r['arm']} {r.get('mode', '')}".strip()] = curves_from_points(points)
    return out


def curves_png(curves: Mapping[str, Curves]) -> bytes:
    """ROC, precision-recall and calibration panels, one line per arm."""
    fig, (roc, pr, cal) = plt.subplots(1, 3, figsize=(13, 4.2))
    for arm, c in curves.items():
        colour = ARM_COLOURS.get(arm.split(" ")[0])
        roc.plot(c.fpr, c.tpr, color=colour, label=f"{arm} (AUROC {c.auroc:.2f})")
        pr.step(c.recall, c.precision, where="post", color=colour, label=arm)
        cal.plot(c.prob_pred, c.prob_true, marker="o", color=colour, label=arm)
    roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    cal.plot([0, 1], [0, 1], "k:", lw=0.8)
    if curves:
        pr.axhline(next(iter(curves.values())).prevalence, color="k", ls=":", lw=0.8)
    for ax, title, xl, yl in (
        (roc, "ROC", "1 - specificity", "sensitivity"),
        (pr, "Precision-recall", "recall (sensitivity)", "precision (PPV)"),
        (cal, "Calibration", "mean predicted probability", "observed abnormal fraction"),
    ):
        ax.set(title=title, xlabel=xl, ylabel=yl, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.legend(fontsize=8, loc="lower right" if ax is not pr else "lower left")
    fig.tight_layout()
    return png_of(fig)


def label_efficiency_png(records: Sequence[Mapping[str, Any]]) -> bytes:
    """The evaluate stage's label-efficiency curve (:func:`label_efficiency_plot`) as PNG."""
    return png_of(label_efficiency_plot(records))


def saliency_png(items: Sequence[tuple[NDArray[Any], NDArray[Any], str]]) -> bytes:
    """Image and saliency overlay side by side, one row per case.

    Args:
        items: ``(image, saliency, caption)``; both arrays as accepted by
            :func:`display_slice`, saliency in [0, 1].

    Returns:
        PNG bytes.
    """
    n = max(len(items), 1)
    fig, axes = plt.subplots(n, 2, figsize=(5.2, 2.6 * n), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for (a, b), (image, heat, caption) in zip(axes, items, strict=False):
        shown = display_slice(image)
        a.imshow(shown, cmap="gray")
        a.set_title(caption, fontsize=8)
        b.imshow(shown, cmap="gray")
        hot = np.ma.masked_less(display_slice(heat), 0.2)  # show the top of the map only
        b.imshow(hot, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
        b.set_title("saliency", fontsize=8)
    fig.tight_layout()
    return png_of(fig)
