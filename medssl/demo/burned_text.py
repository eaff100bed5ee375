"""Burned-in identity: radiographs whose pixels show the fake patient's name, ID and birth date.

BurnedInAnnotation is absent from these files, as it usually is in hospital exports, so
only looking at the pixels (OCR) finds the identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian

from medssl.demo.dicom import save_dicom
from medssl.demo.patients import FakePatient
from medssl.demo.plan import XrayPlan
from medssl.demo.seeding import seeded_uid
from medssl.demo.xray import XRAY_MAX, xray_dataset, xray_stored_values

__all__ = ["BURNED_TEXT_CASES", "burned_lines", "write_burned_text"]

#: Burned-in identity cases: (text size in px, white text, lines shown).
BURNED_TEXT_CASES = ((16, True, 3), (20, False, 2), (14, True, 1))
_BURNED_TEXT_INDEX = 2_000_000  # own phantom stream


def burned_lines(patient: FakePatient) -> list[str]:
    """How modalities print identity: ``FAMILY, GIVEN``, ``ID nnn``, ``DOB YYYY-MM-DD``."""
    family, given = (patient.name.split("^") + [""])[:2]
    b = patient.birth_date
    return [f"{family}, {given}", f"ID {patient.patient_id}", f"DOB {b[:4]}-{b[4:6]}-{b[6:]}"]


def _burn(stored: np.ndarray, lines: list[str], size_px: int, white: bool) -> np.ndarray:
    """``stored`` with ``lines`` drawn at the extreme value (white or black)."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (stored.shape[1], stored.shape[0]), 0)
    font = ImageFont.load_default(size_px)  # Pillow's bundled font: no system fonts needed
    # White text in the dark corner; dark text over the body, where it can be read.
    at = (12, 12) if white else (stored.shape[1] // 4, stored.shape[0] // 2)
    ImageDraw.Draw(canvas).multiline_text(at, "\n".join(lines), fill=255, font=font)
    ink = np.asarray(canvas) >= 128
    return np.where(ink, XRAY_MAX if white else 0, stored).astype(stored.dtype)


def write_burned_text(out_dir: Path, seed: int, patients: list[FakePatient], size: int) -> int:
    """Radiographs whose pixels show the patient's identity (no BurnedInAnnotation).

    One file ``burned_text/dx_<k>.dcm`` per case of :data:`BURNED_TEXT_CASES`; case ``k``
    shows patient ``k`` (modulo the number of patients).

    Args:
        out_dir: Data set root.
        seed: Data set seed.
        patients: The fake identities.
        size: Radiograph side, px.

    Returns:
        The number of files written.
    """
    for k, (px, white, n_lines) in enumerate(BURNED_TEXT_CASES):
        patient = patients[k % len(patients)]
        plan = XrayPlan(
            f"burned_text/dx_{k}.dcm", k % len(patients), _BURNED_TEXT_INDEX + k, patient, 0,
            "20200101", "120000", f"A2{k:07d}", "DX", "MONOCHROME2", ExplicitVRLittleEndian,
            (1.0, 0.0), "PA", False, False,
        )  # fmt: skip
        stored = _burn(
            xray_stored_values(seed, plan, size), burned_lines(patient)[:n_lines], px, white
        )
        ds = xray_dataset(seed, plan, stored)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = seeded_uid(seed, "burned", k)
        save_dicom(ds, out_dir / plan.rel_path)
    return len(BURNED_TEXT_CASES)
