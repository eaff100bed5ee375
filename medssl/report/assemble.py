"""The report stage's work: read the run's tables, bundle and record; assemble the page.

The exported bundle is loaded the way a user would load it (MONAI's config parser); its
saliency cases are the true and false positives of the exported run's test scores at the
bundle's operating threshold, never an image flagged for identity in its pixels
(:func:`medssl.report.build.showable`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.bundle import ConfigParser
from numpy.typing import NDArray

from medssl.audit import headline_records, read_record
from medssl.data.manifest import MANIFEST_NAME, QUARANTINE_NAME, read_manifest
from medssl.params import ReportParams
from medssl.report import build
from medssl.report.figures import arm_curves
from medssl.report.saliency import GRADCAM_LAYERS, choose_method, saliency_maps
from medssl.runs import record_test_scores

#: Record keys that identify the exported run among the metrics records.
EXPORTED_KEYS = ("arm", "mode", "n_labels", "seed")


@dataclass(frozen=True)
class ReportInputs:
    """The files the report shows.

    Attributes:
        ingested: the ingest stage's folder (manifest, quarantine, images).
        splits: ``splits.csv``.
        labels: ``labels.csv``.
        metrics: ``label_efficiency.json``.
        runs: the fine-tuning runs' folder.
        bundle: the exported MONAI bundle.
        record: the run record.
    """

    ingested: Path
    splits: Path
    labels: Path
    metrics: Path
    runs: Path
    bundle: Path
    record: Path


@dataclass(frozen=True)
class Bundle:
    """The exported bundle as loaded for saliency: network, preprocessing, metadata."""

    net: torch.nn.Module
    preprocessing: Any
    meta: dict[str, Any]
    target: str

    @property
    def threshold(self) -> float:
        """The bundle's operating threshold (0.5 when it has none)."""
        value = self.meta["medssl"].get("threshold_spec90")
        return 0.5 if value is None else float(value)


def load_bundle(folder: Path) -> Bundle:
    """Network (weights loaded), preprocessing, metadata and network target of a bundle."""
    config = ConfigParser()
    config.read_config(folder / "configs" / "inference.json")
    net: torch.nn.Module = config.get_parsed_content("network_def")
    net.load_state_dict(torch.load(folder / "models" / "model.pt", weights_only=True))
    meta = json.loads((folder / "configs" / "metadata.json").read_text())
    inference = json.loads((folder / "configs" / "inference.json").read_text())
    target = str(inference["network_def"]["_target_"])
    return Bundle(net.eval(), config.get_parsed_content("preprocessing"), meta, target)


def load_display(path: str) -> NDArray[Any]:
    """An ingested image scaled to [0, 1] for display."""
    image = nib.load(path)
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise ValueError(f"{path}: not a NIfTI image")
    data = np.asarray(image.get_fdata(dtype=np.float32))
    low, high = np.percentile(data, [0.5, 99.5])
    shown: NDArray[Any] = np.clip((data - low) / max(high - low, 1e-6), 0.0, 1.0)
    return shown


def saliency_cases(
    ids: Sequence[str], nifti: Mapping[str, str], bundle: Bundle, method: str,
    layer: str | None, scores: pd.DataFrame,
) -> list[build.Case]:  # fmt: skip
    """``(image, saliency, caption)`` for each image id, through the bundle's preprocessing."""
    if not ids:
        return []
    prep = bundle.preprocessing
    x = torch.stack([torch.as_tensor(prep({"image": nifti[i]})["image"]) for i in ids])
    maps = saliency_maps(bundle.net, x, method, layer)
    by_id = scores.set_index("image_id")
    prob, label = by_id["score"].to_dict(), by_id["label"].to_dict()
    return [
        (x[j].numpy(), maps[j], f"p(abnormal) = {prob[i]:.2f}, label {int(label[i])}")
        for j, i in enumerate(ids)
    ]


def report_html(inputs: ReportInputs, report: ReportParams, *, how: str, demo: bool) -> str:
    """The self-contained report page.

    Args:
        inputs: the files it shows.
        report: the typed ``report`` section (samples, saliency cases and method, seed).
        how: ``evaluate.patient_aggregation`` (the curves score patients as evaluate did).
        demo: ``data.demo_mode`` (the summary says the data are synthetic).

    Returns:
        The HTML.

    Raises:
        FileNotFoundError: no run folder for the exported model.
        medssl.audit.AuditError: a missing or unreadable run record.
    """
    manifest = read_manifest(inputs.ingested / MANIFEST_NAME)
    quarantine = pd.read_csv(inputs.ingested / QUARANTINE_NAME, dtype=str, keep_default_na=False)
    splits = pd.read_csv(inputs.splits, dtype=str)
    labels = pd.read_csv(inputs.labels, dtype={"image_id": str})
    records = json.loads(inputs.metrics.read_text())
    record = read_record(inputs.record)
    nifti = dict(zip(manifest["image_id"], manifest["nifti"], strict=True))

    bundle = load_bundle(inputs.bundle)
    exported = bundle.meta["medssl"]
    layer = GRADCAM_LAYERS.get(bundle.target)
    shape = (1, 1, *bundle.meta["network_data_format"]["inputs"]["image"]["spatial_shape"])
    method = choose_method(bundle.net, layer, shape, report.saliency)
    scores = record_test_scores(exported, inputs.runs)
    if scores is None:
        raise FileNotFoundError(f"{inputs.runs}: no run folder for the exported model")
    tp, fp = build.pick_cases(
        build.showable(scores, manifest), bundle.threshold, report.saliency_cases
    )
    exported_rec = next(
        (r for r in records if all(str(r.get(k)) == str(exported[k]) for k in EXPORTED_KEYS)),
        None,
    )
    labelled = build.showable(splits.merge(labels, on="image_id"), manifest)
    samples = build.pick_samples(labelled, report.samples_per_class, report.seed)
    n_labels, seed = exported["n_labels"], exported["seed"]
    sections = [
        build.summary_section(exported_rec, demo),
        build.data_section(manifest, quarantine, splits, labels),
        build.samples_section(
            {name: [load_display(nifti[i]) for i in ids] for name, ids in samples.items()}
        ),
        build.efficiency_section(records),
        build.curves_section(
            arm_curves(
                headline_records(records),
                lambda r: record_test_scores(r, inputs.runs),
                n_labels,
                seed,
                how,
            ),
            f"Test split, {how} score per patient; headline modes at {n_labels} "
            f"labels, seed {seed}. Dotted: chance, prevalence, perfect calibration.",
        ),
        build.metrics_section(records),
        build.saliency_section(
            saliency_cases(tp, nifti, bundle, method, layer, scores),
            saliency_cases(fp, nifti, bundle, method, layer, scores),
            method,
            bundle.threshold,
        ),
        build.record_section(record),
    ]
    return build.build_report(
        "medssl run report",
        f"Normal vs abnormal from few labels; model {bundle.target.rsplit('.', 1)[-1]}, "
        f"exported bundle {bundle.meta['version']}.",
        sections,
    )
