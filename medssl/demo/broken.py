"""Broken files: one file per failure mode an ingester must survive and account for."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian

from medssl.demo.dicom import base_dataset, save_dicom
from medssl.demo.patients import FakePatient
from medssl.demo.plan import XrayPlan
from medssl.demo.seeding import BROKEN_STREAM, seeded_uid, stream_rng
from medssl.demo.xray import XRAY_MAX, xray_dataset, xray_stored_values

__all__ = ["BROKEN_FILES", "write_broken_files"]

# Broken file name -> the single failure it exhibits.
BROKEN_FILES: dict[str, str] = {
    "empty.dcm": "zero-byte file",
    "truncated.dcm": "first half of a valid DX file (pixel data cut short)",
    "random_bytes.dcm": "random bytes with a .dcm extension (no DICM prefix)",
    "no_pixel_data.dcm": "valid Basic Text SR object without Pixel Data",
    "burned_in.dcm": "valid DX image with BurnedInAnnotation=YES (text burned into pixels)",
    "export_log.txt": "plain text file",
}
_BROKEN_IMAGE_INDEX = 1_000_000  # own phantom stream for the broken radiographs


def _broken_dx(seed: int, patient: FakePatient, size: int, name: str) -> tuple[Dataset, Dataset]:
    """A valid DX dataset (for truncation) and a copy with burned-in text (PS3.3 C.7.6.1)."""
    plan = XrayPlan(
        f"broken/{name}", 0, _BROKEN_IMAGE_INDEX, patient, 0, "20200101", "120000", "A10000000",
        "DX", "MONOCHROME2", ExplicitVRLittleEndian, (1.0, 0.0), "PA", False, False,
    )  # fmt: skip
    stored = xray_stored_values(seed, plan, size)
    ds = xray_dataset(seed, plan, stored)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = seeded_uid(seed, "broken", name)
    burned = stored.copy()
    rows = slice(2, max(size // 12, 4))
    burned[rows, 2 : size // 2] = np.where(np.arange(2, size // 2) % 3 == 0, XRAY_MAX, 0)
    text = xray_dataset(seed, plan, burned)
    text.SOPInstanceUID = text.file_meta.MediaStorageSOPInstanceUID = seeded_uid(
        seed, "broken", "bia"
    )
    text.BurnedInAnnotation = "YES"
    return ds, text


def _text_sr(seed: int, patient: FakePatient) -> Dataset:
    """A Basic Text SR document: valid DICOM without Pixel Data (PS3.3 A.35.1)."""
    ds = base_dataset(BasicTextSRStorage, seeded_uid(seed, "broken", "sr"), patient)
    ds.StudyInstanceUID = seeded_uid(seed, "broken", "sr-study")
    ds.SeriesInstanceUID = seeded_uid(seed, "broken", "sr-series")
    ds.Modality = "SR"
    ds.StudyDate = ds.ContentDate = "20200101"
    ds.StudyTime = ds.ContentTime = "120000"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator = "18748-4", "LN"
    title.CodeMeaning = "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = Sequence([title])
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    item.TextValue = "Synthetic report: no acute findings."
    ds.ContentSequence = Sequence([item])
    return ds


def write_broken_files(out_dir: Path, seed: int, patient: FakePatient, size: int) -> int:
    """Write one file per entry of :data:`BROKEN_FILES` under ``out_dir/broken``.

    Args:
        out_dir: Data set root.
        seed: Data set seed.
        patient: Identity written into the broken DICOM files.
        size: Side of the broken radiographs, px.

    Returns:
        The number of files written.
    """
    folder = out_dir / "broken"
    folder.mkdir(parents=True, exist_ok=True)
    valid, burned = _broken_dx(seed, patient, size, "truncated.dcm")
    buffer = io.BytesIO()
    valid.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    noise = bytearray(stream_rng(seed, BROKEN_STREAM).bytes(2048))
    noise[128:132] = b"XXXX"  # never a DICM prefix, by construction
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (folder / "random_bytes.dcm").write_bytes(bytes(noise))
    save_dicom(_text_sr(seed, patient), folder / "no_pixel_data.dcm")
    save_dicom(burned, folder / "burned_in.dcm")
    (folder / "export_log.txt").write_text("Export job finished: 0 errors.\n", encoding="utf-8")
    return len(BROKEN_FILES)
