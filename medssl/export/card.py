"""Model card and bundle metadata of an exported classifier.

The card follows the sections of Mitchell et al. (2019) "Model Cards for Model Reporting"
(FAT* '19) and lists the items of two reporting guidelines that the pipeline's outputs
cover, with the file that covers each:

* TRIPOD+AI: Collins G.S. et al. (2024) BMJ 385:e078378, checklist items by number;
* CLAIM: Mongan J., Moy L., Kahn C.E. (2020) Checklist for Artificial Intelligence in
  Medical Imaging, Radiology: Artificial Intelligence 2(2):e200029, items by number.

Items that need the study's own text (title, background, ethics, funding, registration,
interpretation) are left to the authors and are not listed. Nothing here reads patient
data: the card holds counts and metrics only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from medssl.eval.protocol import format_ci
from medssl.export.bundle import BUNDLE_SCHEMA_URL

#: Pretraining method -> reference.
METHOD_REFERENCES: dict[str, str] = {
    "simclr": "Chen T. et al. A Simple Framework for Contrastive Learning of Visual "
    "Representations. ICML 2020.",
    "vicreg": "Bardes A., Ponce J., LeCun Y. VICReg: Variance-Invariance-Covariance "
    "Regularization for Self-Supervised Learning. ICLR 2022.",
    "mae": "He K. et al. Masked Autoencoders Are Scalable Vision Learners. CVPR 2022.",
}
COMMON_REFERENCES = (
    "Cardoso M.J. et al. MONAI: An open-source framework for deep learning in healthcare. "
    "arXiv:2211.02701, 2022.",
    "Collins G.S. et al. TRIPOD+AI statement. BMJ 2024;385:e078378.",
    "Mongan J., Moy L., Kahn C.E. Checklist for Artificial Intelligence in Medical Imaging "
    "(CLAIM). Radiology: Artificial Intelligence 2020;2(2):e200029.",
)

#: TRIPOD+AI (2024) items covered: (item, topic, where the bundle or pipeline covers it).
TRIPOD_AI_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("5a", "Data sources", "Data section; manifest.csv (source format, modality)"),
    ("7", "Data preparation", "ingest and preprocessing (README; inference.json)"),
    ("8a", "Outcome definition", "label set: labels.column, positive/negative values"),
    ("9a", "Predictors (input)", "network_data_format.inputs in metadata.json"),
    ("10", "Sample size", "Data section: patients and images per split"),
    ("11", "Missing data", "quarantine.csv reasons; unlabelled images are not scored"),
    ("12a", "Data use (splits)", "patient-level split; overlap check in the run record"),
    ("12c", "Model type, building, hyper-parameters", "Model section; params in run record"),
    ("12e", "Performance measures", "Performance section (AUROC, AUPRC, sensitivity)"),
    ("13", "Class imbalance", "Data section: class counts; AUPRC reported"),
    ("15", "Model output and threshold", "threshold frozen on validation (inference.json)"),
    ("18e", "Data sharing", "de-identified manifest; hashes in run_record.json"),
    ("18f", "Code sharing", "git commit and code hashes in run_record.json"),
    ("20b", "Participant characteristics per split", "Data section"),
    ("22", "Model specification", "configs/inference.json + models/model.pt"),
    ("23a", "Performance with confidence intervals", "Performance section"),
    ("26", "Limitations", "Limitations section"),
    ("27b", "Inputs and input format for users", "Use section; metadata.json"),
)

#: CLAIM (2020) items covered: (item, topic, where).
CLAIM_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("7", "Data sources", "Data section"),
    ("9", "Data pre-processing steps", "preprocessing in inference.json"),
    ("10", "Selection of data subsets", "label budgets, nested and stratified (run.json)"),
    ("11", "De-identification methods", "DICOM PS3.15 Annex E profile named in Data"),
    ("12", "Handling of missing data", "quarantine table with reasons"),
    ("19", "Assignment of data to partitions", "Data section: patients per split"),
    ("20", "Level at which partitions are disjoint", "patient level; overlap = 0"),
    ("21", "Detailed description of the model", "Model section; inference.json"),
    ("22", "Software libraries and versions", "metadata.json; run record"),
    ("23", "Initialization of model parameters", "self-supervised pretraining (Model)"),
    ("24", "Training details", "params in run_record.json"),
    ("27", "Metrics of model performance", "Performance section"),
    ("28", "Statistical measures of uncertainty", "95% patient-bootstrap CIs"),
    ("30", "Methods for explainability", "saliency maps in the HTML report"),
    ("35", "Estimates of diagnostic accuracy and precision", "Performance section"),
    ("36", "Failure analysis", "false-positive saliency maps in the HTML report"),
    ("37", "Study limitations", "Limitations section"),
)

DEFAULT_LIMITATIONS = (
    "Trained and tested on data from one source; performance on other sites, scanners, "
    "populations or protocols is unknown until externally validated.",
    "Few labels: confidence intervals are wide; small differences between arms are not "
    "evidence of a better model.",
    "The threshold was chosen on the validation split for 90% specificity; recalibrate it "
    "on local data before any use.",
    "Binary normal/abnormal output: it does not localise or name findings; saliency maps "
    "are qualitative and can highlight confounders.",
    "Input must be an image ingested by medssl (same de-identification, LUTs and "
    "orientation); raw DICOM needs the ingest step first.",
)


@dataclass(frozen=True)
class CardInfo:
    """What a model card states.

    Attributes:
        name: bundle name.
        version: bundle version.
        intended_use: plain-language intended use.
        model: ``encoder, spatial_dims, image_size, method, arm, mode, n_labels, seed``.
        data: from :func:`data_description`.
        metrics: the exported run's record from ``label_efficiency.json``.
        comparators: headline records of the other arms (same budget), for context.
        threshold: decision threshold (or ``None``).
        deid_profile: de-identification profile version.
        demo: whether the data are the synthetic demo set.
        limitations: extra limitations, after :data:`DEFAULT_LIMITATIONS`.
    """

    name: str
    version: str
    intended_use: str
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    metrics: Mapping[str, Any]
    comparators: Sequence[Mapping[str, Any]] = ()
    threshold: float | None = None
    deid_profile: str = ""
    demo: bool = False
    limitations: Sequence[str] = field(default_factory=tuple)


def data_description(
    manifest: pd.DataFrame, splits: pd.DataFrame, labels: pd.DataFrame
) -> dict[str, Any]:
    """Counts that describe the data (no identifiers).

    Args:
        manifest: ``image_id, modality, spatial_dims`` (+ others).
        splits: ``image_id, patient_key, split``.
        labels: ``image_id, label``.

    Returns:
        ``{"images", "patients", "modalities": {m: n}, "per_split": {split: {"patients",
        "images", "labelled", "abnormal"}}}``.
    """
    joined = splits.merge(labels[["image_id", "label"]], on="image_id", how="left")
    per_split: dict[str, dict[str, int]] = {}
    for split, part in sorted(joined.groupby("split"), key=lambda kv: str(kv[0])):
        lab = pd.to_numeric(part["label"], errors="coerce")
        per_split[str(split)] = {
            "patients": int(part["patient_key"].nunique()),
            "images": len(part),
            "labelled": int(lab.notna().sum()),
            "abnormal": int((lab == 1).sum()),
        }
    modalities = {
        f"{m} ({d}D)": int(n)
        for m, d, n in manifest.groupby(["modality", "spatial_dims"])
        .size()
        .reset_index()
        .itertuples(index=False)
    }
    return {
        "images": len(manifest),
        "patients": int(manifest["patient_key"].nunique()) if "patient_key" in manifest else 0,
        "modalities": modalities,
        "per_split": per_split,
    }


def fmt_ci(record: Mapping[str, Any], metric: str) -> str:
    """``0.812 (0.700-0.901)``, or ``n/a`` when the value is missing."""
    return format_ci(record, metric, "{v:.3f} ({lo:.3f}-{hi:.3f})")


def metrics_rows(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown table rows: arm, mode, labels, seed, AUROC, AUPRC, sens@90% spec, ECE."""
    rows = [
        "| arm | mode | labels | seed | AUROC (95% CI) | AUPRC (95% CI) | sens. at 90% spec. "
        "(95% CI) | ECE |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        ece = r.get("ece")
        rows.append(
            f"| {r['arm']} | {r.get('mode', '')} | {r['n_labels']} | {r['seed']} | "
            f"{fmt_ci(r, 'auroc')} | {fmt_ci(r, 'auprc')} | {fmt_ci(r, 'sens_at_spec90')} | "
            f"{'n/a' if ece is None else f'{ece:.3f}'} |"
        )
    return rows


def _data_lines(info: CardInfo) -> list[str]:
    d = info.data
    source = "the synthetic medssl demo data set (fake patients)" if info.demo else "local data"
    lines = [
        f"- Source: {source}; {d['images']} images of {d['patients']} patients after "
        "ingestion and quarantine.",
        "- Images per modality: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(d["modalities"].items())),
        f"- De-identification: {info.deid_profile}.",
        "- Split by patient (no patient in two splits):",
        "",
        "| split | patients | images | labelled | abnormal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split, c in d["per_split"].items():
        lines.append(
            f"| {split} | {c['patients']} | {c['images']} | {c['labelled']} | {c['abnormal']} |"
        )
    return lines


def model_card(info: CardInfo) -> str:
    """The Markdown model card.

    Args:
        info: what to state.

    Returns:
        Markdown text ending in a newline.
    """
    m = info.model
    thr = "not fixed" if info.threshold is None else f"{info.threshold:.6g}"
    demo_note = (
        ["", "> Trained on synthetic demo data: the numbers below say nothing clinical."]
        if info.demo
        else []
    )
    lines = [
        f"# Model card: {info.name} {info.version}",
        *demo_note,
        "",
        "## Intended use",
        "",
        info.intended_use,
        "",
        "## Model",
        "",
        f"- {m['encoder']} encoder ({m['spatial_dims']}D, input "
        f"{m['image_size']}^{m['spatial_dims']} voxels, 1 channel) with a one-logit linear head.",
        f"- Encoder initialisation: {m['method']} self-supervised pretraining on the training "
        f"split ({m['arm']} arm); then {m['mode']} fine-tuning on {m['n_labels']} labels, "
        f"seed {m['seed']}.",
        f"- Output: probability of the abnormal class; threshold {thr} (90% specificity on "
        "validation).",
        "",
        "## Data",
        "",
        *_data_lines(info),
        "",
        "## Performance (test split, patient level)",
        "",
        "95% confidence intervals from a patient-level bootstrap.",
        "",
        *metrics_rows([info.metrics, *info.comparators]),
        "",
        "## Limitations",
        "",
        *[f"- {t}" for t in (*DEFAULT_LIMITATIONS, *info.limitations)],
        "",
        "## Use",
        "",
        "```bash",
        "python -m monai.bundle run --config_file configs/inference.json \\",
        "    --bundle_root . --image /path/to/ingested/image.nii.gz --output prediction.json",
        "python -m monai.bundle verify_metadata --meta_file configs/metadata.json \\",
        "    --filepath docs/metadata_schema.json",
        "```",
        "",
        "## Reporting checklists",
        "",
        *_checklist("TRIPOD+AI (Collins et al. 2024)", TRIPOD_AI_ITEMS),
        "",
        *_checklist("CLAIM (Mongan et al. 2020)", CLAIM_ITEMS),
        "",
    ]
    return "\n".join(lines)


def _checklist(title: str, items: Sequence[tuple[str, str, str]]) -> list[str]:
    rows = [f"{title}: items this bundle and pipeline cover.", "", "| item | topic | where |"]
    rows.append("| --- | --- | --- |")
    rows += [f"| {i} | {t} | {w} |" for i, t, w in items]
    return rows


def bundle_metadata(
    info: CardInfo,
    *,
    versions: Mapping[str, str | None],
    authors: str,
    copyright_: str,
    network_data_format: Mapping[str, Any],
    packages: Mapping[str, str | None],
) -> dict[str, Any]:
    """``configs/metadata.json`` content (MONAI Bundle Specification keys + ``medssl``).

    Args:
        info: the card's facts.
        versions: ``monai, torch, numpy`` versions.
        authors: authors string.
        copyright_: copyright string.
        network_data_format: from :func:`medssl.export.bundle.network_data_format`.
        packages: packages the bundle needs beyond MONAI, with versions.

    Returns:
        The metadata mapping.
    """
    m = info.model
    modalities = ", ".join(sorted(info.data["modalities"]))
    eval_metrics = {
        k: info.metrics[k]
        for k in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "sens_at_spec90")
        if info.metrics.get(k) is not None
    }
    return {
        "schema": BUNDLE_SCHEMA_URL,
        "version": info.version,
        "changelog": {info.version: f"exported by medssl from run {info.name}"},
        "monai_version": str(versions["monai"]),
        "pytorch_version": str(versions["torch"]).split("+")[0],
        "numpy_version": str(versions["numpy"]),
        "required_packages_version": {k: str(v) for k, v in packages.items() if v},
        "task": f"Normal vs abnormal classification of {modalities} images",
        "description": (
            f"{m['encoder']} pretrained with {m['method']} on unlabelled training images, "
            f"{m['mode']} fine-tuned on {m['n_labels']} labels (medssl {m['arm']} arm)."
        ),
        "authors": authors,
        "copyright": copyright_,
        "intended_use": info.intended_use,
        "data_source": (
            "synthetic medssl demo data set" if info.demo else "local de-identified data"
        )
        + f"; {info.data['images']} images, {info.data['patients']} patients",
        "data_type": "nibabel",
        "image_classes": "one channel, intensities scaled to [0, 1]",
        "label_classes": "0: normal, 1: abnormal",
        "pred_classes": "one channel: probability of abnormal",
        "eval_metrics": eval_metrics,
        "references": [METHOD_REFERENCES.get(str(m["method"]), str(m["method"]))]
        + list(COMMON_REFERENCES),
        "network_data_format": dict(network_data_format),
        "medssl": {
            "arm": m["arm"],
            "mode": m["mode"],
            "n_labels": m["n_labels"],
            "seed": m["seed"],
            "encoder": m["encoder"],
            "pretrain_method": m["method"],
            "threshold_spec90": info.threshold,
            "deid_profile": info.deid_profile,
        },
    }
