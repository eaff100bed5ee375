"""The export stage's work: the chosen fine-tuned classifier as a MONAI bundle with its card.

Picks the record to export (:func:`medssl.export.bundle.export_record`), loads its run's
``model.pt`` (:mod:`medssl.runs`), converts it to the bundle network and checks both give
the same logits, then writes the weights, metadata, inference config and model card.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from medssl.audit import headline_records, package_versions
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.export.bundle import (
    check_equivalent,
    convert_state_dict,
    export_record,
    exported_network,
    inference_config,
    network_data_format,
    network_spec,
    preprocessing_config,
    write_bundle,
)
from medssl.export.card import CardInfo, bundle_metadata, data_description, model_card
from medssl.io.pseudonym import PROFILE_VERSION
from medssl.params import ExportParams, ModelParams
from medssl.runs import MODEL_PT, find_run_dir
from medssl.train.finetune import build_classifier


@dataclass(frozen=True)
class Exported:
    """What went into the bundle: the record, its mode and the network's ``_target_``."""

    record: dict[str, Any]
    mode: str
    target: str


@dataclass(frozen=True)
class ExportInputs:
    """The files the bundle is made from.

    Attributes:
        runs: the fine-tuning runs' folder.
        ingested: the ingest stage's folder.
        splits: ``splits.csv``.
        labels: ``labels.csv``.
        encoder: the pretrained encoder's folder (``encoder.json``: its method).
    """

    runs: Path
    ingested: Path
    splits: Path
    labels: Path
    encoder: Path


def export_bundle(
    records: Sequence[dict[str, Any]],
    inputs: ExportInputs,
    out: Path,
    model: ModelParams,
    export: ExportParams,
    *,
    demo: bool,
) -> Exported:
    """Write the MONAI bundle of ``export.arm``'s classifier with the most labels.

    Args:
        records: ``results/label_efficiency.json``.
        inputs: the runs, data tables and encoder.
        out: the bundle folder.
        model: the typed ``model`` section.
        export: the typed ``export`` section.
        demo: ``data.demo_mode`` (the card says the data were synthetic).

    Returns:
        What was exported.

    Raises:
        ValueError: no exportable record or run, or a bundle network that differs.
    """
    record = export_record(list(records), export.arm)
    run_dir = find_run_dir(record, inputs.runs)
    if run_dir is None or not (run_dir / MODEL_PT).exists():
        raise ValueError(f"{inputs.runs}: no run folder with {MODEL_PT} for the exported record")
    dims, size = model.spatial_dims, model.image_size
    state = torch.load(run_dir / MODEL_PT, weights_only=True)
    original = build_classifier(model.encoder, dims, model.small_input, None)
    original.load_state_dict(state)
    spec = network_spec(model.encoder, dims, model.small_input)
    weights = convert_state_dict(state, spec)
    net = exported_network(spec)
    net.load_state_dict(weights)
    check_equivalent(original, net, (2, 1, *[size] * dims))

    manifest = read_manifest(inputs.ingested / MANIFEST_NAME)
    images = manifest[manifest["spatial_dims"] == dims]
    info = _card_info(records, record, inputs, images, model, export, demo)
    modality = images["modality"].mode()
    versions = package_versions()
    needed = {"nibabel": versions["nibabel"]}
    if spec.config["_target_"].startswith("medssl."):
        needed["medssl"] = package_versions(["medssl"])["medssl"]
    metadata = bundle_metadata(
        info,
        versions=versions,
        authors=export.authors,
        copyright_=export.copyright,
        network_data_format=network_data_format(
            dims, size, model.intensity, str(modality.iloc[0]) if len(modality) else "n/a"
        ),
        packages=needed,
    )
    preprocessing = preprocessing_config(size, dims, model.intensity)
    inference = inference_config(spec, preprocessing, info.threshold)
    write_bundle(out, weights, metadata, inference, model_card(info))
    return Exported(record, str(info.model["mode"]), str(spec.config["_target_"]))


def _card_info(
    records: Sequence[dict[str, Any]],
    record: dict[str, Any],
    inputs: ExportInputs,
    images: pd.DataFrame,
    model: ModelParams,
    export: ExportParams,
    demo: bool,
) -> CardInfo:
    """The model card's facts: model, data, metrics and the comparators at that budget."""
    data = data_description(
        images, pd.read_csv(inputs.splits, dtype=str), pd.read_csv(inputs.labels, dtype=str)
    )
    encoder_meta = json.loads((inputs.encoder / "encoder.json").read_text())
    same_budget = [
        r
        for r in headline_records(records)
        if r["n_labels"] == record["n_labels"] and r["seed"] == record["seed"]
    ]
    return CardInfo(
        name=export.name,
        version=export.version,
        intended_use=export.intended_use,
        model={
            "encoder": model.encoder,
            "spatial_dims": model.spatial_dims,
            "image_size": model.image_size,
            "method": encoder_meta.get("method", "unknown"),
            **{k: record[k] for k in ("arm", "n_labels", "seed")},
            "mode": record.get("mode", "full"),
        },
        data=data,
        metrics=record,
        comparators=[r for r in same_budget if (r["arm"], r["mode"]) != (record["arm"], "full")],
        threshold=record.get("threshold_spec90"),
        deid_profile=PROFILE_VERSION,
        demo=demo,
    )
