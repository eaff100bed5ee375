"""The plan of the radiographs: who, which study, which label, syntax, polarity and path.

:func:`plan_xrays` decides everything about every radiograph before a pixel is drawn, so
that tests can check the written files against the plan. Export-like layouts of the
relative paths (one per patient, drawn evenly):

* ``named``: ``xray/<FAMILY^GIVEN>_<ID>/IMG001.dcm`` (identity in the folder name);
* ``pacs``: ``xray/EXPORT/DICOM/P00000/S0001/SE0001/I0001`` (nested, no extension);
* ``flat``: ``xray/batch_<1|2>/<random token>.DCM``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from medssl.demo.patients import FakePatient, fake_patients
from medssl.demo.seeding import PLAN_STREAM, random_date, random_time, stream_rng

__all__ = ["XrayPlan", "plan_xrays"]

_LAYOUTS = ("named", "pacs", "flat")
_CR_RESCALES = ((1.0, 0.0), (0.5, 0.0), (1.0, -1024.0), (2.0, -512.0))


@dataclass(frozen=True)
class XrayPlan:
    """Everything needed to write (and to check) one radiograph file.

    Attributes:
        rel_path: POSIX path relative to ``out_dir``.
        patient_index: Index into the patient list.
        image_index: Index of the image within the patient.
        patient: The fake identity.
        study_index: 0 or 1 (patients have one or two studies).
        study_date: ``YYYYMMDD``.
        study_time: ``HHMMSS``.
        accession: Accession number of the study.
        modality: ``"CR"`` or ``"DX"``.
        photometric: ``"MONOCHROME1"`` or ``"MONOCHROME2"``.
        transfer_syntax: Transfer Syntax UID of the file.
        rescale: (RescaleSlope, RescaleIntercept), or None when the tags are absent.
        view: ``"PA"`` or ``"AP"``.
        abnormal: Ground truth: the phantom has a lesion.
        labelled: Whether the image appears in ``labels.csv``.
    """

    rel_path: str
    patient_index: int
    image_index: int
    patient: FakePatient
    study_index: int
    study_date: str
    study_time: str
    accession: str
    modality: str
    photometric: str
    transfer_syntax: str
    rescale: tuple[float, float] | None
    view: str
    abnormal: bool
    labelled: bool


def _abnormal_patients(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Boolean (n,) with exactly round(fraction * n) abnormal patients (>=1 of each if mixed)."""
    k = int(round(fraction * n))
    if 0.0 < fraction < 1.0 and n >= 2:
        k = min(max(k, 1), n - 1)
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[:k]] = True
    return flags


def _image_abnormal(rng: np.random.Generator, patient_abnormal: bool, n_images: int) -> list[bool]:
    """Per-image lesion flags: abnormal patients show a lesion on most (>= 1) images."""
    if not patient_abnormal:
        return [False] * n_images
    flags = rng.random(n_images) < 0.8
    flags[int(rng.integers(n_images))] = True
    return [bool(f) for f in flags]


def _transfer_syntaxes(rng: np.random.Generator, n: int) -> list[str]:
    """Mostly Explicit VR Little Endian, with ~15 % RLE, ~15 % JPEG 2000 and ~5 % implicit VR."""
    if n < 4:
        return [ExplicitVRLittleEndian] * n
    counts = {
        RLELossless: max(1, round(0.15 * n)),
        JPEG2000Lossless: max(1, round(0.15 * n)),
        ImplicitVRLittleEndian: max(1, round(0.05 * n)),
    }
    syntaxes = [uid for uid, count in counts.items() for _ in range(count)]
    syntaxes += [ExplicitVRLittleEndian] * (n - len(syntaxes))
    return [str(syntaxes[i]) for i in rng.permutation(n)]


def _labelled(
    rng: np.random.Generator, images_by_patient: list[int], fraction: float
) -> set[tuple[int, int]]:
    """(patient, image) pairs to label: round(fraction * N), spread one per patient at a time."""
    order = []
    for p, n_images in enumerate(images_by_patient):
        for rank, i in enumerate(rng.permutation(n_images)):
            order.append((rank, float(rng.random()), p, int(i)))
    n_label = int(round(fraction * len(order)))
    return {(p, i) for _, _, p, i in sorted(order)[:n_label]}


def _rel_path(
    layout: str, patient: FakePatient, layout_rank: int, study: int, image: int, token: str
) -> str:
    """Export-like relative path for one image (layouts in the module docstring)."""
    if layout == "named":
        return f"xray/{patient.name}_{patient.patient_id}/IMG{image + 1:03d}.dcm"
    if layout == "pacs":
        return f"xray/EXPORT/DICOM/P{layout_rank:05d}/S{study + 1:04d}/SE{image + 1:04d}/I0001"
    return f"xray/batch_{layout_rank % 2 + 1}/{token}.DCM"


@dataclass(frozen=True)
class _Study:
    date: str
    time: str
    accession: str
    modality: str
    photometric: str
    rescale: tuple[float, float] | None


def _draw_study(rng: np.random.Generator) -> _Study:
    """Study-level acquisition settings: device type, polarity, rescale tags, date."""
    modality = "CR" if rng.random() < 0.5 else "DX"
    mono1 = rng.random() < (0.5 if modality == "CR" else 0.25)
    rescale: tuple[float, float] | None = (1.0, 0.0)
    if modality == "CR":
        choice = int(rng.integers(len(_CR_RESCALES) + 1))
        rescale = _CR_RESCALES[choice] if choice < len(_CR_RESCALES) else None
    return _Study(
        date=random_date(rng, dt.date(2016, 1, 1), dt.date(2023, 12, 31)),
        time=random_time(rng),
        accession=f"A{int(rng.integers(10**7, 10**8))}",
        modality=modality,
        photometric="MONOCHROME1" if mono1 else "MONOCHROME2",
        rescale=rescale,
    )


def plan_xrays(
    seed: int,
    n_patients: int,
    images_per_patient: int,
    label_fraction: float,
    abnormal_fraction: float,
) -> list[XrayPlan]:
    """Deterministic description of every radiograph :func:`~medssl.demo.write_demo_dataset` writes.

    Abnormal status is drawn per patient (an exact count), then a lesion per image; labelled
    images are chosen one per patient at a time so labels spread over all patients.

    Args:
        seed: Data set seed.
        n_patients: Number of fake patients.
        images_per_patient: Radiographs per patient (split over one or two studies).
        label_fraction: Fraction of images listed in ``labels.csv``.
        abnormal_fraction: Fraction of patients with lesions.

    Returns:
        One :class:`XrayPlan` per image, ordered by patient then image.
    """
    rng = stream_rng(seed, PLAN_STREAM)
    patients = fake_patients(seed, n_patients)
    abnormal = _abnormal_patients(rng, n_patients, abnormal_fraction)
    layouts = [_LAYOUTS[i % len(_LAYOUTS)] for i in rng.permutation(n_patients)]
    syntaxes = iter(_transfer_syntaxes(rng, n_patients * images_per_patient))
    labelled = _labelled(rng, [images_per_patient] * n_patients, label_fraction)
    plans = []
    for p, patient in enumerate(patients):
        rank = layouts[:p].count(layouts[p])
        n_studies = 2 if images_per_patient >= 2 and rng.random() < 0.5 else 1
        studies = sorted((_draw_study(rng) for _ in range(n_studies)), key=lambda s: s.date)
        flags = _image_abnormal(rng, bool(abnormal[p]), images_per_patient)
        for i in range(images_per_patient):
            s = i * n_studies // images_per_patient
            study = studies[s]
            view = "AP" if rng.random() < (0.4 if study.modality == "CR" else 0.15) else "PA"
            token = rng.bytes(8).hex().upper()
            plans.append(
                XrayPlan(
                    rel_path=_rel_path(layouts[p], patient, rank, s, i, token),
                    patient_index=p,
                    image_index=i,
                    patient=patient,
                    study_index=s,
                    study_date=study.date,
                    study_time=study.time,
                    accession=study.accession,
                    modality=study.modality,
                    photometric=study.photometric,
                    transfer_syntax=next(syntaxes),
                    rescale=study.rescale,
                    view=view,
                    abnormal=flags[i],
                    labelled=(p, i) in labelled,
                )
            )
    return plans
