"""NIfTI-1 <-> array + affine, through nibabel; canonical orientation and resampling.

Arrays follow the :mod:`medssl.io.dicom` convention: ``(X, Y)`` or ``(X, Y, Z)``, affine
voxel-to-RAS in mm (NIfTI-1 sform and qform, code 1 "scanner"). Written headers carry no
description, intent name or auxiliary file (nothing identifying; DICOM PS3.15 Annex E
applies to every output).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import nibabel as nib
import numpy as np
from isal import igzip
from nibabel.orientations import aff2axcodes, apply_orientation, inv_ornt_aff, io_orientation

#: ISA-L igzip level for ``.nii.gz`` (0-3; 1 is its fastest with real compression).
GZIP_LEVEL = 1

#: Byte offset of the voxels in a single-file NIfTI-1 image without extensions.
VOX_OFFSET = 352

#: A 4D NIfTI with more volumes than this is quarantined rather than split.
MAX_VOLUMES = 512


class NiftiError(Exception):
    """A NIfTI file that cannot become an image; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def write_nifti(
    path: Path, array: np.ndarray, affine: np.ndarray, *, scale: float | None = None
) -> None:
    """Write an image atomically; ``.nii.gz`` is compressed with ISA-L and deterministic.

    The header is nibabel's (sform and qform code 1); the voxels are written in one piece
    in NIfTI's Fortran order (NIfTI-1 ``vox_offset`` 352, no extensions): a ``.nii`` has
    the same bytes as ``nibabel.save``. ``.nii.gz`` is gzip (RFC 1952) from ISA-L's igzip
    (``isal``, :data:`GZIP_LEVEL`) instead of zlib, with no file name and mtime 0 in
    the gzip header, so equal images give equal bytes. The image is
    written to a temporary sibling and renamed, so a reader (or a second writer of the same
    content) never sees a partial file.

    Args:
        path: ``.nii`` or ``.nii.gz`` destination; parents are created.
        array: ``(X, Y)`` or ``(X, Y, Z)``; Fortran-contiguous arrays (e.g. the transpose
            of pydicom's ``(rows, cols)``) are not reordered first.
        affine: ``(4, 4)`` voxel-to-RAS.
        scale: NIfTI ``scl_slope`` (readers see ``array * scale``); None writes slope 1.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asfortranarray(array)
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.set_sform(img.affine, code=1)
    img.set_qform(img.affine, code=1)
    img.update_header()
    header = img.header
    header.set_data_offset(VOX_OFFSET)
    header.set_slope_inter(1.0 if scale is None else float(scale), 0.0)
    gz = path.name.endswith(".gz")
    tmp = path.with_name(f".{path.name}.{_token()}{'.nii.gz' if gz else '.nii'}")
    try:
        with open(tmp, "wb") as raw:
            if gz:
                with igzip.IGzipFile("", "wb", GZIP_LEVEL, raw, mtime=0) as zipped:
                    _write_image(zipped, header.binaryblock, data)
            else:
                _write_image(raw, header.binaryblock, data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_image(fh: BinaryIO | gzip.GzipFile, header: bytes, data: np.ndarray) -> None:
    """Header, padding to :data:`VOX_OFFSET` (no extensions), then the Fortran-ordered voxels."""
    fh.write(header)
    fh.write(b"\0" * (VOX_OFFSET - len(header)))
    fh.write(data.T.data)  # the buffer itself: no copy, one write


def _token() -> str:
    import os

    return f"{os.getpid()}-{os.urandom(4).hex()}"


def read_nifti(path: Path, *, max_voxels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read an image and check it is usable.

    The declared shape is checked against ``max_voxels`` before any voxel is read, so a
    header that declares a huge image (or a gzip bomb) costs nothing.

    Args:
        path: ``.nii`` or ``.nii.gz``.
        max_voxels: refuse images with more voxels than this (None: no limit).

    Returns:
        ``(array, affine)``; the array keeps its stored dtype (scaled if scl_slope is set)
        and has 2 to 4 dimensions (trailing singleton dimensions removed).

    Raises:
        NiftiError: ``unreadable``, ``empty_image``, ``resource_limit``,
            ``unsupported_geometry`` (more than 4 dimensions) or ``non_finite``.
    """
    try:
        img = nib.load(str(path), mmap=False)
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise NiftiError("unreadable", f"not a NIfTI image ({type(img).__name__})")
        shape = tuple(int(s) for s in img.shape)
        _check_shape(shape, max_voxels)
        array = np.asanyarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
    except NiftiError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on corrupt input
        raise NiftiError("unreadable", f"NIfTI read error: {type(exc).__name__}") from exc
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim > 4:
        raise NiftiError("unsupported_geometry", f"{array.ndim}D NIfTI (at most 4D)")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise NiftiError("non_finite", "NaN or infinite voxel values")
    if not np.all(np.isfinite(affine)):
        raise NiftiError("unsupported_geometry", "non-finite affine")
    return np.asarray(array), affine


def _check_shape(shape: tuple[int, ...], max_voxels: int | None) -> None:
    if len(shape) < 2 or any(s < 1 for s in shape) or int(np.prod(shape)) <= 1:
        raise NiftiError("empty_image", f"image of shape {shape}")
    n = int(np.prod(np.asarray(shape, dtype=np.float64)))
    if max_voxels is not None and n > max_voxels:
        raise NiftiError("resource_limit", f"declared {n} voxels > limit {max_voxels}")


def split_4d(array: np.ndarray) -> list[np.ndarray]:
    """Volumes of a 4D array along its last axis (NIfTI's time / volume dimension).

    Args:
        array: ``(X, Y)``, ``(X, Y, Z)`` or ``(X, Y, Z, T)``.

    Returns:
        ``[array]`` for 2D/3D, else the ``T`` volumes ``(X, Y, Z)``.

    Raises:
        NiftiError: ``resource_limit`` with more than :data:`MAX_VOLUMES` volumes.
    """
    if array.ndim < 4:
        return [array]
    if array.shape[3] > MAX_VOLUMES:
        raise NiftiError("resource_limit", f"{array.shape[3]} volumes > limit {MAX_VOLUMES}")
    return [np.ascontiguousarray(array[..., t]) for t in range(array.shape[3])]


def axcodes(affine: np.ndarray) -> str:
    """Orientation codes of the voxel axes, e.g. ``"RAS"`` or ``"LPS"`` (nibabel)."""
    return "".join(str(c) for c in aff2axcodes(np.asarray(affine)))


def to_canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder and flip voxel axes so that they point closest to R, A, S (RAS+).

    Only 3D volumes are reoriented (axis permutations and flips, no resampling: the world
    position of every voxel is unchanged, as with ``nibabel.as_closest_canonical``). 2D
    images keep the DICOM display orientation (rows down, columns across), whose world
    axes are not defined for projection radiographs (PS3.3 C.7.6.1.1.1).

    Args:
        array: ``(X, Y)`` or ``(X, Y, Z)``.
        affine: ``(4, 4)`` voxel-to-RAS.

    Returns:
        ``(array, affine)``; a reoriented array is a view (flipped or permuted axes).
    """
    if array.ndim != 3:
        return array, affine
    ornt = io_orientation(affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return array, affine
    out = apply_orientation(array, ornt)
    new_affine = affine @ inv_ornt_aff(ornt, array.shape)
    return out, new_affine  # a view: write_nifti makes the one Fortran-ordered copy


def resample(
    array: np.ndarray,
    affine: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    size: Sequence[int] | None = None,
    integer_labels: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample to a target voxel spacing or array size with MONAI transforms.

    Uses :class:`monai.transforms.Spacing` (target spacing, mm) or
    :class:`monai.transforms.Resize` (target size, voxels), both of which update the
    affine so that the image keeps its place in world space.

    Args:
        array: ``(X, Y)`` or ``(X, Y, Z)``.
        affine: ``(4, 4)`` voxel-to-RAS.
        spacing: target spacing, one value per axis of ``array``.
        size: target shape, one value per axis of ``array``.
        integer_labels: nearest-neighbour instead of (bi/tri)linear interpolation.

    Returns:
        ``(array, affine)``; integral inputs (HU) are rounded back to their dtype, others
        are float32.

    Raises:
        ValueError: both or neither of ``spacing`` and ``size``, or a length that does not
            match ``array.ndim``.
    """
    if (spacing is None) == (size is None):
        raise ValueError("give exactly one of spacing and size")
    target = spacing if spacing is not None else size
    assert target is not None
    if len(target) != array.ndim:
        raise ValueError(
            f"target {list(target)} has {len(target)} values for a {array.ndim}D image"
        )
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Resize, Spacing

    mode = "nearest" if integer_labels else ("bilinear" if spacing is not None else "area")
    data = torch.as_tensor(np.asarray(array, dtype=np.float32))[None]
    tensor = MetaTensor(data, affine=torch.as_tensor(affine, dtype=torch.float64))
    if spacing is not None:
        out: Any = Spacing(pixdim=tuple(float(s) for s in spacing), mode=mode)(tensor)
    else:
        out = Resize(spatial_size=tuple(int(s) for s in size or ()), mode=mode)(tensor)
    values = np.asarray(out.detach().cpu().numpy()[0])
    new_affine = np.asarray(out.affine, dtype=np.float64)
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        values = np.clip(values.round(), info.min, info.max).astype(array.dtype)
    return np.ascontiguousarray(values), new_affine
