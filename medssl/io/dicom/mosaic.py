"""Siemens MR mosaics: the tiles of one file are the slices of one volume.

Siemens stores each volume of an EPI or diffusion series as one single-frame image whose
ImageType contains ``MOSAIC``, its tiles laid out row by row on a square grid. What the
public header leaves out is in the private CSA *image* header (0029,xx10, private creator
"SIEMENS CSA HEADER", PS3.5 7.8): NumberOfImagesInMosaic and SliceNormalVector. It is read
with NiBabel's :mod:`nibabel.nicom.csareader`; the geometry follows NiBabel's
"dicom_mosaic" notes and dcm2niix.

Only CSA2 headers (starting ``SV10``) are used, as in dcm2niix; a malformed header counts as
absent. Without one, the tile count comes from the SIEMENS MR HEADER (0019,xx0A
NumberOfImagesInMosaic or 0019,xx29 MosaicRefAcqTimes) and the normal is
``row_dir x col_dir``.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from medssl.io.dicom.errors import DicomError
from medssl.io.dicom.frames import Frame
from medssl.io.dicom.geometry import orientation, pixel_spacing, slice_thickness, spacing_or_none
from medssl.io.dicom.pixels import modality_values
from medssl.io.dicom.read import decode_array, floats, image_type

with warnings.catch_warnings():  # importing nibabel.nicom warns that it is experimental
    warnings.simplefilter("ignore", UserWarning)
    from nibabel.nicom import csareader

# nibabel.nicom.csareader is not annotated: the signatures relied on here.
_read_csa: Callable[[bytes], dict[str, Any]] = csareader.read
_n_mosaic: Callable[[dict[str, Any]], Any] = csareader.get_n_mosaic
_slice_normal: Callable[[dict[str, Any]], npt.NDArray[Any] | None] = csareader.get_slice_normal

#: A CSA item as nibabel decodes it: int or float for numeric VRs, else text.
CsaItem = str | int | float

#: Errors of :func:`nibabel.nicom.csareader.read` on a malformed header.
_CSA_ERRORS = (csareader.CSAError, struct.error, AssertionError, ValueError, TypeError)


def is_mosaic(ds: Dataset) -> bool:
    """ImageType contains ``MOSAIC`` (Siemens; PS3.3 C.7.6.1.1.2 allows private values)."""
    return "MOSAIC" in image_type(ds)


def siemens_csa_header(ds: Dataset) -> dict[str, list[CsaItem]]:
    """The Siemens CSA *image* header (0029,xx10) as ``name -> items``.

    Args:
        ds: dataset (header is enough).

    Returns:
        Each tag's non-empty items as nibabel decodes them (int or float by VR, else str);
        ``{}`` when absent (e.g. removed by de-identification), not in CSA2 format, or
        malformed.
    """
    csa = _csa_image_header(ds)
    if csa is None:
        return {}
    out: dict[str, list[CsaItem]] = {}
    for name, tag in csa["tags"].items():
        items = [v.decode("latin-1") if isinstance(v, bytes) else v for v in tag["items"]]
        out[name] = [v for v in items if v != ""]
    return out


def _csa_image_header(ds: Dataset) -> dict[str, Any] | None:
    """nibabel's parse of the CSA2 image header, or None (absent, CSA1 or malformed).

    The element is found with pydicom's private block lookup (any creator slot);
    ``csareader.get_csa_header`` would also require a creator at (0029,0010).
    """
    try:
        raw = ds.private_block(0x0029, "SIEMENS CSA HEADER")[0x10].value
    except (KeyError, ValueError):
        return None
    if not isinstance(raw, (bytes, bytearray)) or raw[:4] != b"SV10":
        return None
    try:
        return _read_csa(bytes(raw))
    except _CSA_ERRORS:
        return None


def _mosaic_count(ds: Dataset, csa: dict[str, Any] | None) -> int:
    """NumberOfImagesInMosaic from the CSA header, (0019,xx0A) or MosaicRefAcqTimes."""
    n = _n_mosaic(csa) if csa is not None else None
    if n is not None:
        return int(float(n))
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


def _csa_normal(csa: dict[str, Any] | None) -> npt.NDArray[Any] | None:
    """SliceNormalVector of the CSA header: an array, or None when absent or malformed."""
    if csa is None:
        return None
    try:
        return _slice_normal(csa)
    except ValueError:  # not three items
        return None


def mosaic_frames(ds: Dataset) -> list[Frame]:
    """Tiles of a Siemens mosaic as frames.

    The tiles fill a ``ceil(sqrt(n)) x ceil(sqrt(n))`` grid row by row, slice k at
    ``IPP' + k * spacing * normal`` where ``IPP'`` corrects the mosaic's IPP (which refers
    to the whole mosaic) by half the size difference between mosaic and tile, and the
    normal's sign comes from the CSA SliceNormalVector (NiBabel "dicom_mosaic" notes).

    Args:
        ds: full dataset of a single-frame image whose ImageType contains ``MOSAIC``.

    Returns:
        One frame per tile, in tile order, all with the empty volume key.

    Raises:
        DicomError: ``unsupported_mosaic`` (no tile count, or a shape that is no grid of
            that many tiles), ``inconsistent_geometry`` (no ImagePositionPatient).
    """
    csa = _csa_image_header(ds)
    n = _mosaic_count(ds, csa)
    stored = decode_array(ds)
    grid = int(np.ceil(np.sqrt(max(n, 1))))
    rows, cols = stored.shape[-2] // grid, stored.shape[-1] // grid
    if stored.ndim != 2 or n < 1 or (rows * grid, cols * grid) != stored.shape:
        raise DicomError("unsupported_mosaic", f"mosaic of shape {stored.shape} for {n} tiles")
    row_dir, col_dir = orientation(ds)
    spacing = pixel_spacing(ds)
    ipp = floats(ds.get("ImagePositionPatient"), 3)
    if ipp is None:
        raise DicomError("inconsistent_geometry", "mosaic without ImagePositionPatient")
    origin = ipp + row_dir * spacing[1] * (stored.shape[1] - cols) / 2
    origin = origin + col_dir * spacing[0] * (stored.shape[0] - rows) / 2
    normal = np.cross(row_dir, col_dir)
    csa_normal = floats(_csa_normal(csa), 3)
    if csa_normal is not None and np.dot(csa_normal, normal) < 0:
        normal = -normal
    step = normal * slice_thickness(ds)
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
                thickness=slice_thickness(ds),
                key=(),
                order=(float(k),),
                spacing_known=spacing_or_none(ds) is not None,
            )
        )
    return frames
