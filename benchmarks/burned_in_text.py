"""Burned-in identity on real radiographs: detection, false quarantine, throughput cost.

Builds two DX DICOM sets from the real Hannover chest radiographs (``../shared/data/
hannover_cxr``, 243 images, resized to ``--size`` px, 12-bit, BurnedInAnnotation absent):

* ``clean``: the originals (they carry real technician marks: "L", "R", "Bettaufnahme");
* ``planted``: each original with a generated identity drawn on it, varying font (DejaVu
  Sans/Serif/Mono, regular/bold/oblique when installed, else Pillow's bundled font), size
  (11-21 px at 1024 px), polarity (white or black), position (corners or anywhere), line
  count (1-3 of ``SURNAME, GIVEN`` / ``MRN nnnnnnnn`` / ``DOB YYYY-MM-DD``) and transfer
  syntax (uncompressed, or lossy JPEG 2000 at 20:1 for a quarter of them).

Then, with medssl ingestion:

* detection: the planted set under ``burned_in_text: quarantine`` and ``redact``; an identity
  counts as removed when its file was quarantined, or when a strong reader (Tesseract on the
  planted region of the output, contrast-stretched, both polarities, 3x, block layout) reads
  none of its strings (surname, given name, the MRN digits, the date). The same reader on
  the outputs of ``burned_in_text: off`` says how many identities were readable at all;
* false quarantine: the clean set under ``quarantine``;
* throughput: the clean set with 2 workers, ``off`` and ``quarantine`` taking turns, best of
  ``--repeats``; images/s and their ratio (the goal is at least 0.5);
* screen cost: in one process, per image of each set, milliseconds in detection and in OCR
  plus rule, and OCR reads.

    python benchmarks/burned_in_text.py --json benchmarks/results/burned_in_text.json

Prints a Markdown table and writes JSON. Nothing planted is printed or written except by
this script's own generator (fake names), and the JSON holds counts only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import tesserocr
from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
)

from medssl.burned_in import ocr, screen_image
from medssl.burned_in.detect import text_regions, to_display
from medssl.ingest import IngestOptions, ingest
from medssl.io.dicom.decode import decode_datasets
from medssl.io.pseudonym import DEMO_SECRET, Pseudonymizer

ROOT = "1.2.826.0.1.3680043.10.997."
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hannover_cxr"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_NAMES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed.ttf",
)
SURNAMES = (
    "MUELLER", "SCHMIDT", "NGUYEN", "OKAFOR", "GARCIA", "KOWALSKI", "ANDERSSON", "ROSSI",
    "TANAKA", "OBRIEN", "FISCHER", "PETROV", "YILMAZ", "DUBOIS", "HANSEN", "MORENO",
)  # fmt: skip
GIVEN = ("ANNA", "JAN", "MARIA", "LUKAS", "AMINA", "PETER", "SOFIA", "OMAR", "KLAUS", "ELENA")


@dataclass(frozen=True)
class Plant:
    """One planted identity: its strings and where it was drawn (display pixels)."""

    name: str
    strings: tuple[str, ...]
    box: tuple[int, int, int, int]  # row0, col0, row1, col1
    size: int
    white: bool
    lines: int
    j2k: bool


def _fonts() -> list[Path | None]:
    found: list[Path | None] = [FONT_DIR / n for n in FONT_NAMES if (FONT_DIR / n).is_file()]
    return found or [None]


def _font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.truetype(str(path), size) if path else ImageFont.load_default(size)


def _identity(rng: random.Random) -> tuple[list[str], tuple[str, ...]]:
    surname, given = rng.choice(SURNAMES), rng.choice(GIVEN)
    mrn = str(rng.randint(10**7, 10**8 - 1))
    dob = f"{rng.randint(1930, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return [f"{surname}, {given}", f"MRN {mrn}", f"DOB {dob}"], (surname, given, mrn, dob)


def plant(image: np.ndarray, rng: random.Random, fonts: list[Path | None]) -> tuple:
    """Draw an identity on a uint8 image; returns the new image, the lines and geometry."""
    lines, strings = _identity(rng)
    n_lines = rng.randint(1, 3)
    lines = lines[:n_lines]
    strings = strings[: {1: 2, 2: 3, 3: 4}[n_lines]]
    size = rng.randint(11, 21) * image.shape[0] // 1024
    font = _font(rng.choice(fonts), max(size, 8))
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    text = "\n".join(lines)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    w, h = right - left, bottom - top
    height, width = image.shape
    if rng.random() < 0.75:  # a corner, as modalities print it
        margin = rng.randint(4, 40)
        col = margin if rng.random() < 0.5 else width - margin - w
        row = margin if rng.random() < 0.5 else height - margin - h
    else:
        col, row = rng.randint(0, width - w - 1), rng.randint(0, height - h - 1)
    white = rng.random() < 0.5
    draw.multiline_text((col - left, row - top), text, font=font, fill=255 if white else 0)
    geometry = ((row, col, row + h, col + w), size, white, n_lines)
    return np.asarray(pil), strings, geometry


def _dataset(pixels: np.ndarray, n: int, j2k: bool) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(DigitalXRayImageStorageForPresentation)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(f"{ROOT}1.{n}")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = f"{ROOT}1.{n}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{ROOT}2.{n}", f"{ROOT}3.{n}"
    ds.PatientName, ds.PatientID = f"Bench^Patient{n}", f"BENCH{n:05d}"
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "DX", "PA", "CHEST"
    ds.ImagerPixelSpacing = [0.35, 0.35]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    stored = pixels.astype(np.uint16) * 16  # 8-bit PNG -> 12-bit stored values
    ds.PixelData = stored.tobytes()
    if j2k:
        ds.compress(JPEG2000, stored, j2k_cr=[20])
    return ds


def build_sets(data: Path, work: Path, size: int, seed: int, limit: int | None) -> list[Plant]:
    """Write ``work/clean`` and ``work/planted``; return the plants in file order."""
    rng = random.Random(seed)
    fonts = _fonts()
    files = sorted((data / "png").glob("*.png"))[:limit]
    plants = []
    for folder in ("clean", "planted"):
        shutil.rmtree(work / folder, ignore_errors=True)
        (work / folder).mkdir(parents=True)
    for n, path in enumerate(files):
        image = np.asarray(Image.open(path).convert("L").resize((size, size), Image.BICUBIC))
        _dataset(image, n, False).save_as(work / "clean" / f"{n:04d}.dcm", enforce_file_format=True)
        planted, strings, (box, px, white, lines) = plant(image, rng, fonts)
        j2k = rng.random() < 0.25
        ds = _dataset(planted, 100_000 + n, j2k)
        ds.save_as(work / "planted" / f"{n:04d}.dcm", enforce_file_format=True)
        plants.append(Plant(f"{n:04d}.dcm", strings, box, px, white, lines, j2k))
    return plants


def _ingest(src: Path, out: Path, policy: str, workers: int) -> tuple[float, dict[str, int]]:
    options = IngestOptions(workers=workers, burned_in_text=policy, progress=False)
    start = time.perf_counter()
    summary = ingest([src], out, secret=DEMO_SECRET, options=options)
    return time.perf_counter() - start, summary


def _outputs(out: Path) -> tuple[dict[str, Path], set[str]]:
    """``source_key -> NIfTI`` and the source keys quarantined for burned-in text."""
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    by_key = dict(zip(manifest["source_key"], manifest["nifti"], strict=True))
    q_keys = set(quarantine.loc[quarantine["reason"] == "burned_in_text", "source_key"])
    return {k: out / p for k, p in by_key.items()}, q_keys


def _key(name: str) -> str:
    """The manifest's ``source_key`` of a file directly under the ingested folder."""
    return Pseudonymizer(DEMO_SECRET).key("path", name)


class Reader:
    """The judge: Tesseract on a planted region, stronger settings than the screen's."""

    def __init__(self) -> None:
        self.api = tesserocr.PyTessBaseAPI(
            path=str(ocr.tessdata_dir()), psm=tesserocr.PSM.SINGLE_BLOCK
        )

    def strings_read(self, nifti: Path, plant_: Plant) -> list[str]:
        display = to_display(np.asarray(nib.load(nifti).dataobj))
        r0, c0, r1, c1 = plant_.box
        pad = 12
        crop = display[max(0, r0 - pad) : r1 + pad, max(0, c0 - pad) : c1 + pad].astype(float)
        texts = []
        for c in (crop, 255.0 - crop):
            lo, hi = np.percentile(c, [1, 99])
            img = (np.clip((c - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.uint8)
            pil = Image.fromarray(np.pad(img, 10, constant_values=255))
            self.api.SetImage(pil.resize((pil.width * 3, pil.height * 3), Image.BICUBIC))
            texts.append(self.api.GetUTF8Text())
        flat = "".join(texts).replace(" ", "").upper()
        return [s for s in plant_.strings if s.replace(" ", "") in flat]


def detection(work: Path, plants: list[Plant], workers: int) -> dict[str, object]:
    """Removed-or-quarantined rates under each policy, judged by :class:`Reader`."""
    reader = Reader()
    keys = {p.name: _key(p.name) for p in plants}
    out: dict[str, object] = {"n_planted": len(plants)}
    for policy in ("off", "quarantine", "redact"):
        dest = work / f"out_planted_{policy}"
        seconds, _ = _ingest(work / "planted", dest, policy, workers)
        niftis, quarantined = _outputs(dest)
        readable = removed = n_quarantined = 0
        misses: list[dict[str, object]] = []
        for p in plants:
            h = keys[p.name]
            if h not in quarantined and h not in niftis:
                raise SystemExit(f"error: {p.name}: neither ingested nor quarantined")
            if h in quarantined:
                n_quarantined += 1
                removed += 1
                continue
            read = reader.strings_read(niftis[h], p) if h in niftis else []
            readable += bool(read)
            removed += not read
            if read and policy != "off":
                misses.append({"size": p.size, "white": p.white, "lines": p.lines, "j2k": p.j2k})
        out[policy] = {
            "quarantined": n_quarantined,
            "readable_after": readable,
            "removed_or_quarantined": removed,
            "rate": round(removed / len(plants), 4),
            "seconds": round(seconds, 1),
            "misses": misses,
        }
    return out


def false_quarantine(work: Path, workers: int) -> dict[str, object]:
    _, summary = _ingest(work / "clean", work / "out_clean", "quarantine", workers)
    _, quarantined = _outputs(work / "out_clean")
    n = summary["files_seen"]
    return {"n_clean": n, "quarantined": len(quarantined), "rate": round(len(quarantined) / n, 4)}


def throughput(work: Path, workers: int, repeats: int) -> dict[str, object]:
    best = {"off": float("inf"), "quarantine": float("inf")}
    n = 0
    for _ in range(repeats):
        for policy in best:
            seconds, summary = _ingest(work / "clean", work / f"out_tp_{policy}", policy, workers)
            best[policy] = min(best[policy], seconds)
            n = summary["files_seen"]
    rates = {k: round(n / v, 1) for k, v in best.items()}
    return {
        "images": n,
        "images_per_s": rates,
        "ratio": round(rates["quarantine"] / rates["off"], 3),
    }


def screen_cost(work: Path) -> dict[str, object]:
    """Where the screen's time goes, one process, on the images as ingestion screens them
    (stored values of the decoded DX): detection vs OCR and rule, reads per image."""
    out: dict[str, object] = {}
    for folder in ("clean", "planted"):
        n = reads = 0
        t_detect = t_total = 0.0
        for path in sorted((work / folder).glob("*.dcm")):
            image = decode_datasets([dcmread(path)])[0]
            pixels = image.array if image.screen_pixels is None else image.screen_pixels
            start = time.perf_counter()
            text_regions(to_display(pixels))
            t_detect += time.perf_counter() - start
            start = time.perf_counter()
            reads += screen_image(pixels).n_read
            t_total += time.perf_counter() - start
            n += 1
        out[folder] = {
            "images": n,
            "ms_detect_per_image": round(1000 * t_detect / n, 1),
            "ms_read_and_rule_per_image": round(1000 * max(0.0, t_total - t_detect) / n, 1),
            "ocr_reads_per_image": round(reads / n, 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/medssl_burned_in_bench"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N radiographs only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.data / "png").is_dir():
        raise SystemExit(f"error: {args.data}: no png/ folder (the Hannover radiographs)")
    plants = build_sets(args.data, args.work, args.size, args.seed, args.limit)
    det = detection(args.work, plants, args.workers)
    fq = false_quarantine(args.work, args.workers)
    tp = throughput(args.work, args.workers, args.repeats)
    cost = screen_cost(args.work)
    result = {
        "command": "benchmarks/burned_in_text.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1_5_15": list(os.getloadavg())},
        "size": args.size, "detection": det, "false_quarantine": fq, "throughput": tp,
        "screen_cost": cost,
    }  # fmt: skip
    print("| measure | value |\n|---|---|")
    print(
        f"| identities readable without the check (policy off) | "
        f"{det['off']['readable_after']} / {det['n_planted']} |"
    )  # type: ignore[index]
    for policy in ("quarantine", "redact"):
        d = det[policy]  # type: ignore[index]
        print(
            f"| removed or quarantined, policy {policy} | {d['removed_or_quarantined']} / "
            f"{det['n_planted']} ({100 * d['rate']:.1f} %) |"
        )
    print(
        f"| clean radiographs quarantined | {fq['quarantined']} / {fq['n_clean']} "
        f"({100 * fq['rate']:.1f} %) |"
    )
    r = tp["images_per_s"]
    print(f"| ingestion, {args.workers} workers, {args.size} px: off / quarantine | "
          f"{r['off']} / {r['quarantine']} images/s (ratio {tp['ratio']}) |")  # fmt: skip
    for folder, c in cost.items():
        print(f"| screen cost, {folder} set, 1 process: detection / OCR + rule; OCR reads | "
              f"{c['ms_detect_per_image']} / {c['ms_read_and_rule_per_image']} ms per image; "  # type: ignore[index]
              f"{c['ocr_reads_per_image']} per image |")  # type: ignore[index]  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
