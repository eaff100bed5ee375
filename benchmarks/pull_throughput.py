"""Pull throughput: the demo export from a local Orthanc over DICOMweb and DIMSE.

Starts a throw-away Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on localhost, loads
the built-in demo export's DICOM files, then pulls everything with ``medssl.sources`` into
a fresh folder per run, protocols taking turns, best of ``--repeats``. Reports images/s and
MB/s per protocol, and the rate of a second, incremental pull (nothing new to fetch).

    .venv/bin/python benchmarks/pull_throughput.py --json benchmarks/results/pull_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from medssl.demo import write_demo_dataset
from medssl.io.pseudonym import DEMO_SECRET, Pseudonymizer
from medssl.sources.orthanc import available, local_orthanc
from medssl.sources.pull import pull_from
from medssl.sources.spec import Query

AUTH = ("bench", "bench-secret-not-real")


def dicom_images(root: Path) -> list[Path]:
    """The demo export's readable DICOM images (not the broken, NIfTI or label files)."""
    import pydicom

    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "broken" not in p.parts):
        try:
            if "SOPInstanceUID" in pydicom.dcmread(path, stop_before_pixels=True):
                out.append(path)
        except Exception:  # noqa: BLE001
            continue
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=40, help="demo patients (3 images each)")
    parser.add_argument("--repeats", type=int, default=3)
    default = Path("benchmarks/results/pull_throughput.json")
    parser.add_argument("--json", type=Path, default=default)
    args = parser.parse_args()
    if not available():
        raise SystemExit("error: install Debian's orthanc and orthanc-dicomweb first")
    os.environ["MEDSSL_PACS_USER"], os.environ["MEDSSL_PACS_PASSWORD"] = AUTH
    pseudo = Pseudonymizer(DEMO_SECRET)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        write_demo_dataset(tmp / "export", seed=0, n_patients=args.patients, image_size=128)
        files = dicom_images(tmp / "export")
        size = sum(p.stat().st_size for p in files)
        with local_orthanc(tmp, AUTH) as pacs:
            pacs.upload(files)
            best: dict[str, float] = {}
            again: dict[str, float] = {}
            for r in range(args.repeats):
                for name, address in (("dicomweb", pacs.dicomweb), ("dimse", pacs.dimse)):
                    out = tmp / f"{name}-{r}"
                    t0 = time.perf_counter()
                    done = pull_from(address, out, Query(), pseudo, log=lambda _: None)
                    t1 = time.perf_counter()
                    pull_from(address, out, Query(), pseudo, log=lambda _: None)
                    t2 = time.perf_counter()
                    assert done.fetched == len(files)
                    best[name] = max(best.get(name, 0.0), len(files) / (t1 - t0))
                    again[name] = max(again.get(name, 0.0), len(files) / (t2 - t1))
                    shutil.rmtree(out)
    record = {
        "files": len(files),
        "megabytes": size / 1e6,
        "repeats": args.repeats,
        "images_per_s": best,
        "megabytes_per_s": {k: v * size / 1e6 / len(files) for k, v in best.items()},
        "incremental_listed_per_s": again,
        "cpu_count": os.cpu_count(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print("| protocol | images/s | MB/s | second pull (nothing new), images listed/s |")
    print("| --- | --- | --- | --- |")
    for name in best:
        print(f"| {name} | {best[name]:.1f} | {record['megabytes_per_s'][name]:.2f} "
              f"| {again[name]:.0f} |")  # fmt: skip
    print(f"\n{len(files)} files, {size / 1e6:.1f} MB, best of {args.repeats}; JSON: {args.json}")


if __name__ == "__main__":
    main()
