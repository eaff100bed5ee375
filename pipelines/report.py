"""Stage report: one self-contained HTML page (data, metrics, curves, saliency, run record)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.bundle import ConfigParser

from medssl.audit import find_run_dir, headline_records, read_record
from medssl.data.manifest import MANIFEST_NAME, QUARANTINE_NAME, read_manifest
from medssl.params import ParamsError, get, get_positive, load_params
from medssl.report import build
from medssl.report.figures import arm_curves
from medssl.report.saliency import GRADCAM_LAYERS, choose_method, saliency_maps


def run_scores(record: Mapping[str, Any], runs: Path) -> pd.DataFrame | None:
    """Test-split scores of one record's run and mode (``None`` when not found)."""
    folder = find_run_dir(record, runs)
    if folder is None:
        return None
    scores = pd.read_csv(folder / "scores.csv", dtype={"patient_key": str, "image_id": str})
    if "mode" in scores and record.get("mode") is not None:
        scores = scores[scores["mode"] == record["mode"]]
    return scores[scores["split"] == "test"]


def load_display(path: str) -> np.ndarray:
    """An ingested image scaled to [0, 1] for display."""
    data = np.asarray(nib.load(path).get_fdata(dtype=np.float32))
    low, high = np.percentile(data, [0.5, 99.5])
    return np.clip((data - low) / max(high - low, 1e-6), 0.0, 1.0)


def bundle_parts(bundle: Path) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Network (weights loaded), preprocessing and metadata of the exported bundle."""
    config = ConfigParser()
    config.read_config(bundle / "configs" / "inference.json")
    net: torch.nn.Module = config.get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    return net.eval(), config.get_parsed_content("preprocessing"), meta


def saliency_cases(
    ids: list[str], nifti: Mapping[str, str], net: torch.nn.Module, prep: Any, method: str,
    layer: str | None, scores: pd.DataFrame,
) -> list[build.Case]:  # fmt: skip
    """``(image, saliency, caption)`` for each image id."""
    if not ids:
        return []
    x = torch.stack([torch.as_tensor(prep({"image": nifti[i]})["image"]) for i in ids])
    maps = saliency_maps(net, x, method, layer)
    by_id = scores.set_index("image_id")
    return [
        (
            x[j].numpy(),
            maps[j],
            f"p(abnormal) = {by_id.loc[i, 'score']:.2f}, label {int(by_id.loc[i, 'label'])}",
        )
        for j, i in enumerate(ids)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="label_efficiency.json")
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    try:
        k_samples = get_positive(p, "report.samples_per_class", int)
        k_cases = get_positive(p, "report.saliency_cases", int)
        method = get(p, "report.saliency", str)
        seed = get(p, "report.seed", int)
        how = get(p, "evaluate.patient_aggregation", str)
        demo = get(p, "data.demo_mode", bool)
    except ParamsError as exc:
        sys.exit(f"error: {exc}")
    manifest = read_manifest(args.ingested / MANIFEST_NAME)
    quarantine = pd.read_csv(args.ingested / QUARANTINE_NAME, dtype=str, keep_default_na=False)
    splits = pd.read_csv(args.splits, dtype=str)
    labels = pd.read_csv(args.labels, dtype={"image_id": str})
    records = json.loads(args.metrics.read_text())
    record = read_record(args.record)
    nifti = dict(zip(manifest["image_id"], manifest["nifti"], strict=True))

    net, prep, meta = bundle_parts(args.bundle)
    exported = meta["medssl"]
    target = str(
        json.loads((args.bundle / "configs" / "inference.json").read_text())["network_def"][
            "_target_"
        ]
    )
    layer = GRADCAM_LAYERS.get(target)
    shape = (1, 1, *meta["network_data_format"]["inputs"]["image"]["spatial_shape"])
    method = choose_method(net, layer, shape, method)
    threshold = exported.get("threshold_spec90")
    threshold = 0.5 if threshold is None else float(threshold)
    scores = run_scores(exported, args.runs)
    if scores is None:
        sys.exit(f"error: {args.runs}: no run folder for the exported model")
    tp, fp = build.pick_cases(build.showable(scores, manifest), threshold, k_cases)
    exported_rec = next(
        (
            r
            for r in records
            if all(str(r.get(k)) == str(exported[k]) for k in ("arm", "mode", "n_labels", "seed"))
        ),
        None,
    )
    labelled = build.showable(splits.merge(labels, on="image_id"), manifest)
    samples = build.pick_samples(labelled, k_samples, seed)
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
                lambda r: run_scores(r, args.runs),
                exported["n_labels"],
                exported["seed"],
                how,
            ),
            f"Test split, {how} score per patient; headline modes at {exported['n_labels']} "
            f"labels, seed {exported['seed']}. Dotted: chance, prevalence, perfect calibration.",
        ),
        build.metrics_section(records),
        build.saliency_section(
            saliency_cases(tp, nifti, net, prep, method, layer, scores),
            saliency_cases(fp, nifti, net, prep, method, layer, scores),
            method,
            threshold,
        ),
        build.record_section(record),
    ]
    html = build.build_report(
        "medssl run report",
        f"Normal vs abnormal from few labels; model {target.rsplit('.', 1)[-1]}, "
        f"exported bundle {meta['version']}.",
        sections,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(html)
    print(f"report {args.out}: {len(html) / 1e6:.2f} MB, {html.count('<img ')} images")


if __name__ == "__main__":
    main()
