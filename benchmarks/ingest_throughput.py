"""Ingestion throughput, side by side on the same files (a script, not a timed test).

Measures, on generated data sets written once under ``--work``:

* ``2D raw``: single-frame CR radiographs, explicit VR little endian (uncompressed);
* ``2D J2K``: the same radiographs in JPEG 2000 lossless (how many PACS export CR/DX);
* ``CT``: axial CT series, one uncompressed file per slice, file names shuffled;

and for each: a bare ``pydicom.dcmread(f).pixel_array`` loop (one process); the floor of
any ingestion that hashes and writes (read, SHA-256, write the same bytes; one process);
medssl ingestion (decode, de-identify, write NIfTI and manifest; no cache) with 1 and 2
workers, writing ``.nii`` and ``.nii.gz``; and dcm2niix (``-z n`` and ``-z y``) when installed
(Debian package ``dcm2niix``; skipped cleanly when absent). Each figure is the best of
``--repeats`` runs, the methods taking turns within each repeat so that all of them see
the same load on a shared machine (page cache warmed first), reported as files/s and MB/s of source
DICOM, and as CPU seconds of all processes (files per CPU-second: the per-worker cost,
robust to other load on a shared machine). Prints a Markdown table and the goal ratios,
and writes JSON with the machine's load average.

    python benchmarks/ingest_throughput.py --json benchmarks/results/ingest_throughput.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
)

from medssl.ingest import IngestOptions, ingest
from medssl.io.pseudonym import DEMO_SECRET

ROOT = "1.2.826.0.1.3680043.10.998."


def _base(sop_class: str, n: int, series: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(f"{ROOT}1.{n}")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"{ROOT}1.{n}"
    ds.StudyInstanceUID = f"{ROOT}2.{series}"
    ds.SeriesInstanceUID = f"{ROOT}3.{series}"
    ds.PatientName = f"Bench^Patient{series % 17}"
    ds.PatientID = f"BENCH{series % 17:04d}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    return ds


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth anatomy-like 12-bit texture plus noise (compresses like a real image)."""
    y, x = np.mgrid[0:size, 0:size] / size
    body = 1500 + 1200 * np.exp(-(((x - 0.5) / 0.35) ** 2 + ((y - 0.5) / 0.45) ** 2))
    ribs = 300 * (np.sin(y * 40) > 0.6)
    noise = rng.normal(0, 25, (size, size))
    return np.clip(body + ribs + noise, 0, 4095).astype(np.uint16)


def write_xrays(folder: Path, n: int, size: int, syntax: str) -> None:
    """``n`` CR radiographs of ``size`` x ``size`` pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ds = _base(ComputedRadiographyImageStorage, 10_000 + i, 10_000 + i)
        ds.Modality = "CR"
        ds.ViewPosition = "PA"
        ds.ImagerPixelSpacing = [0.15, 0.15]
        ds.Rows = ds.Columns = size
        arr = _texture(np.random.default_rng(i), size)
        ds.PixelData = arr.tobytes()
        if syntax == "j2k":
            ds.compress(JPEG2000Lossless, arr)
        ds.save_as(folder / f"IM{i:05d}", enforce_file_format=True)


def write_ct(folder: Path, n_series: int, slices: int, size: int) -> None:
    """``n_series`` axial CT series of ``slices`` slices, shuffled file names."""
    for s in range(n_series):
        order = np.random.default_rng(s).permutation(slices)
        for k in range(slices):
            ds = _base(CTImageStorage, 100_000 * (s + 1) + k, s)
            ds.Modality = "CT"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [-200.0, -200.0, 1.25 * k]
            ds.PixelSpacing = [0.78, 0.78]
            ds.SliceThickness = 1.25
            ds.InstanceNumber = k + 1
            ds.RescaleSlope = 1
            ds.RescaleIntercept = -1024
            ds.Rows = ds.Columns = size
            ds.PixelData = _texture(np.random.default_rng(1000 * s + k), size).tobytes()
            (folder / f"series{s}").mkdir(parents=True, exist_ok=True)
            ds.save_as(folder / f"series{s}" / f"{order[k]:05d}", enforce_file_format=True)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], None], scratch: Path) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its reaped children) of one run of ``fn``.

    Not timed: dirty pages are flushed before and the outputs under ``scratch`` deleted
    after, so every method starts from the same page cache and pays for no other's files.
    """
    os.sync()
    start, cpu = time.perf_counter(), _cpu()
    fn()
    wall, used = time.perf_counter() - start, _cpu() - cpu
    shutil.rmtree(scratch, ignore_errors=True)
    return wall, used


def bare_loop(files: list[Path]) -> None:
    """The reference: decode every file with pydicom, nothing else."""
    for f in files:
        _ = pydicom.dcmread(f).pixel_array


def copy_floor(files: list[Path], out: Path) -> Callable[[], None]:
    """What any ingestion that hashes and writes pays: read, SHA-256, write the same bytes.

    No parsing, decoding or de-identification: on uncompressed files this is the I/O and
    hashing floor that the bare loop (which writes nothing) does not pay.
    """

    def run() -> None:
        out.mkdir(parents=True)
        for i, f in enumerate(files):
            data = f.read_bytes()
            hashlib.sha256(data).hexdigest()
            (out / f"{i}.bin").write_bytes(data)

    return run


def medssl_run(src: Path, out: Path, workers: int, compress: bool) -> Callable[[], None]:
    """One full ingestion into a fresh folder (no cache), in this process like the loop."""

    def run() -> None:
        options = IngestOptions(workers=workers, compress=compress, progress=False)
        summary = ingest([src], out, secret=DEMO_SECRET, options=options)
        if summary["files_quarantined"]:
            raise RuntimeError(f"benchmark data quarantined: {summary}")

    return run


def dcm2niix_run(src: Path, out: Path, gz: bool) -> Callable[[], None]:
    """dcm2niix on the same folder."""

    def run() -> None:
        out.mkdir(parents=True)
        cmd = ["dcm2niix", "-z", "y" if gz else "n", "-b", "n", "-o", str(out), str(src)]
        subprocess.run(cmd, check=True, capture_output=True)

    return run


def measure(name: str, src: Path, scratch: Path, repeats: int) -> list[dict[str, object]]:
    """All methods on one data set."""
    files = _files(src)
    mb = sum(f.stat().st_size for f in files) / 1e6
    for f in files:  # warm the page cache: every method reads from memory
        f.read_bytes()
    methods: list[tuple[str, Callable[[], None]]] = [
        ("pydicom loop (1 proc)", partial(bare_loop, files)),
        ("read+sha256+write floor (1 proc)", copy_floor(files, scratch / "f")),
    ]
    for compress in (False, True):
        ext = ".nii.gz" if compress else ".nii"
        for w in (1, 2):
            methods.append(
                (
                    f"medssl {ext}, {w} worker{'s' * (w > 1)}",
                    medssl_run(src, scratch / "m", w, compress),
                )
            )
    if shutil.which("dcm2niix"):
        for gz in (False, True):
            run = dcm2niix_run(src, scratch / "d", gz)
            methods.append((f"dcm2niix -z {'y' if gz else 'n'}", run))
    walls: dict[str, list[float]] = {m: [] for m, _ in methods}
    cpus: dict[str, list[float]] = {m: [] for m, _ in methods}
    for _ in range(repeats):  # round robin: every method sees the same machine conditions
        for method, fn in methods:
            wall, cpu = _timed(fn, scratch)
            walls[method].append(wall)
            cpus[method].append(cpu)
    rows = []
    for method, _ in methods:
        seconds, cpu = min(walls[method]), min(cpus[method])
        rows.append(
            {
                "data": name,
                "method": method,
                "files": len(files),
                "mb": round(mb, 1),
                "seconds": round(seconds, 3),
                "files_per_s": round(len(files) / seconds, 1),
                "mb_per_s": round(mb / seconds, 1),
                "cpu_s": round(cpu, 3),
                "files_per_cpu_s": round(len(files) / max(cpu, 1e-9), 1),
            }
        )
        print(f"  {name:8s} {method:34s} {seconds:7.2f} s {cpu:7.2f} cpu-s", file=sys.stderr)
    return rows


def _rate(
    rows: list[dict[str, object]], data: str, method: str, key: str = "files_per_s"
) -> float | None:
    for r in rows:
        if r["data"] == data and r["method"] == method:
            return float(r[key])  # type: ignore[arg-type]
    return None


def ratios(rows: list[dict[str, object]]) -> dict[str, float | None]:
    """The goals: per-worker vs bare loop, 2 vs 1 worker, CT vs dcm2niix."""
    out: dict[str, float | None] = {}
    for data in sorted({str(r["data"]) for r in rows}):
        bare = _rate(rows, data, "pydicom loop (1 proc)")
        bare_cpu = _rate(rows, data, "pydicom loop (1 proc)", "files_per_cpu_s")
        for ext in (".nii", ".nii.gz"):
            one = _rate(rows, data, f"medssl {ext}, 1 worker")
            two = _rate(rows, data, f"medssl {ext}, 2 workers")
            two_cpu = _rate(rows, data, f"medssl {ext}, 2 workers", "files_per_cpu_s")
            floor = _rate(rows, data, "read+sha256+write floor (1 proc)")
            if bare and one:
                out[f"{data} {ext}: 1 worker / pydicom loop (goal >= 0.7)"] = round(one / bare, 3)
            if floor and one and ext == ".nii":
                out[f"{data} {ext}: 1 worker / read+sha256+write floor"] = round(one / floor, 3)
            if bare_cpu and two_cpu:
                key = f"{data} {ext}: per CPU-second, 2 workers / pydicom loop"
                out[key] = round(two_cpu / bare_cpu, 3)
            if one and two:
                out[f"{data} {ext}: 2 workers / 1 worker (goal >= 1.7)"] = round(two / one, 3)
            ref = _rate(rows, data, "dcm2niix -z " + ("y" if ext == ".nii.gz" else "n"))
            if ref and two:
                out[f"{data} {ext}: 2 workers / dcm2niix (goal >= 0.5 on CT)"] = round(two / ref, 3)
    return out


def markdown(rows: list[dict[str, object]]) -> str:
    """The results table."""
    lines = [
        "| data | method | files | MB | s | files/s | MB/s | CPU s | files/CPU-s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['method']} | {r['files']} | {r['mb']} | {r['seconds']} "
            f"| {r['files_per_s']} | {r['mb_per_s']} | {r['cpu_s']} | {r['files_per_cpu_s']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, help="data and scratch folder (default: temporary)")
    parser.add_argument("--n-xray", type=int, default=80, help="uncompressed radiographs")
    parser.add_argument("--n-j2k", type=int, default=40, help="JPEG 2000 radiographs")
    parser.add_argument("--xray-size", type=int, default=1024)
    parser.add_argument("--n-series", type=int, default=8)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--ct-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--sets", nargs="+", default=["2D raw", "2D J2K", "CT"], help="data sets to measure"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="medssl-bench-"))
    data = work / "data"
    sets = {"2D raw": data / "xray_raw", "2D J2K": data / "xray_j2k", "CT": data / "ct"}
    if not sets["2D raw"].exists():
        write_xrays(sets["2D raw"], args.n_xray, args.xray_size, "raw")
    if not sets["2D J2K"].exists():
        write_xrays(sets["2D J2K"], args.n_j2k, args.xray_size, "j2k")
    if not sets["CT"].exists():
        write_ct(sets["CT"], args.n_series, args.slices, args.ct_size)
    rows: list[dict[str, object]] = []
    for name in args.sets:
        rows += measure(name, sets[name], work / "scratch", args.repeats)
    goal_ratios = ratios(rows)
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        },
        "dcm2niix": shutil.which("dcm2niix") is not None,
        "rows": rows,
        "ratios": goal_ratios,
    }
    print(markdown(rows))
    print()
    for k, v in goal_ratios.items():
        print(f"- {k}: {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
