"""Stage export: the fine-tuned classifier as a MONAI bundle with a model card."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from medssl.audit import find_run_dir, headline_records, package_versions
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
from medssl.params import ParamsError, get, get_positive, load_params
from medssl.train.finetune import build_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="label_efficiency.json")
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    records = json.loads(args.metrics.read_text())
    try:
        dims = get(p, "model.spatial_dims", int)
        size = get_positive(p, "model.image_size", int)
        small = get(p, "model.small_input", bool)
        encoder = get(p, "model.encoder", str)
        record = export_record(records, get(p, "export.arm", str))
    except (ParamsError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    run_dir = find_run_dir(record, args.runs)
    if run_dir is None or not (run_dir / "model.pt").exists():
        sys.exit(f"error: {args.runs}: no run folder with model.pt for the exported record")
    state = torch.load(run_dir / "model.pt", weights_only=True)
    original = build_classifier(encoder, dims, small, None)
    original.load_state_dict(state)
    spec = network_spec(encoder, dims, small)
    weights = convert_state_dict(state, spec)
    net = exported_network(spec)
    net.load_state_dict(weights)
    check_equivalent(original, net, (2, 1, *[size] * dims))

    manifest = read_manifest(args.ingested / MANIFEST_NAME)
    data = data_description(
        manifest[manifest["spatial_dims"] == dims],
        pd.read_csv(args.splits, dtype=str),
        pd.read_csv(args.labels, dtype=str),
    )
    encoder_meta = json.loads((args.encoder / "encoder.json").read_text())
    same_budget = [
        r
        for r in headline_records(records)
        if r["n_labels"] == record["n_labels"] and r["seed"] == record["seed"]
    ]
    info = CardInfo(
        name=get(p, "export.name", str),
        version=get(p, "export.version", str),
        intended_use=get(p, "export.intended_use", str),
        model={
            "encoder": encoder,
            "spatial_dims": dims,
            "image_size": size,
            "method": encoder_meta.get("method", "unknown"),
            **{k: record[k] for k in ("arm", "n_labels", "seed")},
            "mode": record.get("mode", "full"),
        },
        data=data,
        metrics=record,
        comparators=[r for r in same_budget if (r["arm"], r["mode"]) != (record["arm"], "full")],
        threshold=record.get("threshold_spec90"),
        deid_profile=PROFILE_VERSION,
        demo=get(p, "data.demo_mode", bool),
    )
    modality = manifest[manifest["spatial_dims"] == dims]["modality"].mode()
    versions = package_versions()
    native = not spec.config["_target_"].startswith("medssl.")
    needed = {"nibabel": versions["nibabel"]}
    if not native:
        needed["medssl"] = package_versions(["medssl"])["medssl"]
    metadata = bundle_metadata(
        info,
        versions=versions,
        authors=get(p, "export.authors", str),
        copyright_=get(p, "export.copyright", str),
        network_data_format=network_data_format(
            dims,
            size,
            get(p, "model.intensity", str),
            str(modality.iloc[0]) if len(modality) else "n/a",
        ),
        packages=needed,
    )
    preprocessing = preprocessing_config(size, dims, get(p, "model.intensity", str))
    inference = inference_config(spec, preprocessing, info.threshold)
    write_bundle(args.out, weights, metadata, inference, model_card(info))
    print(
        f"bundle {args.out}: {record['arm']} {info.model['mode']} n={record['n_labels']} "
        f"seed={record['seed']}, {spec.config['_target_']}"
    )


if __name__ == "__main__":
    main()
