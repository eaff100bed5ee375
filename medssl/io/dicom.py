"""DICOM files and series to arrays with a NIfTI (RAS) affine.

Conventions (shared by every reader in :mod:`medssl.io`):

* Arrays are in NIfTI index order: ``(X, Y)`` for a 2D image, ``(X, Y, Z)`` for a volume,
  where X runs along a row (increasing column index) and Y down the columns (increasing
  row index), i.e. the transpose of pydicom's ``(rows, cols)``.
* Affines map ``(i, j, k, 1)`` to RAS+ millimetres (NIfTI convention), derived from the
  DICOM patient coordinate system (LPS+) of PS3.3 C.7.6.2.1.1 by negating x and y.
* Projection radiographs (CR, DX, MG, ...) are *presentation* images: modality LUT, then
  VOI LUT or window (PS3.3 C.11.1, C.11.2), then scaled to [0, 1], with MONOCHROME1
  inverted so that bone is bright (PS3.3 C.7.6.3.1.2).
* Cross-sectional modalities (CT, MR, PT) keep modality values (HU for CT, PS3.3 C.8.2.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

#: Modalities stored as 2D presentation images, one record per file.
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "XA", "IO", "PX", "OT", "SC", "US"})

#: Storage SOP classes that never hold an image we can train on (PS3.4 B.5).
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88",  # structured reports
    "1.2.840.10008.5.1.4.1.1.481",  # RT objects (RTSTRUCT, RTPLAN, RTDOSE ...)
    "1.2.840.10008.5.1.4.1.1.11",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, segmentation, surface
    "1.2.840.10008.5.1.4.1.1.104",  # encapsulated PDF / CDA
    "1.2.840.10008.5.1.4.1.1.9",  # waveforms
)

#: Relative tolerance on slice spacing before a series is flagged as non-uniform.
SPACING_RTOL = 0.01


class DicomError(Exception):
    """A DICOM object that cannot become an image; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class DecodedImage:
    """An image or volume ready to be written as NIfTI.

    Attributes:
        array: ``(X, Y)`` or ``(X, Y, Z)`` float32 (or int16 for integral HU).
        affine: ``(4, 4)`` voxel-to-RAS matrix in mm.
        flags: QC flags raised while decoding (e.g. ``"nonuniform_spacing"``).
    """

    array: np.ndarray
    affine: np.ndarray
    flags: list[str] = field(default_factory=list)


def read_dataset(path: Path, *, header_only: bool = False) -> Dataset:
    """Read one DICOM file.

    Args:
        path: file, with or without extension and preamble.
        header_only: stop before the pixel data (cheap grouping pass).

    Returns:
        The dataset.

    Raises:
        DicomError: ``empty_file``, ``not_dicom`` or ``unreadable``.
    """
    if path.stat().st_size == 0:
        raise DicomError("empty_file", "zero-byte file")
    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only, force=False)
    except InvalidDicomError:
        pass
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt input
        raise DicomError("unreadable", f"DICOM parse error: {type(exc).__name__}") from exc
    try:  # files without preamble (PS3.10 7.1 violations) are common in old exports
        ds = pydicom.dcmread(path, stop_before_pixels=header_only, force=True)
    except Exception as exc:  # noqa: BLE001
        raise DicomError("not_dicom", f"not a DICOM file: {type(exc).__name__}") from exc
    if "SOPClassUID" not in ds and "PixelData" not in ds and "Rows" not in ds:
        raise DicomError("not_dicom", "no DICOM preamble and no DICOM image attributes")
    return ds


def check_image_object(ds: Dataset, *, header_only: bool = False) -> None:
    """Reject objects that are not images.

    Args:
        ds: dataset (header is enough).
        header_only: the dataset was read without pixel data.

    Raises:
        DicomError: ``non_image_object`` for SR, RT, PR, SEG, ... and ``no_pixel_data``.
    """
    sop = str(ds.get("SOPClassUID", ""))
    if sop.startswith(NON_IMAGE_SOP_PREFIXES) or ds.get("Modality") in {"SR", "RTSTRUCT", "PR"}:
        raise DicomError("non_image_object", f"non-image object (SOP class {sop or 'absent'})")
    if "Rows" not in ds or "Columns" not in ds:
        raise DicomError("no_pixel_data", "no image pixel module (Rows/Columns absent)")
    if not header_only and not any(t in ds for t in ("PixelData", "FloatPixelData")):
        raise DicomError("no_pixel_data", "pixel data element absent")


def decode_array(ds: Dataset) -> np.ndarray:
    """Decode stored pixel values with pydicom and its pylibjpeg plugins.

    Args:
        ds: dataset with pixel data.

    Returns:
        ``(rows, cols)`` or ``(frames, rows, cols)`` stored values.

    Raises:
        DicomError: ``unsupported_syntax``, ``truncated_pixel_data`` or ``decode_failed``.
    """
    try:
        arr = ds.pixel_array
    except NotImplementedError as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        raise DicomError("unsupported_syntax", f"no decoder for transfer syntax {syntax}") from exc
    except (ValueError, EOFError) as exc:
        msg = str(exc).lower()
        code = "truncated_pixel_data" if "length" in msg or "size" in msg else "decode_failed"
        raise DicomError(code, f"pixel data could not be decoded: {type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001
        raise DicomError("decode_failed", f"pixel decoding failed: {type(exc).__name__}") from exc
    if ds.get("SamplesPerPixel", 1) != 1:
        raise DicomError(
            "colour_image", f"colour image ({ds.get('PhotometricInterpretation')}) not supported"
        )
    return np.asarray(arr)


def presentation_image(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Projection radiograph to a [0, 1] presentation image with bright bone.

    Modality LUT, then VOI LUT or window (PS3.3 C.11.2), then a robust min-max scale
    (0.5th-99.5th percentile) to [0, 1], then MONOCHROME1 inversion (PS3.3 C.7.6.3.1.2),
    which neither pydicom's windowing nor MONAI's readers apply.

    Args:
        ds: dataset.
        stored: ``(rows, cols)`` stored values.

    Returns:
        ``(rows, cols)`` float32 in [0, 1].
    """
    values = apply_modality_lut(stored, ds)
    values = apply_voi_lut(values, ds, index=0)
    values = np.asarray(values, dtype=np.float64)
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max()) + 1e-6
    out = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32)


def modality_values(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Apply the modality LUT / rescale (HU for CT, PS3.3 C.11.1).

    Args:
        ds: dataset.
        stored: stored values of any shape.

    Returns:
        int16 when the result is integral and fits, else float32.
    """
    values = np.asarray(apply_modality_lut(stored, ds))
    if np.all(np.mod(values, 1) == 0) and values.min() >= -32768 and values.max() <= 32767:
        return values.astype(np.int16)
    return values.astype(np.float32)


def _lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps


def _orientation(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    v = np.asarray([float(x) for x in iop])
    return v[:3], v[3:]


def pixel_spacing(ds: Dataset) -> tuple[float, float]:
    """In-plane spacing ``(row spacing, column spacing)`` in mm.

    PixelSpacing (PS3.3 10.7.1.3) is preferred, then ImagerPixelSpacing (projection
    radiography, detector plane), else 1 mm.
    """
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(name)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            return float(value[0]), float(value[1])
    return 1.0, 1.0


def image_affine(ds: Dataset) -> np.ndarray:
    """Affine of a single image in ``(X, Y)`` order (third axis: 1 mm along the normal).

    Args:
        ds: dataset.

    Returns:
        ``(4, 4)`` voxel-to-RAS matrix.
    """
    row_dir, col_dir = _orientation(ds)
    dr, dc = pixel_spacing(ds)
    normal = np.cross(row_dir, col_dir)
    ipp = ds.get("ImagePositionPatient")
    origin = np.asarray([float(x) for x in ipp]) if ipp is not None and len(ipp) == 3 else 0
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc
    lps[:3, 1] = col_dir * dr
    lps[:3, 2] = normal
    lps[:3, 3] = origin
    return _lps_to_ras(lps)


def decode_projection(ds: Dataset) -> DecodedImage:
    """Decode a single-frame projection radiograph.

    Args:
        ds: full dataset.

    Returns:
        ``(X, Y)`` presentation image in [0, 1] and its affine.
    """
    stored = decode_array(ds)
    if stored.ndim != 2:
        raise DicomError("unsupported_geometry", f"expected one frame, got shape {stored.shape}")
    flags = [] if "PixelSpacing" in ds or "ImagerPixelSpacing" in ds else ["spacing_unknown"]
    return DecodedImage(presentation_image(ds, stored).T.copy(), image_affine(ds), flags)


def slice_positions(datasets: Sequence[Dataset]) -> np.ndarray:
    """Project each ImagePositionPatient on the slice normal (PS3.3 C.7.6.2.1.1).

    Args:
        datasets: slices of one series.

    Returns:
        ``(n,)`` signed distances along ``row_dir x col_dir`` in mm.

    Raises:
        DicomError: ``inconsistent_geometry`` when positions or orientations are missing
            or differ between slices.
    """
    row_dir, col_dir = _orientation(datasets[0])
    normal = np.cross(row_dir, col_dir)
    out = []
    for ds in datasets:
        ipp = ds.get("ImagePositionPatient")
        if ipp is None or len(ipp) != 3:
            raise DicomError("inconsistent_geometry", "slice without ImagePositionPatient")
        r, c = _orientation(ds)
        if not (np.allclose(r, row_dir, atol=1e-4) and np.allclose(c, col_dir, atol=1e-4)):
            raise DicomError("inconsistent_geometry", "slices with different orientations")
        out.append(float(np.dot(normal, [float(x) for x in ipp])))
    return np.asarray(out)


def decode_series(datasets: Sequence[Dataset]) -> DecodedImage:
    """Assemble single-frame slices of one series into a volume.

    Slices are sorted by position along the normal, never by InstanceNumber; spacing comes
    from positions, never from SliceThickness. Non-uniform spacing and gantry tilt are
    flagged; duplicate positions are an error.

    Args:
        datasets: full datasets of one SeriesInstanceUID (any order), >= 2 slices.

    Returns:
        ``(X, Y, Z)`` modality values and the affine.
    """
    positions = slice_positions(datasets)
    order = np.argsort(positions, kind="stable")
    ordered = [datasets[i] for i in order]
    pos = positions[order]
    gaps = np.diff(pos)
    if np.any(gaps < 1e-3):
        raise DicomError("inconsistent_geometry", "two slices share one position")
    flags: list[str] = []
    if not np.allclose(gaps, gaps.mean(), rtol=SPACING_RTOL):
        flags.append("nonuniform_spacing")
    shapes = {(int(d.Rows), int(d.Columns)) for d in ordered}
    if len(shapes) != 1:
        raise DicomError("inconsistent_geometry", f"slices of different sizes {sorted(shapes)}")
    first = np.asarray([float(x) for x in ordered[0].ImagePositionPatient])
    last = np.asarray([float(x) for x in ordered[-1].ImagePositionPatient])
    step = (last - first) / (len(ordered) - 1)
    row_dir, col_dir = _orientation(ordered[0])
    normal = np.cross(row_dir, col_dir)
    if abs(abs(np.dot(step / np.linalg.norm(step), normal)) - 1.0) > 1e-3:
        flags.append("gantry_tilt")
    dr, dc = pixel_spacing(ordered[0])
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc
    lps[:3, 1] = col_dir * dr
    lps[:3, 2] = step
    lps[:3, 3] = first
    slices = [modality_values(d, decode_array(d)).T for d in ordered]
    volume = np.stack(slices, axis=-1)
    return DecodedImage(volume, _lps_to_ras(lps), flags)
