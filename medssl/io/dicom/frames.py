"""Frames: the 2D images of a unit, each with its plane geometry, volume key and order.

Every kind of unit is cut into :class:`Frame` objects before volumes are assembled
(:mod:`medssl.io.dicom.assemble`):

* a classic single-frame slice (PS3.3 C.7.6.2, :func:`slice_frame`): IPP, IOP and
  PixelSpacing of its file; volume key ``(EchoNumbers, TemporalPositionIdentifier,
  DiffusionBValue)``; acquisition order ``(AcquisitionNumber, InstanceNumber, file index)``;
* each frame of an enhanced multi-frame object (PS3.3 C.7.6.16, :func:`enhanced_frames`):
  plane position, orientation, pixel measures and pixel value transformation from its
  per-frame functional group, else from the shared one; volume key from its
  DimensionIndexValues without the spatial dimensions (PS3.3 C.7.6.17); frame order;
* each tile of a Siemens mosaic (:mod:`medssl.io.dicom.mosaic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from medssl.io.dicom.errors import DicomError, malformed_header
from medssl.io.dicom.geometry import Vector, orientation, slice_thickness, spacing_or_none
from medssl.io.dicom.pixels import modality_values
from medssl.io.dicom.read import decode_array, floats, image_type_flags, n_frames, number

_IN_STACK_POSITION = 0x00209057  # (0020,9057) In-Stack Position Number
_IMAGE_POSITION = 0x00200032  # (0020,0032) Image Position (Patient)


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
        key: volume key (rule 3 of :mod:`medssl.io.dicom.assemble`).
        order: acquisition order within the unit.
        spacing_known: PixelSpacing was present.
        flags: ImageType QC flags of the frame's file (``localizer``, ``derived``).
    """

    values: npt.NDArray[Any]
    origin: Vector
    row_dir: Vector
    col_dir: Vector
    spacing: tuple[float, float]
    thickness: float
    key: tuple[float, ...]
    order: tuple[float, ...]
    spacing_known: bool = True
    flags: tuple[str, ...] = ()

    @property
    def normal(self) -> Vector:
        """``(3,)`` slice normal ``row_dir x col_dir``."""
        return np.cross(self.row_dir, self.col_dir)


# --------------------------------------------------------------------------- classic slices


def slice_frame(ds: Dataset, index: int = 0) -> Frame:
    """Decode one single-frame cross-sectional slice into a frame of its series.

    Ingestion decodes slices one file at a time (in parallel) and assembles each series
    later with :func:`~medssl.io.dicom.assemble.assemble_slices`;
    :func:`~medssl.io.dicom.decode.decode_datasets` does both in one call.

    Args:
        ds: full dataset of a single-frame slice with ImagePositionPatient.
        index: position of the file in its unit (last tie-breaker of the acquisition order).

    Returns:
        The frame: modality values, plane geometry, volume key and acquisition order.

    Raises:
        DicomError: with a quarantine reason code, as
            :func:`~medssl.io.dicom.decode.decode_datasets`.
    """
    with malformed_header("cannot decode"):
        return classic_frame(ds, index)


def classic_frame(ds: Dataset, index: int) -> Frame:
    """:func:`slice_frame` without the ``malformed_header`` translation."""
    stored = decode_array(ds)
    if stored.ndim != 2:
        raise DicomError("inconsistent_geometry", "multi-frame object inside a slice series")
    ipp = floats(ds.get("ImagePositionPatient"), 3)
    if ipp is None:
        raise DicomError("inconsistent_geometry", "slice without ImagePositionPatient")
    row_dir, col_dir = orientation(ds)
    key = tuple(
        number(ds.get(k)) for k in ("EchoNumbers", "TemporalPositionIdentifier", "DiffusionBValue")
    )
    order = (number(ds.get("AcquisitionNumber")), number(ds.get("InstanceNumber")), index)
    spacing = spacing_or_none(ds)
    return Frame(
        values=modality_values(ds, stored),
        origin=ipp,
        row_dir=row_dir,
        col_dir=col_dir,
        spacing=spacing or (1.0, 1.0),
        thickness=slice_thickness(ds),
        key=key,
        order=order,
        spacing_known=spacing is not None,
        flags=tuple(image_type_flags([ds])),
    )


# --------------------------------------------------------------------------- enhanced objects


def enhanced_frames(ds: Dataset) -> list[Frame]:
    """Frames of an enhanced multi-frame object (PS3.3 C.7.6.16.2.3, .2.1, .2.9).

    Args:
        ds: full dataset with a PerFrameFunctionalGroupsSequence.

    Returns:
        One frame per frame of the object, in frame order.

    Raises:
        DicomError: ``unsupported_multiframe`` when a frame lacks its plane position or
            orientation (cine loops, projection multi-frame objects).
    """
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", None) or [])
    shared_seq = ds.get("SharedFunctionalGroupsSequence", None)
    shared = shared_seq[0] if shared_seq else None
    n = n_frames(ds)
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
    stored: npt.NDArray[Any],
    spatial: set[int],
    index: int,
) -> Frame:
    position = _group_item(item, shared, "PlanePositionSequence")
    plane = _group_item(item, shared, "PlaneOrientationSequence")
    ipp = floats(position.get("ImagePositionPatient"), 3) if position else None
    iop = floats(plane.get("ImageOrientationPatient"), 6) if plane else None
    if ipp is None or iop is None:
        raise DicomError(
            "unsupported_multiframe", "multi-frame object without plane position/orientation"
        )
    measures = _group_item(item, shared, "PixelMeasuresSequence") or ds
    spacing = spacing_or_none(measures)
    lut = _group_item(item, shared, "PixelValueTransformationSequence") or ds
    content = _group_item(item, None, "FrameContentSequence")
    return Frame(
        values=modality_values(lut, stored),
        origin=ipp,
        row_dir=iop[:3],
        col_dir=iop[3:],
        spacing=spacing or (1.0, 1.0),
        thickness=slice_thickness(measures),
        key=_enhanced_key(content, spatial),
        order=(float(index),),
        spacing_known=spacing is not None,
    )


def _group_item(frame: Dataset, shared: Dataset | None, sequence: str) -> Dataset | None:
    """Functional group macro item: per-frame first, then shared (PS3.3 C.7.6.16)."""
    for holder in (frame, shared):
        if holder is not None and holder.get(sequence):
            item: Dataset = holder.get(sequence)[0]
            return item
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
    return (number(content.get("TemporalPositionIndex")),)
