"""Reading DICOM files: datasets, which objects are images, stored pixel values.

* :func:`read_dataset` reads a PS3.10 file, also without its preamble (PS3.10 7.1
  violations are common in old exports), and tells a truncated file from a broken one.
* :func:`check_image_object` rejects what is no greyscale image: structured reports, RT
  objects, presentation states, segmentations, encapsulated documents, waveforms (storage
  SOP classes, PS3.4 B.5), and colour.
* :func:`decode_array` decodes stored values with pydicom and its pylibjpeg plugins.

Colour: only MONOCHROME1/MONOCHROME2 single-sample images are decoded. RGB, YBR_* and
PALETTE COLOR objects (secondary captures, ultrasound Doppler, photographs; PS3.3
C.7.6.3.1.2 and C.7.6.3.1.5) are quarantined as ``colour_image``: a grey level derived from
colour (or from a pseudo-colour LUT) is no measurement, and such objects are mostly screen
captures with burned-in annotations.

The helpers at the end read header values tolerantly (absent or malformed values get a
default) for the other modules of :mod:`medssl.io.dicom`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from medssl.io.dicom.errors import DicomError

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
    ds: Dataset | None
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
    if number(ds.get("SamplesPerPixel", 1)) not in (0.0, 1.0) or photometric not in GREYSCALE:
        raise DicomError("colour_image", f"colour image ({photometric}) not supported")
    pixel_keywords = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    if not header_only and not any(t in ds for t in pixel_keywords):
        raise DicomError("no_pixel_data", "pixel data element absent")


def decode_array(ds: Dataset) -> npt.NDArray[Any]:
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


# --------------------------------------------------------------------------- header values


def number(value: Any) -> float:
    """First numeric value of an element value (multi-valued or not), or 0.0."""
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def floats(value: Any, n: int) -> npt.NDArray[np.float64] | None:
    """``n`` floats from a multi-valued element, or None when absent or malformed."""
    try:
        out = np.asarray([float(x) for x in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.all(np.isfinite(out)) else None


def n_frames(ds: Dataset) -> int:
    """NumberOfFrames (PS3.3 C.7.6.6), 1 when absent or malformed."""
    return max(1, int(number(ds.get("NumberOfFrames"))))


def image_type(ds: Dataset) -> list[str]:
    """ImageType values (PS3.3 C.7.6.1.1.2), stripped and upper-case; ``[]`` when absent."""
    return [str(v).strip().upper() for v in ds.get("ImageType", None) or []]


def image_type_flags(datasets: Sequence[Dataset]) -> list[str]:
    """QC flags ``localizer`` / ``derived`` from ImageType (PS3.3 C.7.6.1.1.2)."""
    flags = set()
    for ds in datasets:
        values = image_type(ds)
        if "LOCALIZER" in values:
            flags.add("localizer")
        if values and values[0] == "DERIVED":
            flags.add("derived")
    return sorted(flags)
