"""DICOM files and series to arrays with a NIfTI (RAS) affine.

Conventions (shared by every reader in :mod:`medssl.io`):

* Arrays are in NIfTI index order: ``(X, Y)`` for a 2D image, ``(X, Y, Z)`` for a volume,
  where X runs along a row (increasing column index) and Y down the columns (increasing
  row index), i.e. the transpose of pydicom's ``(rows, cols)``. Z runs along the slice
  normal ``row_dir x col_dir`` (slices sorted by position, never by InstanceNumber).
* Affines map ``(i, j, k, 1)`` to RAS+ millimetres (NIfTI convention), derived from the
  DICOM patient coordinate system (LPS+) of PS3.3 C.7.6.2.1.1 by negating x and y. The
  third column is the mean step between slice origins, so a gantry tilt gives a sheared
  (exact) affine; nothing is resampled.
* Projection radiographs (CR, DX, MG, ...) are *presentation* images: modality LUT, then
  VOI LUT or window (PS3.3 C.11.1, C.11.2), then scaled to [0, 1], with MONOCHROME1
  inverted so that bone is bright (PS3.3 C.7.6.3.1.2).
* Cross-sectional modalities (CT, MR, PT) keep modality values (HU for CT, PS3.3 C.8.2.1),
  frame by frame for enhanced objects (Pixel Value Transformation, PS3.3 C.7.6.16.2.9).
  Philips private "precise" scaling is *not* applied (dcm2niix applies it by default).

Units of decoding (:func:`decode_datasets`):

* a single-frame radiograph; a single cross-sectional slice (2D, flag ``single_slice``);
* a series of single-frame slices (PS3.3 C.7.6.2);
* an enhanced multi-frame object (PS3.3 C.7.6.16: per-frame and shared functional groups);
* a Siemens MR mosaic (private CSA header, ImageType contains ``MOSAIC``): the tiles of
  one file are the slices of one volume (NiBabel "dicom_mosaic" notes; dcm2niix).

Splitting 4D data into 3D volumes (rule, applied to the frames of one unit):

1. frames are grouped by orientation (first appearance wins the order);
2. within a group, if every frame has its own position along the normal, it is one volume;
3. else frames are grouped by a volume key: the DimensionIndexValues without the spatial
   dimensions (In-Stack Position Number, Image Position) for enhanced objects, or
   ``(EchoNumbers, TemporalPositionIdentifier, DiffusionBValue)`` for slice series; the key
   split is kept when it yields >= 2 groups of equal size, each without repeated positions;
   volumes come out in key order;
4. otherwise the n-th frame (in acquisition order: frame order, or AcquisitionNumber then
   InstanceNumber for slice series) seen at a position goes to volume n;
5. volumes of unequal size are an ``inconsistent_geometry`` error.

Colour: only MONOCHROME1/MONOCHROME2 single-sample images are decoded. RGB, YBR_* and
PALETTE COLOR objects (secondary captures, ultrasound Doppler, photographs; PS3.3
C.7.6.3.1.2 and C.7.6.3.1.5) are quarantined as ``colour_image``: a grey level derived from
colour (or from a pseudo-colour LUT) is no measurement, and such objects are mostly screen
captures with burned-in annotations.

QC flags (strings in :attr:`DecodedImage.flags`): ``nonuniform_spacing`` (slice gaps differ
from their median by more than 1 %), ``missing_slices`` (a gap over 1.5x the median),
``gantry_tilt`` (slice step off the normal by more than 0.1 degree), ``localizer``
(ImageType contains LOCALIZER), ``derived`` (ImageType[0] is DERIVED), ``single_slice``,
``spacing_unknown``. dcm2niix marks comparable outputs ``_Eq`` and ``_Tilt``.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
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

#: Photometric interpretations decoded; anything else is a ``colour_image``.
GREYSCALE = frozenset({"MONOCHROME1", "MONOCHROME2"})

#: Subsampling stride for the robust intensity range of radiographs.
PERCENTILE_STRIDE = 4
#: Radiographs are written as uint16 codes 0..PRESENTATION_CODES (NIfTI scl_slope below).
PRESENTATION_CODES = 65535
#: Value of one presentation code: readers see ``code * PRESENTATION_SCALE`` in [0, 1].
PRESENTATION_SCALE = 1.0 / PRESENTATION_CODES
#: Pixels per chunk of a lookup-table gather (bounds numpy's intp copy of the index).
GATHER_CHUNK = 1 << 16

#: Relative tolerance on slice spacing before a series is flagged as non-uniform.
SPACING_RTOL = 0.01
#: A gap larger than this multiple of the median gap flags ``missing_slices``.
MISSING_GAP_FACTOR = 1.5
#: Angle (degrees) between the slice step and the normal above which ``gantry_tilt`` is set.
TILT_TOL_DEG = 0.1
#: Frames closer than this along the normal (mm) share one position.
POSITION_TOL_MM = 0.01
#: Direction cosines that differ by less than this describe one orientation.
ORIENTATION_ATOL = 1e-4

_IN_STACK_POSITION = 0x00209057  # (0020,9057) In-Stack Position Number
_IMAGE_POSITION = 0x00200032  # (0020,0032) Image Position (Patient)


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
        array: ``(X, Y)`` or ``(X, Y, Z)``: modality values (int16, or float32 when not
            integral) for cross-sectional images; uint16 presentation codes for radiographs.
        affine: ``(4, 4)`` voxel-to-RAS matrix in mm.
        flags: QC flags raised while decoding (e.g. ``"nonuniform_spacing"``).
        scale: value of one unit of ``array`` (NIfTI ``scl_slope``); None means 1.
    """

    array: np.ndarray
    affine: np.ndarray
    flags: list[str] = field(default_factory=list)
    scale: float | None = None


# --------------------------------------------------------------------------- reading


def read_dataset(path: Path, *, header_only: bool = False, data: bytes | None = None) -> Dataset:
    """Read one DICOM file.

    Args:
        path: file, with or without extension and preamble.
        header_only: stop before the pixel data (cheap grouping pass).
        data: the file's bytes when already in memory (``path`` is then not read).

    Returns:
        The dataset.

    Raises:
        DicomError: ``empty_file``, ``not_dicom``, ``unreadable`` or ``truncated_pixel_data``
            (the file ends inside its pixel data, so pydicom returns no elements).
    """
    if (len(data) if data is not None else path.stat().st_size) == 0:
        raise DicomError("empty_file", "zero-byte file")
    source: Path | io.BytesIO = path if data is None else io.BytesIO(data)
    try:
        ds = _dcmread(source, header_only, force=False)
    except InvalidDicomError:
        ds = None
    except DicomError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt input
        raise DicomError("unreadable", f"DICOM parse error: {type(exc).__name__}") from exc
    if ds is None:  # files without preamble (PS3.10 7.1 violations) are common in old exports
        try:
            if isinstance(source, io.BytesIO):
                source.seek(0)
            ds = _dcmread(source, header_only, force=True)
        except DicomError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DicomError("not_dicom", f"not a DICOM file: {type(exc).__name__}") from exc
        if "SOPClassUID" not in ds and "PixelData" not in ds and "Rows" not in ds:
            raise DicomError("not_dicom", "no DICOM preamble and no DICOM image attributes")
    return ds


def _dcmread(source: Path | io.BytesIO, header_only: bool, *, force: bool) -> Dataset:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(source, stop_before_pixels=header_only, force=force)
    eof = any("end of file" in str(w.message).lower() for w in caught)
    if eof and (len(ds) == 0 or "PixelData" in ds):
        raise DicomError("truncated_pixel_data", "file ends inside its data elements")
    return ds


def check_image_object(ds: Dataset, *, header_only: bool = False) -> None:
    """Reject objects that are not greyscale images.

    Args:
        ds: dataset (header is enough).
        header_only: the dataset was read without pixel data.

    Raises:
        DicomError: ``non_image_object`` for SR, RT, PR, SEG, ...; ``no_pixel_data``;
            ``colour_image`` for RGB, YBR and PALETTE COLOR (see the module docstring).
    """
    sop = str(ds.get("SOPClassUID", ""))
    if sop.startswith(NON_IMAGE_SOP_PREFIXES) or ds.get("Modality") in {"SR", "RTSTRUCT", "PR"}:
        raise DicomError("non_image_object", f"non-image object (SOP class {sop or 'absent'})")
    if "Rows" not in ds or "Columns" not in ds:
        raise DicomError("no_pixel_data", "no image pixel module (Rows/Columns absent)")
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip().upper()
    if _number(ds.get("SamplesPerPixel", 1)) not in (0.0, 1.0) or photometric not in GREYSCALE:
        raise DicomError("colour_image", f"colour image ({photometric}) not supported")
    pixel_keywords = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    if not header_only and not any(t in ds for t in pixel_keywords):
        raise DicomError("no_pixel_data", "pixel data element absent")


def decode_array(ds: Dataset) -> np.ndarray:
    """Decode stored pixel values with pydicom and its pylibjpeg plugins.

    pydicom masks the unused high bits of native data and sign-extends signed values
    (BitsStored < BitsAllocated, PS3.5 8.1.1), and corrects JPEG 2000 / JPEG-LS
    codestreams whose signedness disagrees with PixelRepresentation.

    Args:
        ds: dataset with greyscale pixel data.

    Returns:
        ``(rows, cols)`` or ``(frames, rows, cols)`` stored values.

    Raises:
        DicomError: ``colour_image``, ``unsupported_syntax``, ``truncated_pixel_data`` or
            ``decode_failed``.
    """
    check_image_object(ds)
    try:
        arr = ds.pixel_array
    except NotImplementedError as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        raise DicomError("unsupported_syntax", f"no decoder for transfer syntax {syntax}") from exc
    except (ValueError, EOFError) as exc:
        msg = str(exc).lower()
        code = "truncated_pixel_data" if "length" in msg or "less than" in msg else "decode_failed"
        raise DicomError(code, f"pixel data could not be decoded: {type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001
        raise DicomError("decode_failed", f"pixel decoding failed: {type(exc).__name__}") from exc
    return np.asarray(arr)


# --------------------------------------------------------------------------- pixel values


def presentation_codes(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Projection radiograph to presentation codes: uint16, value = code * PRESENTATION_SCALE.

    Modality LUT, then VOI LUT or window (PS3.3 C.11.1, C.11.2), then a robust min-max scale
    (0.5th-99.5th percentile of a strided sample) to [0, 1], then MONOCHROME1 inversion
    (PS3.3 C.7.6.3.1.2), which neither pydicom's windowing nor MONAI's readers apply; the
    result is quantized to 16 bits (steps of 1/65535, finer than any detector's BitsStored)
    and written with that NIfTI ``scl_slope``, so readers see floats in [0, 1].

    Every step maps a stored value to one output value, so for 8- and 16-bit stored values
    the chain is evaluated once per possible value (a lookup table of 256 or 65536 entries,
    with the very pydicom functions) and applied with one gather: the same codes as
    evaluating it per pixel, without per-pixel float arithmetic.

    Args:
        ds: dataset.
        stored: ``(rows, cols)`` stored values.

    Returns:
        ``(rows, cols)`` uint16 codes.
    """
    domain = _value_domain(stored)
    if domain is None:
        lo, hi = _robust_range(_voi(ds, _sample(stored)))
        return _to_codes(_unit_scale(_voi(ds, stored), lo, hi), ds)
    bits = f"u{stored.dtype.itemsize}"  # the table is indexed by each value's bit pattern
    table = _voi(ds, domain)
    lo, hi = _robust_range(table.take(_sample(stored).view(bits)))
    return _gather(_to_codes(_unit_scale(table, lo, hi), ds), stored.view(bits))


def presentation_image(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """:func:`presentation_codes` as float32 in [0, 1] (what NIfTI readers get back).

    Args:
        ds: dataset.
        stored: ``(rows, cols)`` stored values.

    Returns:
        ``(rows, cols)`` float32 in [0, 1], bone bright.
    """
    return presentation_codes(ds, stored).astype(np.float32) * np.float32(PRESENTATION_SCALE)


def _voi(ds: Dataset, values: np.ndarray) -> np.ndarray:
    """Modality LUT then VOI LUT or window (pydicom), as float32; elementwise."""
    return np.asarray(apply_voi_lut(apply_modality_lut(values, ds), ds, index=0), np.float32)


def _sample(stored: np.ndarray) -> np.ndarray:
    """One pixel in ``PERCENTILE_STRIDE**2``, for the robust range's percentiles."""
    return stored[::PERCENTILE_STRIDE, ::PERCENTILE_STRIDE]


def _robust_range(sample: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max()) + 1e-6
    return lo, hi


def _unit_scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    out = (values - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _value_domain(stored: np.ndarray) -> np.ndarray | None:
    """Every 8- or 16-bit value in bit-pattern order, or None (wider types, small images)."""
    if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
        return None
    n = 1 << (8 * stored.dtype.itemsize)
    if stored.size <= n:
        return None
    return np.arange(n, dtype=f"u{stored.dtype.itemsize}").view(stored.dtype)


def _to_codes(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """[0, 1] values to uint16 codes, MONOCHROME1 inverted (PS3.3 C.7.6.3.1.2)."""
    codes = np.rint(values * np.float32(PRESENTATION_CODES)).astype(np.uint16)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        np.subtract(np.uint16(PRESENTATION_CODES), codes, out=codes)
    return codes


def _gather(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[index]`` in cache-sized chunks (numpy widens each index to intp)."""
    out = np.empty(index.shape, dtype=table.dtype)
    flat_in, flat_out = index.reshape(-1), out.reshape(-1)
    for i in range(0, flat_in.size, GATHER_CHUNK):
        np.take(table, flat_in[i : i + GATHER_CHUNK], out=flat_out[i : i + GATHER_CHUNK])
    return out


def modality_values(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Apply the modality LUT / rescale (HU for CT, PS3.3 C.11.1).

    Integer stored values with an integer linear rescale (the usual CT case) are computed
    in int16 directly when the result range fits; wrap-around arithmetic is exact there,
    since only the final values must fit.

    Args:
        ds: dataset, or the functional group item that holds RescaleSlope/Intercept.
        stored: stored values of any shape.

    Returns:
        int16 when the result is integral and fits, else float32.
    """
    rescale = _integer_rescale(ds) if stored.dtype.kind in "iu" and stored.size else None
    if rescale is not None:
        fast = _integer_modality(stored, *rescale)
        if fast is not None:
            return fast
    return _compact(np.asarray(apply_modality_lut(stored, ds)))


def _integer_modality(stored: np.ndarray, slope: int, intercept: int) -> np.ndarray | None:
    ends = (int(stored.min()) * slope + intercept, int(stored.max()) * slope + intercept)
    if min(ends) < -32768 or max(ends) > 32767:
        return None
    out = stored.astype(np.int16)  # wraps; exact modulo 2**16, and the result fits
    if slope != 1:
        out *= np.int16(_wrap16(slope))
    if intercept:
        out += np.int16(_wrap16(intercept))
    return out


def _wrap16(value: int) -> int:
    return (value + 32768) % 65536 - 32768


def _compact(values: np.ndarray) -> np.ndarray:
    """int16 when every value is an integer in range, else float32."""
    if (
        values.size
        and np.all(np.mod(values, 1) == 0)
        and values.min() >= -32768
        and values.max() <= 32767
    ):
        return values.astype(np.int16)
    return values.astype(np.float32)


def _image_type_flags(datasets: Sequence[Dataset]) -> list[str]:
    """``localizer`` / ``derived`` from ImageType (PS3.3 C.7.6.1.1.2)."""
    flags = set()
    for ds in datasets:
        image_type = [str(v).strip().upper() for v in ds.get("ImageType", None) or []]
        if "LOCALIZER" in image_type:
            flags.add("localizer")
        if image_type and image_type[0] == "DERIVED":
            flags.add("derived")
    return sorted(flags)


# --------------------------------------------------------------------------- geometry


def _lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps


def _floats(value: Any, n: int) -> np.ndarray | None:
    """``n`` floats from a multi-valued element, or None when absent or malformed."""
    try:
        out = np.asarray([float(x) for x in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.all(np.isfinite(out)) else None


def _orientation(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    v = _floats(ds.get("ImageOrientationPatient"), 6)
    if v is None:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    return v[:3], v[3:]


def _spacing_or_none(ds: Dataset) -> tuple[float, float] | None:
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _floats(ds.get(name), 2)
        if value is not None and np.all(value > 0):
            return float(value[0]), float(value[1])
    return None


def pixel_spacing(ds: Dataset) -> tuple[float, float]:
    """In-plane spacing ``(row spacing, column spacing)`` in mm.

    PixelSpacing (PS3.3 10.7.1.3) is preferred, then ImagerPixelSpacing (projection
    radiography, detector plane), else 1 mm (zero or malformed values count as absent).
    """
    return _spacing_or_none(ds) or (1.0, 1.0)


def _slice_thickness(ds: Dataset) -> float:
    for name in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(name) or 0)
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return 1.0


def _plane_affine(
    row_dir: np.ndarray,
    col_dir: np.ndarray,
    spacing: tuple[float, float],
    step: np.ndarray,
    origin: np.ndarray,
) -> np.ndarray:
    """Voxel ``(X, Y, Z)`` to RAS affine from DICOM plane geometry (PS3.3 C.7.6.2.1.1)."""
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[1]  # X: along a row, i.e. column index, column spacing
    lps[:3, 1] = col_dir * spacing[0]  # Y: down a column, i.e. row index, row spacing
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return _lps_to_ras(lps)


def image_affine(ds: Dataset) -> np.ndarray:
    """Affine of a single image in ``(X, Y)`` order (third axis: 1 mm along the normal).

    Args:
        ds: dataset.

    Returns:
        ``(4, 4)`` voxel-to-RAS matrix.
    """
    row_dir, col_dir = _orientation(ds)
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    origin = ipp if ipp is not None else np.zeros(3)
    return _plane_affine(row_dir, col_dir, pixel_spacing(ds), np.cross(row_dir, col_dir), origin)


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
        ipp = _floats(ds.get("ImagePositionPatient"), 3)
        if ipp is None:
            raise DicomError("inconsistent_geometry", "slice without ImagePositionPatient")
        r, c = _orientation(ds)
        if not _same_orientation((r, c), (row_dir, col_dir)):
            raise DicomError("inconsistent_geometry", "slices with different orientations")
        out.append(float(np.dot(normal, ipp)))
    return np.asarray(out)


def _same_orientation(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return bool(
        np.allclose(a[0], b[0], atol=ORIENTATION_ATOL)
        and np.allclose(a[1], b[1], atol=ORIENTATION_ATOL)
    )


# --------------------------------------------------------------------------- frames


@dataclass
class Frame:
    """One 2D frame of a unit, with its geometry and value transform.

    Attributes:
        values: ``(rows, cols)`` modality values (:func:`modality_values`: int16 or float32).
        origin: ``(3,)`` LPS position of the first transmitted pixel (IPP), mm.
        row_dir: ``(3,)`` direction of increasing column index (IOP[:3]).
        col_dir: ``(3,)`` direction of increasing row index (IOP[3:]).
        spacing: ``(row spacing, column spacing)`` in mm.
        thickness: slice spacing used when the frame ends up alone in its volume, mm.
        key: volume key (rule 3 of the module docstring).
        order: acquisition order within the unit.
        spacing_known: PixelSpacing was present.
        flags: ImageType QC flags of the frame's file (``localizer``, ``derived``).
    """

    values: np.ndarray
    origin: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    spacing: tuple[float, float]
    thickness: float
    key: tuple[float, ...]
    order: tuple[float, ...]
    spacing_known: bool = True
    flags: tuple[str, ...] = ()

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)


def _number(value: Any) -> float:
    """First numeric value of an element value (multi-valued or not), or 0.0."""
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def slice_frame(ds: Dataset, index: int = 0) -> Frame:
    """Decode one single-frame cross-sectional slice into a frame of its series.

    Ingestion decodes slices one file at a time (in parallel) and assembles each series
    later with :func:`assemble_slices`; :func:`decode_datasets` does both in one call.

    Args:
        ds: full dataset of a single-frame slice with ImagePositionPatient.
        index: position of the file in its unit (last tie-breaker of the acquisition order).

    Returns:
        The frame: modality values, plane geometry, volume key and acquisition order.

    Raises:
        DicomError: with a quarantine reason code, as :func:`decode_datasets`.
    """
    with _malformed_header("cannot decode"):
        return _classic_frame(ds, index)


@contextmanager
def _malformed_header(what: str) -> Iterator[None]:
    """Malformed headers (wrong VM, non-numeric strings, frame counts that do not match the
    pixel data) surface as these built-in errors; ingestion needs a reason code instead."""
    try:
        yield
    except DicomError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise DicomError("malformed_header", f"{what}: {type(exc).__name__}") from exc


def _classic_frame(ds: Dataset, index: int) -> Frame:
    """One slice as a frame; keys ``(echo, temporal position, b-value)``."""
    stored = decode_array(ds)
    if stored.ndim != 2:
        raise DicomError("inconsistent_geometry", "multi-frame object inside a slice series")
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    if ipp is None:
        raise DicomError("inconsistent_geometry", "slice without ImagePositionPatient")
    row_dir, col_dir = _orientation(ds)
    key = tuple(
        _number(ds.get(k)) for k in ("EchoNumbers", "TemporalPositionIdentifier", "DiffusionBValue")
    )
    order = (_number(ds.get("AcquisitionNumber")), _number(ds.get("InstanceNumber")), index)
    spacing = _spacing_or_none(ds)
    return Frame(
        values=modality_values(ds, stored),
        origin=ipp,
        row_dir=row_dir,
        col_dir=col_dir,
        spacing=spacing or (1.0, 1.0),
        thickness=_slice_thickness(ds),
        key=key,
        order=order,
        spacing_known=spacing is not None,
        flags=tuple(_image_type_flags([ds])),
    )


def _group_item(frame: Dataset, shared: Dataset | None, sequence: str) -> Dataset | None:
    """Functional group macro item: per-frame first, then shared (PS3.3 C.7.6.16)."""
    for holder in (frame, shared):
        if holder is not None and holder.get(sequence):
            return holder.get(sequence)[0]
    return None


def _spatial_dimensions(ds: Dataset) -> set[int]:
    """Positions in DimensionIndexValues that index space, not volumes (PS3.3 C.7.6.17)."""
    out = set()
    for i, item in enumerate(ds.get("DimensionIndexSequence", None) or []):
        if int(item.get("DimensionIndexPointer", 0) or 0) in {_IN_STACK_POSITION, _IMAGE_POSITION}:
            out.add(i)
    return out


def _enhanced_key(content: Dataset | None, spatial: set[int]) -> tuple[float, ...]:
    if content is None:
        return ()
    values = content.get("DimensionIndexValues")
    if values is not None:
        values = [values] if isinstance(values, int) else list(values)
        return tuple(float(v) for i, v in enumerate(values) if i not in spatial)
    return (_number(content.get("TemporalPositionIndex")),)


def _enhanced_frames(ds: Dataset) -> list[Frame]:
    """Frames of an enhanced multi-frame object (PS3.3 C.7.6.16.2.3, .2.1, .2.9).

    Raises:
        DicomError: ``unsupported_multiframe`` when a frame lacks its plane position or
            orientation (cine loops, projection multi-frame objects).
    """
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", None) or [])
    shared_seq = ds.get("SharedFunctionalGroupsSequence", None)
    shared = shared_seq[0] if shared_seq else None
    n = _n_frames(ds)
    if len(per_frame) != n:
        raise DicomError(
            "unsupported_multiframe", f"{len(per_frame)} functional groups, {n} frames"
        )
    stored = decode_array(ds).reshape(n, int(ds.Rows), int(ds.Columns))
    spatial = _spatial_dimensions(ds)
    return [
        _enhanced_frame(ds, item, shared, stored[i], spatial, i) for i, item in enumerate(per_frame)
    ]


def _enhanced_frame(
    ds: Dataset,
    item: Dataset,
    shared: Dataset | None,
    stored: np.ndarray,
    spatial: set[int],
    index: int,
) -> Frame:
    position = _group_item(item, shared, "PlanePositionSequence")
    orientation = _group_item(item, shared, "PlaneOrientationSequence")
    ipp = _floats(position.get("ImagePositionPatient"), 3) if position else None
    iop = _floats(orientation.get("ImageOrientationPatient"), 6) if orientation else None
    if ipp is None or iop is None:
        raise DicomError(
            "unsupported_multiframe", "multi-frame object without plane position/orientation"
        )
    measures = _group_item(item, shared, "PixelMeasuresSequence") or ds
    spacing = _spacing_or_none(measures)
    lut = _group_item(item, shared, "PixelValueTransformationSequence") or ds
    content = _group_item(item, None, "FrameContentSequence")
    return Frame(
        values=modality_values(lut, stored),
        origin=ipp,
        row_dir=iop[:3],
        col_dir=iop[3:],
        spacing=spacing or (1.0, 1.0),
        thickness=_slice_thickness(measures),
        key=_enhanced_key(content, spatial),
        order=(float(index),),
        spacing_known=spacing is not None,
    )


def _csa_tags(raw: bytes) -> dict[str, list[str]]:
    """Parse a Siemens CSA2 ("SV10") header into ``name -> item strings``.

    Layout (NiBabel ``nicom.csareader``, SPM ``spm_dicom_headers``): ``SV10``, 4 unused
    bytes, uint32 tag count, uint32 check; per tag a 64-byte name, int32 VM, 4-byte VR,
    int32 SyngoDT, int32 item count, int32 check; per item four int32 (the second is the
    length), then the value padded to 4 bytes. Returns ``{}`` on anything unexpected.
    """
    out: dict[str, list[str]] = {}
    if raw[:4] != b"SV10" or len(raw) < 16:
        return out
    n_tags = struct.unpack_from("<I", raw, 8)[0]
    ptr = 16
    try:
        for _ in range(min(n_tags, 1000)):
            name_b, _vm, _vr, _dt, n_items, _ = struct.unpack_from("<64si4s3i", raw, ptr)
            ptr += 84
            items = []
            for _i in range(min(n_items, 1000)):
                length = struct.unpack_from("<4i", raw, ptr)[1]
                ptr += 16
                items.append(raw[ptr : ptr + length].split(b"\0")[0].decode("latin-1").strip())
                ptr += length + (-length % 4)
            out[name_b.split(b"\0")[0].decode("latin-1")] = [s for s in items if s]
    except struct.error:
        return out
    return out


def siemens_csa_header(ds: Dataset) -> dict[str, list[str]]:
    """The Siemens CSA *image* header (0029,xx10) as ``name -> item strings``.

    Args:
        ds: dataset (header is enough).

    Returns:
        ``{}`` when absent (e.g. removed by de-identification) or not in CSA2 format.
    """
    try:
        raw = ds.private_block(0x0029, "SIEMENS CSA HEADER")[0x10].value
    except (KeyError, ValueError):
        return {}
    return _csa_tags(bytes(raw)) if isinstance(raw, (bytes, bytearray)) else {}


def _is_mosaic(ds: Dataset) -> bool:
    return "MOSAIC" in [str(v).strip().upper() for v in ds.get("ImageType", None) or []]


def _mosaic_count(ds: Dataset, csa: dict[str, list[str]]) -> int:
    """NumberOfImagesInMosaic from the CSA header, (0019,xx0A) or MosaicRefAcqTimes."""
    if csa.get("NumberOfImagesInMosaic"):
        return int(float(csa["NumberOfImagesInMosaic"][0]))
    try:
        block = ds.private_block(0x0019, "SIEMENS MR HEADER")
    except (KeyError, ValueError):
        block = None
    if block is not None:
        try:
            return int(block[0x0A].value)  # NumberOfImagesInMosaic
        except (KeyError, TypeError, ValueError):
            pass
        try:
            return len(block[0x29].value)  # MosaicRefAcqTimes: one time per tile
        except (KeyError, TypeError):
            pass
    raise DicomError("unsupported_mosaic", "Siemens mosaic without NumberOfImagesInMosaic")


def _mosaic_frames(ds: Dataset) -> list[Frame]:
    """Tiles of a Siemens mosaic as frames.

    The tiles fill a ``ceil(sqrt(n)) x ceil(sqrt(n))`` grid row by row, slice k at
    ``IPP' + k * spacing * normal`` where ``IPP'`` corrects the mosaic's IPP (which refers
    to the whole mosaic) by half the size difference between mosaic and tile, and the
    normal's sign comes from the CSA SliceNormalVector (NiBabel "dicom_mosaic" notes).
    """
    csa = siemens_csa_header(ds)
    n = _mosaic_count(ds, csa)
    stored = decode_array(ds)
    grid = int(np.ceil(np.sqrt(max(n, 1))))
    rows, cols = stored.shape[-2] // grid, stored.shape[-1] // grid
    if stored.ndim != 2 or n < 1 or (rows * grid, cols * grid) != stored.shape:
        raise DicomError("unsupported_mosaic", f"mosaic of shape {stored.shape} for {n} tiles")
    row_dir, col_dir = _orientation(ds)
    spacing = pixel_spacing(ds)
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    if ipp is None:
        raise DicomError("inconsistent_geometry", "mosaic without ImagePositionPatient")
    origin = ipp + row_dir * spacing[1] * (stored.shape[1] - cols) / 2
    origin = origin + col_dir * spacing[0] * (stored.shape[0] - rows) / 2
    normal = np.cross(row_dir, col_dir)
    csa_normal = _floats(csa.get("SliceNormalVector"), 3)
    if csa_normal is not None and np.dot(csa_normal, normal) < 0:
        normal = -normal
    step = normal * _slice_thickness(ds)
    values = modality_values(ds, stored)
    frames = []
    for k in range(n):
        r, c = divmod(k, grid)
        tile = values[r * rows : (r + 1) * rows, c * cols : (c + 1) * cols]
        frames.append(
            Frame(
                values=tile,
                origin=origin + k * step,
                row_dir=row_dir,
                col_dir=col_dir,
                spacing=spacing,
                thickness=_slice_thickness(ds),
                key=(),
                order=(float(k),),
                spacing_known=_spacing_or_none(ds) is not None,
            )
        )
    return frames


# --------------------------------------------------------------------------- volumes


def _position_ids(frames: Sequence[Frame]) -> np.ndarray:
    """Cluster index of each frame's position along the first frame's normal."""
    normal = frames[0].normal
    d = np.asarray([float(np.dot(normal, f.origin)) for f in frames])
    order = np.argsort(d, kind="stable")
    ids = np.empty(len(frames), dtype=np.int64)
    cluster = 0
    for rank, i in enumerate(order):
        if rank and d[i] - d[order[rank - 1]] > POSITION_TOL_MM:
            cluster += 1
        ids[i] = cluster
    return ids


def _by_orientation(frames: Sequence[Frame]) -> list[list[Frame]]:
    groups: list[list[Frame]] = []
    for f in sorted(frames, key=lambda f: f.order):
        for g in groups:
            if _same_orientation((f.row_dir, f.col_dir), (g[0].row_dir, g[0].col_dir)):
                g.append(f)
                break
        else:
            groups.append([f])
    return groups


def _split_by_position(frames: list[Frame]) -> list[list[Frame]]:
    """Rules 2-5 of the module docstring for frames of one orientation."""
    ids = _position_ids(frames)
    if len(set(ids.tolist())) == len(frames):
        return [frames]
    by_key: dict[tuple[float, ...], list[int]] = defaultdict(list)
    for i, f in enumerate(frames):
        by_key[f.key].append(i)
    groups = [by_key[k] for k in sorted(by_key)]
    equal = len(groups) > 1 and len({len(g) for g in groups}) == 1
    if equal and all(len(set(ids[g].tolist())) == len(g) for g in groups):
        return [[frames[i] for i in g] for g in groups]
    seen: Counter[int] = Counter()
    volumes: dict[int, list[Frame]] = defaultdict(list)
    for i in sorted(range(len(frames)), key=lambda i: frames[i].order):
        volumes[seen[int(ids[i])]].append(frames[i])
        seen[int(ids[i])] += 1
    if len({len(v) for v in volumes.values()}) != 1:
        sizes = sorted(len(v) for v in volumes.values())
        raise DicomError(
            "inconsistent_geometry",
            f"repeated slice positions do not form whole volumes (sizes {sizes})",
        )
    return [volumes[n] for n in sorted(volumes)]


def _split_volumes(frames: Sequence[Frame]) -> list[list[Frame]]:
    """Split the frames of one unit into 3D volumes (module docstring rules 1-5)."""
    out = []
    for group in _by_orientation(frames):
        out.extend(_split_by_position(group))
    return out


def _spacing_flags(gaps: np.ndarray) -> list[str]:
    median = float(np.median(gaps))
    flags = []
    if np.any(np.abs(gaps - median) > SPACING_RTOL * median):
        flags.append("nonuniform_spacing")
    if np.any(gaps > MISSING_GAP_FACTOR * median):
        flags.append("missing_slices")
    return flags


def _sorted_by_position(frames: Sequence[Frame]) -> tuple[list[Frame], np.ndarray]:
    """Frames sorted along the normal of the first, and their ``(n,)`` positions in mm."""
    normal = frames[0].normal
    d = np.asarray([float(np.dot(normal, f.origin)) for f in frames])
    order = np.argsort(d, kind="stable")
    return [frames[i] for i in order], d[order]


def _tilted(step: np.ndarray, normal: np.ndarray) -> bool:
    cos = abs(float(np.dot(step, normal))) / float(np.linalg.norm(step))
    return bool(np.degrees(np.arccos(min(cos, 1.0))) > TILT_TOL_DEG)


def _integer_rescale(lut: Dataset) -> tuple[int, int] | None:
    """``(slope, intercept)`` when the modality transform is an integer linear rescale."""
    if "ModalityLUTSequence" in lut:
        return None
    try:
        slope = float(lut.get("RescaleSlope", 1) or 1)
        intercept = float(lut.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return None
    if slope.is_integer() and intercept.is_integer():
        return int(slope), int(intercept)
    return None


def _stack(frames: Sequence[Frame]) -> np.ndarray:
    """``(X, Y, Z)`` modality values: int16 when every frame is int16, else float32.

    Returns a transposed view of a C-ordered ``(Z, Y, X)`` stack, i.e. Fortran order, which
    is how NIfTI stores voxels (written without another copy).
    """
    dtype = np.int16 if all(f.values.dtype == np.int16 for f in frames) else np.float32
    zyx = np.empty((len(frames), *frames[0].values.shape), dtype=dtype)
    for k, f in enumerate(frames):
        zyx[k] = f.values
    return zyx.transpose(2, 1, 0)


def _assemble(frames: Sequence[Frame]) -> DecodedImage:
    """Stack the frames of one volume, sorted by position along the normal.

    Returns:
        ``(X, Y, Z)`` modality values, or ``(X, Y)`` with flag ``single_slice`` for one frame.

    Raises:
        DicomError: ``inconsistent_geometry`` for frames of different sizes or spacings, or
            two frames at one position.
    """
    if len({f.values.shape for f in frames}) != 1 or len({f.spacing for f in frames}) != 1:
        raise DicomError("inconsistent_geometry", "frames of different sizes or pixel spacings")
    frames, d = _sorted_by_position(frames)
    first, normal = frames[0], frames[0].normal
    flags = [] if all(f.spacing_known for f in frames) else ["spacing_unknown"]
    if len(frames) == 1:
        step = normal * first.thickness
        affine = _plane_affine(first.row_dir, first.col_dir, first.spacing, step, first.origin)
        return DecodedImage(first.values.T, affine, [*flags, "single_slice"])
    gaps = np.diff(d)
    if np.any(gaps < POSITION_TOL_MM):
        raise DicomError("inconsistent_geometry", "two slices share one position")
    step = (frames[-1].origin - first.origin) / (len(frames) - 1)
    flags += _spacing_flags(gaps) + (["gantry_tilt"] if _tilted(step, normal) else [])
    affine = _plane_affine(first.row_dir, first.col_dir, first.spacing, step, first.origin)
    return DecodedImage(_stack(frames), affine, flags)


# --------------------------------------------------------------------------- public API


def decode_projection(ds: Dataset) -> DecodedImage:
    """Decode a single-frame projection radiograph.

    Args:
        ds: full dataset.

    Returns:
        ``(X, Y)`` presentation codes (value = code * ``scale``, in [0, 1]) and affine.
    """
    stored = decode_array(ds)
    if stored.ndim != 2:
        raise DicomError("unsupported_geometry", f"expected one frame, got shape {stored.shape}")
    flags = [] if _spacing_or_none(ds) else ["spacing_unknown"]
    flags += _image_type_flags([ds])
    codes = presentation_codes(ds, stored).T  # Fortran order, as NIfTI stores it
    return DecodedImage(codes, image_affine(ds), flags, scale=PRESENTATION_SCALE)


def decode_series(datasets: Sequence[Dataset]) -> DecodedImage:
    """Assemble single-frame slices of one series into one volume.

    Slices are sorted by position along the normal, never by InstanceNumber; spacing comes
    from positions, never from SliceThickness. See the module docstring for the flags.

    Args:
        datasets: full datasets of one SeriesInstanceUID (any order), >= 2 slices.

    Returns:
        ``(X, Y, Z)`` modality values and the affine.

    Raises:
        DicomError: ``inconsistent_geometry`` (also when the slices form several volumes:
            use :func:`decode_datasets` for 4D series).
    """
    images = _decode_slices(datasets)
    if len(images) != 1:
        raise DicomError("inconsistent_geometry", f"series holds {len(images)} volumes")
    return images[0]


def _decode_slices(datasets: Sequence[Dataset]) -> list[DecodedImage]:
    return assemble_slices([_classic_frame(ds, index) for index, ds in enumerate(datasets)])


def assemble_slices(frames: Sequence[Frame]) -> list[DecodedImage]:
    """Assemble the frames of one slice series into 3D volumes (4D split by the rules above).

    Args:
        frames: :func:`slice_frame` results of one series, any order.

    Returns:
        Images in volume order, each with the union of the frames' ImageType flags.

    Raises:
        DicomError: ``inconsistent_geometry`` (sizes, spacings, shared positions, volumes)
            or ``malformed_header``.
    """
    with _malformed_header("cannot assemble"):
        images = [_assemble(v) for v in _split_volumes(frames)]
    flags = sorted({f for frame in frames for f in frame.flags})
    for image in images:
        image.flags.extend(flags)
    return images


def _decode_single(ds: Dataset) -> list[DecodedImage]:
    """One file: mosaic, enhanced multi-frame, radiograph or single slice."""
    check_image_object(ds)
    if _is_mosaic(ds) and _n_frames(ds) == 1:
        frames = _mosaic_frames(ds)
    elif ds.get("PerFrameFunctionalGroupsSequence"):
        frames = _enhanced_frames(ds)
    elif _n_frames(ds) > 1:
        raise DicomError(
            "unsupported_multiframe", "multi-frame object without per-frame plane geometry"
        )
    elif str(ds.get("Modality", "OT")) in PROJECTION_MODALITIES:
        return [decode_projection(ds)]
    else:
        return _decode_slices([ds]) if "ImagePositionPatient" in ds else [_flat_slice(ds)]
    images = [_assemble(v) for v in _split_volumes(frames)]
    for image in images:
        image.flags.extend(_image_type_flags([ds]))
    return images


def _flat_slice(ds: Dataset) -> DecodedImage:
    """A cross-sectional slice without position: modality values, default geometry."""
    stored = decode_array(ds)
    if stored.ndim != 2:
        raise DicomError("unsupported_geometry", f"expected one frame, got shape {stored.shape}")
    flags = ["single_slice", *_image_type_flags([ds])]
    if _spacing_or_none(ds) is None:
        flags.insert(0, "spacing_unknown")
    return DecodedImage(modality_values(ds, stored).T, image_affine(ds), flags)


def _n_frames(ds: Dataset) -> int:
    """NumberOfFrames (PS3.3 C.7.6.6), 1 when absent or malformed."""
    return max(1, int(_number(ds.get("NumberOfFrames"))))


def _acquisition_order(ds: Dataset) -> tuple[float, float]:
    return _number(ds.get("AcquisitionNumber")), _number(ds.get("InstanceNumber"))


def decode_datasets(datasets: Sequence[Dataset]) -> list[DecodedImage]:
    """Decode one unit into one image per 3D volume (or 2D image).

    A unit is a single-frame radiograph, a single-frame slice series, an enhanced
    multi-frame object, or a Siemens MR mosaic. Several files form one slice series only
    when every one is a single-frame, non-mosaic, cross-sectional image; otherwise each file
    is decoded on its own (e.g. one mosaic or one enhanced object per time point) and the
    results are concatenated in acquisition order (AcquisitionNumber, InstanceNumber,
    input order). 4D data are split into 3D volumes by the rule of the module docstring.

    Args:
        datasets: full datasets (with pixel data) of one unit, >= 1.

    Returns:
        Images in acquisition order; each ``(X, Y, Z)`` (or ``(X, Y)``) with its affine.

    Raises:
        DicomError: with a quarantine reason code (``colour_image``, ``non_image_object``,
            ``unsupported_multiframe``, ``unsupported_mosaic``, ``inconsistent_geometry``,
            ``decode_failed``, ``malformed_header``, ...) for anything it cannot decode.
    """
    if not datasets:
        raise DicomError("no_pixel_data", "empty unit")
    with _malformed_header("cannot decode"):
        return _decode_unit(datasets)


def _decode_unit(datasets: Sequence[Dataset]) -> list[DecodedImage]:
    for ds in datasets:
        check_image_object(ds)
    if len(datasets) == 1:
        return _decode_single(datasets[0])
    if all(_is_slice(ds) for ds in datasets):
        return _decode_slices(datasets)
    ranked = sorted(range(len(datasets)), key=lambda i: (*_acquisition_order(datasets[i]), i))
    return [image for i in ranked for image in _decode_single(datasets[i])]


def _is_slice(ds: Dataset) -> bool:
    """A single-frame cross-sectional image that can join a slice series."""
    return (
        _n_frames(ds) == 1
        and not _is_mosaic(ds)
        and not ds.get("PerFrameFunctionalGroupsSequence")
        and str(ds.get("Modality", "OT")) not in PROJECTION_MODALITIES
    )
