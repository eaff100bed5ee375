"""Stage demo_data: write the seeded, synthetic demo data set (fake PHI, real DICOM)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medssl.demo import write_demo_dataset
from medssl.params import get, load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True, help="label CSV to write")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    summary = write_demo_dataset(
        args.out,
        seed=get(p, "demo.seed", int),
        n_patients=get(p, "demo.n_patients", int),
        images_per_patient=get(p, "demo.images_per_patient", int),
        image_size=get(p, "demo.image_size", int),
        n_ct=get(p, "demo.n_ct", int),
        abnormal_fraction=get(p, "demo.abnormal_fraction", float),
        label_fraction=get(p, "demo.label_fraction", float),
        labels_path=args.labels,
        n_full_size=get(p, "demo.n_full_size", int),
    )
    print(
        f"demo data in {args.out}: {summary.n_xray_files} radiographs, {summary.n_ct_series} CT "
        f"series, {summary.n_nifti} NIfTI, {summary.n_broken} broken files, "
        f"{summary.n_labelled} labels in {args.labels}"
    )


if __name__ == "__main__":
    main()
