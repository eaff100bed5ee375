"""Plane geometry of DICOM images and their NIfTI (RAS) affines.

DICOM places each image plane in the patient coordinate system (LPS+, PS3.3 C.7.6.2.1.1)
by ImagePositionPatient (IPP, the centre of the first transmitted pixel),
ImageOrientationPatient (IOP: the row direction, then the column direction) and
PixelSpacing (row spacing, then column spacing, PS3.3 10.7.1.3).

Affines map ``(i, j, k, 1)`` of an ``(X, Y, Z)`` array to RAS+ millimetres (NIfTI
convention) by negating x and y. X runs along a row (increasing column index), Y down the
columns (increasing row index), Z along the slice normal ``row_dir x col_dir``. The third
column of a volume's affine is the mean step between slice origins
(:mod:`medssl.io.dicom.assemble`), so a gantry tilt gives a sheared (exact) affine; nothing
is resampled.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from medssl.io.dicom.read import floats

#: Direction cosines that differ by less than this describe one orientation.
ORIENTATION_ATOL = 1e-4

Vector = npt.NDArray[np.float64]


def orientation(ds: Dataset) -> tuple[Vector, Vector]:
    """``(row_dir, col_dir)`` from ImageOrientationPatient; axial when absent or malformed."""
    v = floats(ds.get("ImageOrientationPatient"), 6)
    if v is None:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    return v[:3], v[3:]


def same_orientation(a: tuple[Vector, Vector], b: tuple[Vector, Vector]) -> bool:
    """Two ``(row_dir, col_dir)`` pairs agree within :data:`ORIENTATION_ATOL`."""
    return bool(
        np.allclose(a[0], b[0], atol=ORIENTATION_ATOL)
        and np.allclose(a[1], b[1], atol=ORIENTATION_ATOL)
    )


def spacing_or_none(ds: Dataset) -> tuple[float, float] | None:
    """:func:`pixel_spacing`, or None when neither attribute holds a valid value."""
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        value = floats(ds.get(name), 2)
        if value is not None and np.all(value > 0):
            return float(value[0]), float(value[1])
    return None


def pixel_spacing(ds: Dataset) -> tuple[float, float]:
    """In-plane spacing ``(row spacing, column spacing)`` in mm.

    PixelSpacing (PS3.3 10.7.1.3) is preferred, then ImagerPixelSpacing (projection
    radiography, detector plane), else 1 mm (zero or malformed values count as absent).
    """
    return spacing_or_none(ds) or (1.0, 1.0)


def slice_thickness(ds: Dataset) -> float:
    """Slice step for a lone slice: SpacingBetweenSlices, then SliceThickness, else 1 mm.

    Only used where positions cannot give the spacing (one slice, mosaic tiles).
    """
    for name in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(name) or 0)
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return 1.0


def plane_affine(
    row_dir: Vector,
    col_dir: Vector,
    spacing: tuple[float, float],
    step: Vector,
    origin: Vector,
) -> npt.NDArray[np.float64]:
    """Voxel ``(X, Y, Z)`` to RAS affine from DICOM plane geometry (PS3.3 C.7.6.2.1.1)."""
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[1]  # X: along a row, i.e. column index, column spacing
    lps[:3, 1] = col_dir * spacing[0]  # Y: down a column, i.e. row index, row spacing
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS to RAS


def image_affine(ds: Dataset) -> npt.NDArray[np.float64]:
    """Affine of a single image in ``(X, Y)`` order (third axis: 1 mm along the normal).

    Args:
        ds: dataset.

    Returns:
        ``(4, 4)`` voxel-to-RAS matrix.
    """
    row_dir, col_dir = orientation(ds)
    ipp = floats(ds.get("ImagePositionPatient"), 3)
    origin = ipp if ipp is not None else np.zeros(3)
    return plane_affine(row_dir, col_dir, pixel_spacing(ds), np.cross(row_dir, col_dir), origin)
