"""Seeded synthetic demo data set shaped like a hospital imaging export.

The generator writes chest-radiograph phantoms as real CR/DX DICOM files (several transfer
syntaxes, MONOCHROME1 and MONOCHROME2, rescale and window tags), CT phantoms as DICOM series
with shuffled file names, NIfTI volumes, deliberately broken files and a partial label table.
Every byte depends only on ``seed`` and the size arguments: UIDs come from
:func:`pydicom.uid.generate_uid` with seeded entropy and all dates and times are drawn from
seeded generators, so two runs give identical files. All patient identities are fake.

Layout under ``out_dir``::

    xray/<folder>/...            CR/DX DICOM (named, PACS-like nested and flat folders)
    ct/<series folder>/...       CT DICOM series, one file per slice, names shuffled
    nifti/ct_0.nii.gz            the first CT volume in RAS+ NIfTI (Hounsfield units)
    nifti/mr_0.nii.gz            a standalone MR-like head volume
    broken/...                   one file per failure mode (see :data:`BROKEN_FILES`)
    burned_text/...              DX radiographs with the patient's fake name, ID and birth
                                 date burned into the pixels, BurnedInAnnotation absent
    labels.csv                   path,label for a fraction of the X-ray images
    README.txt

JPEG-LS is not written: pydicom needs ``pyjpegls`` to encode it and the project does not
depend on it.

Why the pipeline's demo parameters are what they are (``params.yaml`` ``demo:``), fixed
from this rationale before any arm was run on them, and not tuned on arm results:

* The regime self-supervision is for: many images, few labels. One radiograph per
  patient; label budgets of 8, 24 and 96 out of some 600 labelled pool images.
* Precise enough to read: a 95 % CI on test AUROC no wider than 0.15 needs, by Hanley and
  McNeil's variance (Radiology 1982) at AUROC 0.7 with balanced classes, about 100
  labelled test patients per class. With 800 patients the reserve (~30 %) held 218
  labelled test patients, and the first run showed the CIs of near-chance arms (AUROC
  ~0.5, the widest) at up to 0.157; 1000 patients (~270 labelled test patients) is the
  one revision, made for CI width only (the generator itself was not changed).
* Fast enough for a 2-core machine: 48 px phantoms (the lesions stay 3 px or more across),
  with the first ``n_full_size`` patients at 512 px so that ingestion still meets
  radiograph-sized pixel data, compression and windowing.

References: DICOM PS3.3 A.2 (CR IOD), A.26 (DX IOD), A.3 (CT IOD), A.35.1 (Basic Text SR),
C.7.6.2 (Image Plane), C.7.6.3 (Image Pixel), C.11.1/C.11.2 (Modality and VOI LUT);
PS3.5 A.4 (encapsulated transfer syntaxes); NIfTI-1 qform/sform (RAS+ world space).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)
from scipy import ndimage

__all__ = [
    "BROKEN_FILES",
    "CT_STREAM",
    "DemoSummary",
    "FakePatient",
    "XrayPlan",
    "chest_phantom",
    "ct_affine",
    "ct_phantom",
    "plan_xrays",
    "stream_rng",
    "write_demo_dataset",
    "xray_stored_values",
]

# Seed-sequence stream keys: stream_rng(seed, <stream>, *index) gives independent generators.
PATIENT_STREAM = 1
PLAN_STREAM = 2
XRAY_STREAM = 3
CT_STREAM = 4
MR_STREAM = 5
BROKEN_STREAM = 6

XRAY_BITS = 12
XRAY_MAX = (1 << XRAY_BITS) - 1
CT_PIXEL_SPACING_MM = 0.8
CT_SLICE_SPACING_MM = 2.5
CT_INTERCEPT = -1024
XRAY_FIELD_MM = 430.0
MR_SPACING_MM = (1.2, 1.2, 3.0)

# Broken file name -> the single failure it exhibits.
BROKEN_FILES: dict[str, str] = {
    "empty.dcm": "zero-byte file",
    "truncated.dcm": "first half of a valid DX file (pixel data cut short)",
    "random_bytes.dcm": "random bytes with a .dcm extension (no DICM prefix)",
    "no_pixel_data.dcm": "valid Basic Text SR object without Pixel Data",
    "burned_in.dcm": "valid DX image with BurnedInAnnotation=YES (text burned into pixels)",
    "export_log.txt": "plain text file",
}

_FAMILY_NAMES = (
    "DOE", "ROE", "POE", "MOE", "BLOGGS", "PUBLIC", "CITIZEN", "MUSTERMANN",
    "DUPONT", "ROSSI", "NOONE", "TESTER", "SAMPLE", "EXAMPLE", "DEMO", "PHANTOM",
)  # fmt: skip
_GIVEN_NAMES = (
    "JOHN", "JANE", "RICHARD", "MARY", "JOE", "ERIKA", "MAX", "PAT",
    "ALEX", "SAM", "ROBIN", "KIM", "LEE", "JAMIE", "TAYLOR", "CHRIS",
)  # fmt: skip
_LAYOUTS = ("named", "pacs", "flat")
_ENCODING_PLUGIN = {RLELossless: "pylibjpeg", JPEG2000Lossless: "pylibjpeg"}
_BROKEN_IMAGE_INDEX = 1_000_000  # own phantom stream for the broken radiographs
_CR_RESCALES = ((1.0, 0.0), (0.5, 0.0), (1.0, -1024.0), (2.0, -512.0))


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`write_demo_dataset` wrote.

    Attributes:
        n_xray_files: Valid CR/DX DICOM files under ``xray/``.
        n_ct_series: CT DICOM series under ``ct/``.
        n_ct_files: CT slice files (one per slice).
        n_nifti: NIfTI files under ``nifti/``.
        n_broken: Files under ``broken/``.
        n_burned_text: Radiographs under ``burned_text/`` (identity in the pixels).
        n_labelled: Rows of ``labels.csv``.
        phi: Every fake patient name, patient ID and birth date written, for leak tests.
    """

    n_xray_files: int
    n_ct_series: int
    n_ct_files: int
    n_nifti: int
    n_broken: int
    n_burned_text: int
    n_labelled: int
    phi: tuple[str, ...]


@dataclass(frozen=True)
class FakePatient:
    """A fake identity; ``name`` is a DICOM PN (``FAMILY^GIVEN``), dates are ``YYYYMMDD``."""

    name: str
    patient_id: str
    birth_date: str
    sex: str

    @property
    def phi(self) -> tuple[str, str, str]:
        """The identifying strings written to files and folder names."""
        return (self.name, self.patient_id, self.birth_date)


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


# --------------------------------------------------------------------------- random streams


def stream_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """An independent generator for one stream and item, e.g. ``(seed, XRAY_STREAM, p, i)``.

    Args:
        seed: Data set seed.
        stream: One of the ``*_STREAM`` constants.
        *index: Item indices within the stream.

    Returns:
        A PCG64 generator seeded from the NumPy SeedSequence ``[seed, stream, *index]``.
    """
    return np.random.default_rng([seed, stream, *index])


def _uid(seed: int, *parts: object) -> UID:
    """A valid, deterministic UID (PS3.5 9.1) from the seed and a role key."""
    return generate_uid(entropy_srcs=["medssl-demo", str(seed), *map(str, parts)])


def _random_date(rng: np.random.Generator, first: dt.date, last: dt.date) -> str:
    """A ``YYYYMMDD`` date drawn uniformly in ``[first, last]``."""
    ordinal = int(rng.integers(first.toordinal(), last.toordinal() + 1))
    return dt.date.fromordinal(ordinal).strftime("%Y%m%d")


def _random_time(rng: np.random.Generator) -> str:
    """A ``HHMMSS`` time during working hours."""
    seconds = int(rng.integers(7 * 3600, 19 * 3600))
    return f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"


def _fake_patients(seed: int, n: int) -> list[FakePatient]:
    """``n`` distinct fake identities (names from fixed fake lists, 6-digit IDs)."""
    rng = stream_rng(seed, PATIENT_STREAM)
    middles = ("",) if n <= len(_FAMILY_NAMES) * len(_GIVEN_NAMES) else ("", *"ABCDEFGHJKLMN")
    combos = [(f, g, m) for m in middles for f in _FAMILY_NAMES for g in _GIVEN_NAMES]
    if n > len(combos):
        raise ValueError(f"n_patients={n} exceeds the {len(combos)} available fake names")
    picks = rng.choice(len(combos), size=n, replace=False)
    ids = rng.choice(900_000, size=n, replace=False) + 100_000
    patients = []
    for pick, pid in zip(picks, ids, strict=True):
        family, given, middle = combos[int(pick)]
        name = f"{family}^{given}" + (f"^{middle}" if middle else "")
        birth = _random_date(rng, dt.date(1935, 1, 1), dt.date(2005, 12, 31))
        sex = "MF"[int(rng.integers(2))]
        patients.append(FakePatient(name, str(int(pid)), birth, sex))
    return patients


# --------------------------------------------------------------------------- chest phantom


def _grid(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Normalised coordinates in [-1, 1] along each axis, broadcast to ``shape``."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float64) for n in shape]
    return tuple(np.meshgrid(*axes, indexing="ij"))


def _ellipse(
    y: np.ndarray,
    x: np.ndarray,
    cy: float,
    cx: float,
    ry: float | np.ndarray,
    rx: float | np.ndarray,
) -> np.ndarray:
    """Boolean mask of the filled ellipse centred at (cy, cx) with semi-axes (ry, rx)."""
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _band(y: np.ndarray, centre: np.ndarray, half_width: float, where: np.ndarray) -> np.ndarray:
    """Boolean mask of a curved band ``|y - centre| < half_width`` restricted to ``where``."""
    return (np.abs(y - centre) < half_width) & where


def _bones(
    y: np.ndarray, x: np.ndarray, thorax: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Density of ribs, clavicles and spine on a PA projection, shape of ``y``."""
    density = np.zeros_like(y)
    rib_top = rng.uniform(-0.78, -0.7)
    rib_step = rng.uniform(0.12, 0.135)
    for side in (-1.0, 1.0):
        u = side * x
        lateral = (u > 0.05) & (u < 0.8) & thorax
        for k in range(9):
            centre = rib_top + rib_step * k - 0.3 * u + 0.95 * u**2
            density += 0.16 * _band(y, centre, 0.02, lateral)
        clavicle = (u > 0.06) & (u < 0.58)
        density += 0.25 * _band(y, -0.74 - 0.12 * u + 0.3 * u**2, 0.028, clavicle)
    density += 0.1 * ((np.abs(x) < 0.055) & thorax)
    return density


def _lung(y: np.ndarray, x: np.ndarray, side: float, rng: np.random.Generator) -> np.ndarray:
    """One lung as seen on a PA film: narrow apex, broad base, domed diaphragm."""
    u = side * x
    top, base = rng.uniform(-0.76, -0.68), rng.uniform(0.42, 0.55)
    width = rng.uniform(0.56, 0.66)
    lateral = 0.12 + width * np.sqrt(np.clip((y - top) / (base - top), 0.0, 1.0))
    dome = base - 0.16 * np.clip(1.0 - ((u - 0.38) / 0.36) ** 2, 0.0, 1.0)
    return (y >= top) & (u >= 0.06) & (u <= lateral) & (y <= dome)


def _thorax(
    y: np.ndarray, x: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Projected density (air ~0.04, soft tissue ~0.5, bone up to ~1) and the two lung masks.

    Returns:
        ``(density, (lung_image_left, lung_image_right))``, each of the shape of ``y``.
    """
    rx, ry = 0.85 * rng.uniform(0.92, 1.05), 1.15
    body = (np.abs(y - 0.25) / ry) ** 3 + (np.abs(x) / rx) ** 3 <= 1.0
    body |= (np.abs(x) < rng.uniform(0.18, 0.24)) & (y < -0.6)
    heart = _ellipse(y, x, 0.28, rng.uniform(0.08, 0.16), rng.uniform(0.2, 0.26), 0.3)
    mediastinum = _ellipse(y, x, -0.1, 0.0, 0.7, rng.uniform(0.1, 0.14))
    lungs = tuple(_lung(y, x, side, rng) & ~heart & ~mediastinum & body for side in (-1.0, 1.0))
    density = 0.04 + 0.46 * body
    density[lungs[0] | lungs[1]] = 0.16
    density[mediastinum | heart] = 0.62
    density += _bones(y, x, body & (y < 0.6), rng)
    return density, (lungs[0], lungs[1])


def _nodules(
    rng: np.random.Generator, y: np.ndarray, x: np.ndarray, lung: np.ndarray
) -> np.ndarray:
    """One to three soft round nodules centred inside ``lung`` (density units)."""
    n = 3
    pick = rng.integers(0, max(int(lung.sum()), 1), size=n)
    radius = rng.uniform(max(0.06, 6.0 / y.shape[0]), 0.14, size=n)
    contrast = rng.uniform(0.1, 0.35, size=n)
    count = int(rng.integers(1, n + 1))
    ys, xs = y[lung], x[lung]
    out = np.zeros_like(y)
    for k in range(count if ys.size else 0):
        d2 = (y - ys[pick[k]]) ** 2 + (x - xs[pick[k]]) ** 2
        out += contrast[k] * np.clip(1.6 - np.sqrt(d2) / radius[k], 0.0, 1.0)
    return out


def _patchy(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """A patchy consolidation: thresholded smooth noise under a Gaussian envelope in ``lung``."""
    field = ndimage.gaussian_filter(rng.standard_normal(y.shape), sigma=y.shape[0] / 24)
    field /= field.std() + 1e-12
    pick = int(rng.integers(0, max(int(lung.sum()), 1)))
    extent = rng.uniform(0.12, 0.3)
    contrast = rng.uniform(0.1, 0.3)
    threshold = rng.uniform(-0.3, 0.5)
    if not lung.any():
        return np.zeros_like(y)
    cy, cx = y[lung][pick], x[lung][pick]
    envelope = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * extent**2))
    return contrast * envelope / (1.0 + np.exp(-4.0 * (field - threshold)))


def _lesion(
    rng: np.random.Generator,
    y: np.ndarray,
    x: np.ndarray,
    lungs: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """A nodule set or a patchy opacity inside one lung; always draws the same random numbers.

    The lesion is scaled so that its peak density is 0.35 to 0.7 (lung field ~0.16).
    Drawing is independent of whether the lesion is used, so a normal and an abnormal
    phantom from the same generator state differ only by the lesion.
    """
    lung = lungs[int(rng.integers(2))]
    use_patchy = bool(rng.integers(2))
    peak = rng.uniform(0.35, 0.7)
    nodules = _nodules(rng, y, x, lung)
    patchy = _patchy(rng, y, x, lung)
    lesion = ndimage.gaussian_filter(patchy if use_patchy else nodules, sigma=0.6) * lung
    return lesion * (peak / max(float(lesion.max()), 1e-6))


def chest_phantom(rng: np.random.Generator, size: int, abnormal: bool) -> np.ndarray:
    """A synthetic PA/AP chest radiograph in presentation polarity (MONOCHROME2).

    Body outline, two lungs, mediastinum and heart, ribs, clavicles and spine are drawn as a
    projected density map, blurred, then passed through a per-image exposure curve
    (gain, offset, gamma) with additive Gaussian noise. An abnormal image has one to three
    nodules or a patchy opacity of random size and contrast inside one lung. The random numbers
    drawn do not depend on ``abnormal``.

    Args:
        rng: Random generator (consumed).
        size: Image side in pixels (>= 16).
        abnormal: Whether to draw a lesion.

    Returns:
        (size, size) float32 image in [0, 1]; air dark, bone bright.
    """
    if size < 16:
        raise ValueError(f"chest_phantom: size must be >= 16, got {size}")
    yy, xx = _grid((size, size))
    scale, dy, dx = rng.uniform(0.94, 1.06), rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04)
    y, x = (yy - dy) / scale, (xx - dx) / scale
    density, lungs = _thorax(y, x, rng)
    density = ndimage.gaussian_filter(density, sigma=max(size / 256, 0.5))
    lesion = _lesion(rng, y, x, lungs)
    if abnormal:
        density = density + lesion
    gain, offset = rng.uniform(0.85, 1.1), rng.uniform(-0.04, 0.04)
    gamma, noise_sd = rng.uniform(0.85, 1.2), rng.uniform(0.006, 0.02)
    image = offset + gain * np.clip(density, 0.0, None) ** gamma
    image += rng.normal(0.0, noise_sd, size=image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- volume phantoms


def ct_phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A synthetic axial chest CT in Hounsfield units.

    Rows run anterior to posterior and columns right to left (DICOM LPS with identity
    orientation); slice index increases towards the head. Air -1000, fat -100, soft tissue
    40, lungs about -850, vertebra with cortical (700) and cancellous (250) bone, ribs 600.

    Args:
        rng: Random generator (consumed).
        shape: (Z, Y, X), each >= 4.

    Returns:
        (Z, Y, X) int16 volume clipped to [-1024, 3071].
    """
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"ct_phantom: shape must be 3 sizes >= 4, got {shape}")
    z, y, x = _grid(shape)
    hu = np.full(shape, -1000.0)
    body_ry, body_rx = rng.uniform(0.6, 0.72), rng.uniform(0.85, 0.95)
    body = _ellipse(y, x, 0.05, 0.0, body_ry, body_rx)
    hu[body] = -100.0
    hu[_ellipse(y, x, 0.05, 0.0, body_ry - 0.08, body_rx - 0.08)] = 40.0
    lung_scale = np.sqrt(np.clip(1.0 - (z / 1.25) ** 2, 0.05, 1.0))
    heart = _ellipse(y, x, -0.12, 0.1, 0.3, 0.26) & (z < rng.uniform(-0.1, 0.3))
    for side in (-1.0, 1.0):
        ry, rx = rng.uniform(0.36, 0.44) * lung_scale, rng.uniform(0.26, 0.32) * lung_scale
        hu[_ellipse(y, x, 0.0, side * 0.42, ry, rx) & ~heart] = rng.uniform(-880.0, -820.0)
    hu[heart] = 40.0
    hu[_ellipse(y, x, 0.46, 0.0, 0.14, 0.12)] = 700.0
    hu[_ellipse(y, x, 0.46, 0.0, 0.1, 0.085)] = 250.0
    hu[_ellipse(y, x, -0.6, 0.0, 0.05, 0.1) & body] = 400.0
    angle = np.arctan2((y - 0.05) / body_ry, x / body_rx)
    radius = np.sqrt(((y - 0.05) / body_ry) ** 2 + (x / body_rx) ** 2)
    rib_phase = np.cos(7.0 * angle + 6.0 * z) > 0.6
    hu[(radius > 0.8) & (radius < 0.87) & rib_phase & (z > -0.6)] = 600.0
    hu += rng.normal(0.0, rng.uniform(8.0, 20.0), size=shape)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _mr_phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A T1-like head volume (Z, Y, X) int16: scalp, skull, grey/white matter, ventricles."""
    z, y, x = _grid(shape)
    r = np.sqrt((z / 0.95) ** 2 + (y / 0.9) ** 2 + (x / 0.75) ** 2)
    signal = np.where(r < 0.98, 700.0, 0.0)
    signal[r < 0.92] = 80.0
    signal[r < 0.86] = 450.0
    signal[r < 0.6] = 620.0
    ventricle = _ellipse(y, x, -0.05, 0.0, 0.3, 0.12) & (np.abs(z) < 0.3)
    signal[ventricle] = 120.0
    bias = 1.0 + 0.15 * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)
    noise_sd = rng.uniform(10.0, 25.0)
    real = signal * bias + rng.normal(0.0, noise_sd, size=shape)
    imag = rng.normal(0.0, noise_sd, size=shape)
    return np.rint(np.hypot(real, imag)).astype(np.int16)


# --------------------------------------------------------------------------- planning


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
    """Export-like relative path for one image (see module docstring)."""
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
        date=_random_date(rng, dt.date(2016, 1, 1), dt.date(2023, 12, 31)),
        time=_random_time(rng),
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
    """Deterministic description of every radiograph :func:`write_demo_dataset` writes.

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
    patients = _fake_patients(seed, n_patients)
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


def xray_stored_values(seed: int, plan: XrayPlan, image_size: int) -> np.ndarray:
    """The stored pixel values written for ``plan`` (reference for decoder tests).

    The phantom comes from ``chest_phantom(stream_rng(seed, XRAY_STREAM, p, i), ...)``,
    quantised to 12 bits and inverted for MONOCHROME1 (PS3.3 C.7.6.3.1.2).

    Returns:
        (image_size, image_size) uint16 in [0, 4095].
    """
    rng = stream_rng(seed, XRAY_STREAM, plan.patient_index, plan.image_index)
    image = chest_phantom(rng, image_size, plan.abnormal)
    values = np.rint(image.astype(np.float64) * XRAY_MAX).astype(np.uint16)
    if plan.photometric == "MONOCHROME1":
        values = (XRAY_MAX - values).astype(np.uint16)
    return values


# --------------------------------------------------------------------------- DICOM writing


def _ds_str(value: float) -> str:
    """A Decimal String (PS3.5 6.2, at most 16 characters)."""
    return f"{value:.6g}"


def _base_dataset(sop_class: str, sop_instance: str, patient: FakePatient) -> Dataset:
    """SOP Common, Patient and file meta elements shared by every object written."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.InstitutionName = "MEDSSL DEMO GENERAL HOSPITAL"
    ds.Manufacturer = "MEDSSL"
    ds.ManufacturerModelName = "SYNTHETIC PHANTOM"
    ds.ReferringPhysicianName = "FAKE^REFERRER"
    return ds


def _study_tags(ds: Dataset, seed: int, plan: XrayPlan) -> None:
    """General Study and General Series elements for a radiograph."""
    key = (plan.patient_index, plan.study_index)
    ds.StudyInstanceUID = _uid(seed, "xray-study", *key)
    ds.SeriesInstanceUID = _uid(seed, "xray-series", *key, plan.image_index)
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = plan.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = plan.study_time
    ds.AccessionNumber = plan.accession
    ds.StudyID = f"{plan.study_index + 1}"
    ds.StudyDescription = "XR CHEST"
    ds.SeriesNumber = plan.image_index + 1
    ds.InstanceNumber = 1
    ds.Modality = plan.modality
    ds.BodyPartExamined = "CHEST"


def _image_tags(ds: Dataset, plan: XrayPlan, stored: np.ndarray) -> None:
    """CR/DX image elements: view, spacing, rescale, window (PS3.3 C.8.11, C.11)."""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = plan.view
    ds.PatientOrientation = ["L", "F"] if plan.view == "PA" else ["R", "F"]
    ds.BurnedInAnnotation = "NO"
    spacing = _ds_str(XRAY_FIELD_MM / stored.shape[0])
    if plan.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImagerPixelSpacing = [spacing, spacing]
        if plan.image_index % 2:
            ds.PixelSpacing = [spacing, spacing]
    else:
        ds.PixelSpacing = [spacing, spacing]
    slope, intercept = plan.rescale or (1.0, 0.0)
    if plan.rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds_str(slope), _ds_str(intercept)
        ds.RescaleType = "US"
    low, high = np.percentile(stored.astype(np.float64) * slope + intercept, [1.0, 99.0])
    ds.WindowCenter = _ds_str((low + high) / 2)
    ds.WindowWidth = _ds_str(max(high - low, 1.0))


def _set_pixels(ds: Dataset, arr: np.ndarray, photometric: str, bits: int, syntax: str) -> None:
    """Set Pixel Data and encode it in ``syntax`` (native or lossless-compressed)."""
    ds.set_pixel_data(arr, photometric, bits, generate_instance_uid=False)
    if syntax in _ENCODING_PLUGIN:
        plugin = _ENCODING_PLUGIN[UID(syntax)]
        ds.compress(syntax, arr, encoding_plugin=plugin, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = UID(syntax)


def _xray_dataset(seed: int, plan: XrayPlan, stored: np.ndarray) -> Dataset:
    """The complete CR or DX dataset for ``plan`` holding ``stored`` pixel values."""
    sop_class = (
        ComputedRadiographyImageStorage
        if plan.modality == "CR"
        else DigitalXRayImageStorageForPresentation
    )
    sop = _uid(seed, "xray-sop", plan.patient_index, plan.image_index)
    ds = _base_dataset(sop_class, sop, plan.patient)
    _study_tags(ds, seed, plan)
    _image_tags(ds, plan, stored)
    _set_pixels(ds, stored, plan.photometric, XRAY_BITS, plan.transfer_syntax)
    return ds


def _save(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM Part 10 file, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _write_xrays(
    out_dir: Path, seed: int, plans: list[XrayPlan], image_size: int, full: tuple[int, int]
) -> None:
    """Write every planned radiograph; the first ``full[0]`` patients at ``full[1]`` px."""
    n_full, full_size = full
    for plan in plans:
        size = full_size if plan.patient_index < n_full else image_size
        stored = xray_stored_values(seed, plan, size)
        _save(_xray_dataset(seed, plan, stored), out_dir / plan.rel_path)


@dataclass(frozen=True)
class _CtSeries:
    """Series-level CT settings: origin (LPS mm of voxel (0, 0, 0)) and shared elements."""

    origin: tuple[float, float, float]
    tags: dict[str, object]


def _ct_series(rng: np.random.Generator, shape: tuple[int, int, int]) -> _CtSeries:
    """Draw the date and table position of a CT series of ``shape`` (Z, Y, X)."""
    _, n_y, n_x = shape
    date = _random_date(rng, dt.date(2016, 1, 1), dt.date(2023, 12, 31))
    time = _random_time(rng)
    spacing = _ds_str(CT_PIXEL_SPACING_MM)
    origin = (
        -(n_x - 1) / 2 * CT_PIXEL_SPACING_MM,
        -(n_y - 1) / 2 * CT_PIXEL_SPACING_MM,
        float(np.round(rng.uniform(-300.0, -100.0), 1)),
    )
    tags: dict[str, object] = {
        "StudyDate": date, "SeriesDate": date, "ContentDate": date,
        "StudyTime": time, "SeriesTime": time, "ContentTime": time,
        "AccessionNumber": f"A{int(rng.integers(10**7, 10**8))}",
        "StudyID": "1", "SeriesNumber": 2, "AcquisitionNumber": 1,
        "StudyDescription": "CT CHEST", "BodyPartExamined": "CHEST",
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "PatientPosition": "HFS",
        "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"],
        "PixelSpacing": [spacing, spacing],
        "SliceThickness": _ds_str(CT_SLICE_SPACING_MM), "KVP": "120",
        "RescaleIntercept": str(CT_INTERCEPT), "RescaleSlope": "1", "RescaleType": "HU",
        "WindowCenter": "40", "WindowWidth": "400",
    }  # fmt: skip
    return _CtSeries(origin, tags)


def _ct_slice(seed: int, index: int, patient: FakePatient, series: _CtSeries, k: int) -> Dataset:
    """Slice ``k`` of CT series ``index``, without pixel data (PS3.3 A.3, C.7.6.2)."""
    ds = _base_dataset(CTImageStorage, _uid(seed, "ct-sop", index, k), patient)
    ds.StudyInstanceUID = _uid(seed, "ct-study", index)
    ds.SeriesInstanceUID = _uid(seed, "ct-series", index)
    ds.FrameOfReferenceUID = _uid(seed, "ct-frame", index)
    ds.Modality = "CT"
    for keyword, value in series.tags.items():
        setattr(ds, keyword, value)
    x_mm, y_mm, z0_mm = series.origin
    z_mm = z0_mm + CT_SLICE_SPACING_MM * k
    ds.ImagePositionPatient = [_ds_str(x_mm), _ds_str(y_mm), _ds_str(z_mm)]
    ds.SliceLocation = _ds_str(z_mm)
    return ds


def ct_affine(origin_lps: tuple[float, float, float]) -> np.ndarray:
    """RAS+ NIfTI affine of a demo CT stored as (X, Y, Z) with identity orientation.

    DICOM LPS (PS3.3 C.7.6.2.1.1) maps to NIfTI RAS+ by negating x and y.

    Args:
        origin_lps: ImagePositionPatient of the first slice (lowest z), mm.

    Returns:
        (4, 4) float64 mapping voxel (i, j, k) to RAS mm.
    """
    affine = np.diag([-CT_PIXEL_SPACING_MM, -CT_PIXEL_SPACING_MM, CT_SLICE_SPACING_MM, 1.0])
    affine[:3, 3] = [-origin_lps[0], -origin_lps[1], origin_lps[2]]
    return affine


def _save_nifti(volume_zyx: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Save a (Z, Y, X) volume as NIfTI-1 (X, Y, Z) with scanner-space qform and sform."""
    image = nib.Nifti1Image(np.ascontiguousarray(volume_zyx.transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)


def _write_ct(
    out_dir: Path, seed: int, index: int, patient: FakePatient, shape: tuple[int, int, int]
) -> int:
    """Write CT series ``index`` (and ``nifti/ct_0.nii.gz`` for the first); return file count."""
    volume = ct_phantom(stream_rng(seed, CT_STREAM, index), shape)
    rng = stream_rng(seed, CT_STREAM, index, 1)
    series = _ct_series(rng, shape)
    names = rng.permutation(shape[0])
    folder = out_dir / "ct" / f"{patient.patient_id}_CT{index + 1}"
    suffix = ".dcm" if index % 2 == 0 else ""
    for k in range(shape[0]):
        ds = _ct_slice(seed, index, patient, series, k)
        ds.InstanceNumber = shape[0] - k
        stored = (volume[k].astype(np.int32) - CT_INTERCEPT).astype(np.uint16)
        _set_pixels(ds, stored, "MONOCHROME2", 12, ExplicitVRLittleEndian)
        _save(ds, folder / f"IM{int(names[k]) + 1:04d}{suffix}")
    if index == 0:
        _save_nifti(volume, ct_affine(series.origin), out_dir / "nifti" / "ct_0.nii.gz")
    return shape[0]


def _write_mr(out_dir: Path, seed: int, shape: tuple[int, int, int]) -> None:
    """Write the standalone MR-like NIfTI volume ``nifti/mr_0.nii.gz``."""
    volume = _mr_phantom(stream_rng(seed, MR_STREAM), shape)
    affine = np.diag([*MR_SPACING_MM, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape[::-1], MR_SPACING_MM, strict=True)]
    _save_nifti(volume, affine, out_dir / "nifti" / "mr_0.nii.gz")


# --------------------------------------------------------------------------- broken files


def _broken_dx(seed: int, patient: FakePatient, size: int, name: str) -> tuple[Dataset, Dataset]:
    """A valid DX dataset (for truncation) and a copy with burned-in text (PS3.3 C.7.6.1)."""
    plan = XrayPlan(
        f"broken/{name}", 0, _BROKEN_IMAGE_INDEX, patient, 0, "20200101", "120000", "A10000000",
        "DX", "MONOCHROME2", ExplicitVRLittleEndian, (1.0, 0.0), "PA", False, False,
    )  # fmt: skip
    stored = xray_stored_values(seed, plan, size)
    ds = _xray_dataset(seed, plan, stored)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(seed, "broken", name)
    burned = stored.copy()
    rows = slice(2, max(size // 12, 4))
    burned[rows, 2 : size // 2] = np.where(np.arange(2, size // 2) % 3 == 0, XRAY_MAX, 0)
    text = _xray_dataset(seed, plan, burned)
    text.SOPInstanceUID = text.file_meta.MediaStorageSOPInstanceUID = _uid(seed, "broken", "bia")
    text.BurnedInAnnotation = "YES"
    return ds, text


def _text_sr(seed: int, patient: FakePatient) -> Dataset:
    """A Basic Text SR document: valid DICOM without Pixel Data (PS3.3 A.35.1)."""
    ds = _base_dataset(BasicTextSRStorage, _uid(seed, "broken", "sr"), patient)
    ds.StudyInstanceUID = _uid(seed, "broken", "sr-study")
    ds.SeriesInstanceUID = _uid(seed, "broken", "sr-series")
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


def _write_broken(out_dir: Path, seed: int, patient: FakePatient, size: int) -> int:
    """Write one file per entry of :data:`BROKEN_FILES`; return how many."""
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
    _save(_text_sr(seed, patient), folder / "no_pixel_data.dcm")
    _save(burned, folder / "burned_in.dcm")
    (folder / "export_log.txt").write_text("Export job finished: 0 errors.\n", encoding="utf-8")
    return len(BROKEN_FILES)


# --------------------------------------------------------------------------- burned-in text

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


def _write_burned_text(out_dir: Path, seed: int, patients: list[FakePatient], size: int) -> int:
    """Radiographs whose pixels show the patient's identity (no BurnedInAnnotation)."""
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
        ds = _xray_dataset(seed, plan, stored)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(seed, "burned", k)
        _save(ds, out_dir / plan.rel_path)
    return len(BURNED_TEXT_CASES)


# --------------------------------------------------------------------------- entry point


def _write_labels(path: Path, plans: list[XrayPlan]) -> int:
    """Write the label CSV (path,label) for the labelled images; return the row count."""
    rows = sorted((p.rel_path, int(p.abnormal)) for p in plans if p.labelled)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return len(rows)


def _write_readme(out_dir: Path, seed: int) -> None:
    """Write ``README.txt`` stating the data are synthetic."""
    text = (
        "medssl demo data set: SYNTHETIC. Generated by medssl.demo.write_demo_dataset"
        f" with seed={seed}.\n"
        "All images are mathematical phantoms. All patient names, IDs, birth dates and other\n"
        "identifiers are fake. Files under broken/ are broken on purpose (one failure each).\n"
        "labels.csv: label 1 = the phantom has a lesion, 0 = no lesion; unlisted images are\n"
        "unlabelled.\n"
    )
    (out_dir / "README.txt").write_text(text, encoding="utf-8")


def _validate(
    n_patients: int,
    images_per_patient: int,
    image_size: int,
    n_ct: int,
    ct_shape: tuple[int, int, int],
    fractions: tuple[float, float],
) -> None:
    """Raise ValueError on out-of-range arguments."""
    if n_patients < 1 or images_per_patient < 1:
        raise ValueError("n_patients and images_per_patient must be >= 1")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    if n_ct < 0 or len(ct_shape) != 3 or min(ct_shape) < 4:
        raise ValueError(f"n_ct must be >= 0 and ct_shape 3 sizes >= 4, got {n_ct}, {ct_shape}")
    if not all(0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"label_fraction and abnormal_fraction must be in [0, 1], got {fractions}")


def write_demo_dataset(
    out_dir: Path,
    *,
    seed: int = 0,
    n_patients: int = 24,
    images_per_patient: int = 3,
    image_size: int = 128,
    n_ct: int = 2,
    ct_shape: tuple[int, int, int] = (16, 48, 48),
    label_fraction: float = 0.75,
    abnormal_fraction: float = 0.4,
    labels_path: Path | None = None,
    n_full_size: int = 0,
    full_size: int = 512,
) -> DemoSummary:
    """Write the seeded synthetic demo data set (layout in the module docstring).

    Args:
        out_dir: Destination; created if missing, must be empty if present.
        seed: Seed for every random choice, UID and date.
        n_patients: Fake patients with radiographs.
        images_per_patient: Radiographs per patient.
        image_size: Radiograph side in pixels.
        n_ct: CT series; CT ``i`` belongs to patient ``i % n_patients``.
        ct_shape: CT (and MR) volume shape (Z, Y, X).
        label_fraction: Fraction of radiographs listed in ``labels.csv``.
        abnormal_fraction: Fraction of patients whose radiographs show lesions.
        labels_path: Where to write the label CSV (default ``out_dir/labels.csv``); the
            pipeline keeps label sets outside the ingested folders (``labels/``).
        n_full_size: Patients (the first ones) whose radiographs are written at
            ``full_size`` px instead of ``image_size``.
        full_size: Side of those radiographs.

    Returns:
        Counts of what was written and the fake PHI strings.
    """
    _validate(
        n_patients, images_per_patient, image_size, n_ct, ct_shape,
        (label_fraction, abnormal_fraction),
    )  # fmt: skip
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; the demo writer needs an empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_xrays(seed, n_patients, images_per_patient, label_fraction, abnormal_fraction)
    patients = _fake_patients(seed, n_patients)
    _write_xrays(out_dir, seed, plans, image_size, (n_full_size, full_size))
    shape = (int(ct_shape[0]), int(ct_shape[1]), int(ct_shape[2]))
    n_ct_files = sum(
        _write_ct(out_dir, seed, i, patients[i % n_patients], shape) for i in range(n_ct)
    )
    _write_mr(out_dir, seed, shape)
    n_broken = _write_broken(out_dir, seed, patients[0], image_size)
    n_burned = _write_burned_text(out_dir, seed, patients, max(full_size, 256))
    n_labelled = _write_labels(labels_path or out_dir / "labels.csv", plans)
    _write_readme(out_dir, seed)
    return DemoSummary(
        n_xray_files=len(plans),
        n_ct_series=n_ct,
        n_ct_files=n_ct_files,
        n_nifti=(1 if n_ct else 0) + 1,
        n_broken=n_broken,
        n_burned_text=n_burned,
        n_labelled=n_labelled,
        phi=tuple(s for patient in patients for s in patient.phi),
    )
