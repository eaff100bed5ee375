"""NIfTI-1 <-> array + affine, through nibabel.

Arrays follow the :mod:`medssl.io.dicom` convention: ``(X, Y)`` or ``(X, Y, Z)``, affine
voxel-to-RAS in mm (NIfTI-1 sform, code 1 "scanner").
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


class NiftiError(Exception):
    """A NIfTI file that cannot become an image; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write an image; gzip output is deterministic (nibabel writes mtime 0).

    Args:
        path: ``.nii`` or ``.nii.gz`` destination; parents are created.
        array: ``(X, Y)`` or ``(X, Y, Z)``.
        affine: ``(4, 4)`` voxel-to-RAS.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.set_sform(img.affine, code=1)
    img.set_qform(img.affine, code=1)
    nib.save(img, str(path))


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and check it is usable.

    Args:
        path: ``.nii`` or ``.nii.gz``.

    Returns:
        ``(array, affine)``; the array keeps its stored dtype (scaled if scl_slope is set).

    Raises:
        NiftiError: ``unreadable``, ``empty_image`` or ``non_finite`` (NaN or inf voxels).
    """
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise NiftiError("unreadable", f"not a NIfTI image ({type(img).__name__})")
        array = np.asanyarray(img.dataobj)
    except NiftiError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on corrupt input
        raise NiftiError("unreadable", f"NIfTI read error: {type(exc).__name__}") from exc
    if array.size == 0 or array.ndim < 2:
        raise NiftiError("empty_image", f"image of shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise NiftiError("non_finite", "NaN or infinite voxel values")
    return array, np.asarray(img.affine)
