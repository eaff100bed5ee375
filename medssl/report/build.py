"""Sections of the HTML report, each built from tables and records already in memory.

Nothing here reads files. Shown: counts, metrics, de-identified pixels and keyed hashes'
summaries; never a patient key, image id, file name or quarantine message (those can hold
identifiers), only quarantine reason codes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medssl.burned_in.flags import shows_pixel_identity
from medssl.eval.protocol import format_ci
from medssl.eval.seeds import seed_summary, verdict
from medssl.report import figures
from medssl.report.html import Section, figure, paragraph, render_page, table

Case = tuple[NDArray[Any], NDArray[Any], str]


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def data_section(
    manifest: pd.DataFrame, quarantine: pd.DataFrame, splits: pd.DataFrame, labels: pd.DataFrame
) -> Section:
    """Images per modality, quarantine reasons and patients per split.

    Args:
        manifest: ``modality, spatial_dims`` per ingested image.
        quarantine: ``reason`` per quarantined file.
        splits: ``image_id, patient_key, split``.
        labels: ``image_id, label``.

    Returns:
        The section.
    """
    per_mod = manifest.groupby(["modality", "spatial_dims"]).size().reset_index(name="n")
    mod_rows = [[m, f"{d}D", int(n)] for m, d, n in per_mod.itertuples(index=False)]
    reasons = quarantine["reason"].value_counts().sort_index() if len(quarantine) else pd.Series()
    q_rows = [[r, int(n)] for r, n in reasons.items()]
    joined = splits.merge(labels[["image_id", "label"]], on="image_id", how="left")
    s_rows = []
    for split in ("train", "val", "test"):
        part = joined[joined["split"] == split]
        lab = pd.to_numeric(part["label"], errors="coerce")
        s_rows.append(
            [
                split,
                part["patient_key"].nunique(),
                len(part),
                int(lab.notna().sum()),
                int((lab == 1).sum()),
                int((lab == 0).sum()),
            ]  # fmt: skip
        )
    body = "".join(
        [
            paragraph(
                f"{len(manifest)} images ingested from "
                f"{manifest['patient_key'].nunique() if 'patient_key' in manifest else '?'} "
                f"patients; {len(quarantine)} files quarantined."
            ),
            "<h3>Images per modality</h3>",
            table(["modality", "dimensions", "images"], mod_rows),
            "<h3>Quarantine reasons</h3>",
            table(["reason", "files"], q_rows) if q_rows else paragraph("No file quarantined."),
            "<h3>Patients per split</h3>",
            paragraph("Splits are by patient: no patient appears in two splits."),
            table(["split", "patients", "images", "labelled", "abnormal", "normal"], s_rows),
        ]
    )
    return Section("data", "Data", body)


def samples_section(samples: Mapping[str, Sequence[NDArray[Any]]]) -> Section:
    """A thumbnail grid per class (``class name -> images``)."""
    parts = []
    for name, images in samples.items():
        if not images:
            parts.append(paragraph(f"No labelled {name} image."))
            continue
        png = figures.sample_grid([(im, name) for im in images])
        parts.append(figure(png, f"{len(images)} {name} images (random, seeded)", name))
    return Section("samples", "Sample images", "".join(parts))


def efficiency_section(records: Sequence[Mapping[str, Any]]) -> Section:
    """The label-efficiency curve (solid lines: headline modes)."""
    png = figures.label_efficiency_png(records)
    caption = (
        "Test AUROC against the number of labelled training images. Bold lines: each arm's "
        "headline mode, mean over seeds, with the mean per-seed 95% patient-bootstrap CI as "
        "bars and the range across seeds as a band; thin lines: every mode's mean."
    )
    said = verdict(seed_summary(records))
    text = paragraph(" ".join(said)) if said else ""
    body = text + figure(png, caption, "label efficiency")
    return Section("efficiency", "Label efficiency: does self-supervision pay here?", body)


def curves_section(curves: Mapping[str, figures.Curves], context: str) -> Section:
    """ROC, precision-recall and calibration of the headline modes."""
    if not curves:
        return Section("curves", "ROC, PR and calibration", paragraph("No curve: one class only."))
    png = figures.curves_png(curves)
    return Section("curves", "ROC, PR and calibration", figure(png, context, "ROC PR calibration"))


def metrics_section(records: Sequence[Mapping[str, Any]]) -> Section:
    """Every run's test metrics with 95 % CIs; headline rows in bold."""
    order = sorted(
        records, key=lambda r: (str(r["arm"]), str(r.get("mode", "")), r["n_labels"], r["seed"])
    )
    rows = [
        [
            r["arm"],
            r.get("mode", ""),
            r["n_labels"],
            r["seed"],
            format_ci(r, "auroc"),
            format_ci(r, "auprc"),
            format_ci(r, "sens_at_spec90"),
            _num(r.get("spec_at_spec90")),
            _num(r.get("ece")),
            _num(r.get("brier")),
            _num(r.get("p_vs_scratch"), 4),
            _num(r.get("p_vs_pixels"), 4),
        ]  # fmt: skip
        for r in order
    ]
    header = [
        "arm", "mode", "labels", "seed", "AUROC [95% CI]", "AUPRC [95% CI]",
        "sens. at 90% spec. [95% CI]", "spec. at that threshold", "ECE", "Brier", "p vs scratch",
        "p vs pixels",
    ]  # fmt: skip
    bold = [bool(r.get("headline", False)) for r in order]
    note = paragraph(
        "Test split, patient level. Thresholds were frozen on validation; CIs come from a "
        "bootstrap that resamples patients. Bold rows: each arm's headline mode."
    )
    return Section("metrics", "Metrics", note + table(header, rows, bold))


def saliency_section(
    true_pos: Sequence[Case], false_pos: Sequence[Case], method: str, threshold: float
) -> Section:
    """Saliency maps of the exported model on true and false positives of the test split."""
    names = {"gradcam": "Grad-CAM", "occlusion": "Occlusion-sensitivity"}
    parts = [
        paragraph(
            f"{names.get(method, method)} saliency (MONAI) of the exported model's abnormal "
            "logit on test images called "
            f"abnormal (probability >= {threshold:.3g}). Saliency is qualitative: it can "
            "highlight confounders as readily as findings."
        )
    ]
    for title, cases in (("True positives", true_pos), ("False positives", false_pos)):
        parts.append(f"<h3>{title}</h3>")
        if cases:
            parts.append(figure(figures.saliency_png(cases), title, title))
        else:
            parts.append(paragraph(f"No {title.lower()} at this threshold."))
    return Section("saliency", "Saliency maps", "".join(parts))


def record_section(record: Mapping[str, Any]) -> Section:
    """A summary of the run record for an auditor."""
    code = record.get("code", {})
    env = record.get("environment", {})
    hw = env.get("hardware", {})
    commit = str(code.get("git_commit") or "not a git repository")
    dirty = {True: "yes", False: "no"}.get(code.get("git_dirty"), "unknown")
    splits = record.get("splits", {})
    overlap = splits.get("patients_in_several_splits")
    facts: list[list[object]] = [
        ["git commit", commit],
        ["uncommitted changes", f"{dirty} ({code.get('n_changed', 0)} paths)"],
        ["pipeline stages recorded", len(record.get("stages", {}))],
        ["patients in more than one split", overlap],
        ["de-identification", record.get("deid_profile", {}).get("implementation", "")],
        ["OS", hw.get("os", "")],
        ["CPU", f"{hw.get('cpu', '')} x {hw.get('cpu_count', '')}"],
        ["GPU", ", ".join(g["name"] for g in hw.get("gpus", [])) or "none"],
        ["seeds", ", ".join(f"{k}={v}" for k, v in sorted(record.get("seeds", {}).items()))],
    ]
    versions = [[k, v] for k, v in sorted(env.get("packages", {}).items())]
    artifacts = [
        [name, a["path"], str(a["md5"])] for name, a in sorted(record.get("artifacts", {}).items())
    ]
    heads = [
        [m["arm"], m.get("mode", ""), m["n_labels"], m["seed"], m["metric"],
         f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]", ", ".join(m["stages"])]
        for m in record.get("headline_metrics", [])
    ]  # fmt: skip
    warn = "" if overlap == 0 else paragraph("Patient overlap across splits is not 0.", "bad")
    body = "".join(
        [
            warn,
            paragraph(
                "From results/audit/run_record.json; `medssl audit verify` re-checks it "
                "against the workspace."
            ),
            table(["fact", "value"], facts),
            "<h3>Headline metrics and the stages that produced them</h3>",
            table(["arm", "mode", "labels", "seed", "metric", "value [95% CI]", "stages"], heads),
            "<h3>Artifacts (DVC md5)</h3>",
            table(["artifact", "path", "md5"], artifacts),
            "<h3>Package versions</h3>",
            table(["package", "version"], versions),
        ]
    )
    return Section("record", "Run record", body)


def summary_section(exported: Mapping[str, Any] | None, demo: bool) -> Section:
    """What the page is, the exported model's headline numbers and the PHI statement."""
    parts = []
    if demo:
        parts.append(
            paragraph(
                "Synthetic demo data: these numbers show that the pipeline works, nothing "
                "about any clinical task.",
                "note",
            )
        )
    if exported is not None:
        parts.append(
            paragraph(
                f"Exported model: {exported['arm']} arm, {exported.get('mode', '')} "
                f"fine-tuning on {exported['n_labels']} labels (seed {exported['seed']}); "
                f"test AUROC {format_ci(exported, 'auroc')}, AUPRC {format_ci(exported, 'auprc')}."
            )
        )
    parts.append(
        paragraph(
            "This page holds no patient identifiers: images are de-identified, and patient "
            "keys, image ids and file names are not shown."
        )
    )
    return Section("summary", "Summary", "".join(parts))


def build_report(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The HTML page (see :func:`medssl.report.html.render_page`)."""
    return render_page(title, subtitle, sections)


def showable(frame: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose image may be shown: none flagged for identity in its pixels.

    Args:
        frame: any table with an ``image_id`` column (scores, labelled splits).
        manifest: the ingestion manifest (``image_id``, ``qc_flags``).

    Returns:
        ``frame`` without images flagged ``burned_in_text``, ``text_redacted`` or
        ``burned_in_annotation`` (see :func:`medssl.burned_in.shows_pixel_identity`).
    """
    flags = manifest["qc_flags"].fillna("").astype(str)
    hidden = set(manifest.loc[flags.map(shows_pixel_identity), "image_id"].astype(str))
    return frame[~frame["image_id"].astype(str).isin(hidden)]


def pick_cases(scores: pd.DataFrame, threshold: float, k: int) -> tuple[list[str], list[str]]:
    """Image ids of the top-scoring true and false positives.

    Args:
        scores: ``image_id, label, score`` of test images.
        threshold: probability at or above which an image is called abnormal.
        k: cases per kind.

    Returns:
        ``(true positive ids, false positive ids)``, highest score first (ties by id).
    """
    called = scores[scores["score"] >= threshold].sort_values(
        ["score", "image_id"], ascending=[False, True]
    )
    tp = called[called["label"] == 1]["image_id"].head(k).tolist()
    fp = called[called["label"] == 0]["image_id"].head(k).tolist()
    return [str(i) for i in tp], [str(i) for i in fp]


def pick_samples(labelled: pd.DataFrame, k: int, seed: int) -> dict[str, list[str]]:
    """Seeded random image ids per class: ``{"normal": [...], "abnormal": [...]}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, cls in (("normal", 0), ("abnormal", 1)):
        ids = sorted(labelled.loc[labelled["label"] == cls, "image_id"].astype(str))
        chosen = rng.permutation(len(ids))[:k]
        out[name] = [ids[i] for i in sorted(chosen)]
    return out
