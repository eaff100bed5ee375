"""Stage demo_data: write the seeded, synthetic demo data set (fake PHI, real DICOM)."""

from __future__ import annotations

import argparse

from medssl.demo import write_demo_dataset
from medssl.params import Params
from medssl.stage import run_stage


def main(args: argparse.Namespace, p: Params) -> None:
    demo = p.demo
    summary = write_demo_dataset(
        args.out,
        seed=demo.seed,
        n_patients=demo.n_patients,
        images_per_patient=demo.images_per_patient,
        image_size=demo.image_size,
        n_ct=demo.n_ct,
        abnormal_fraction=demo.abnormal_fraction,
        label_fraction=demo.label_fraction,
        labels_path=args.labels,
        n_full_size=demo.n_full_size,
    )
    print(
        f"demo data in {args.out}: {summary.n_xray_files} radiographs, {summary.n_ct_series} CT "
        f"series, {summary.n_nifti} NIfTI, {summary.n_broken} broken files, "
        f"{summary.n_labelled} labels in {args.labels}"
    )


if __name__ == "__main__":
    run_stage(main, __doc__, paths=("--out", "--labels"))
