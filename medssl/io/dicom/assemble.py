"""Frames to volumes: the 4D split, slice sorting, spacing QC and stacking.

Slices are sorted by ImagePositionPatient projected on the normal of
ImageOrientationPatient (PS3.3 C.7.6.2.1.1), never by InstanceNumber; the slice step comes
from positions, never from SliceThickness.

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

QC flags (strings in :attr:`DecodedImage.flags`): ``nonuniform_spacing`` (slice gaps differ
from their median by more than 1 %), ``missing_slices`` (a gap over 1.5x the median),
``gantry_tilt`` (slice step off the normal by more than 0.1 degree), ``localizer``
(ImageType contains LOCALIZER), ``derived`` (ImageType[0] is DERIVED), ``single_slice``,
``spacing_unknown``. dcm2niix marks comparable outputs ``_Eq`` and ``_Tilt``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from medssl.io.dicom.errors import DicomError, malformed_header
from medssl.io.dicom.frames import Frame
from medssl.io.dicom.geometry import Vector, plane_affine, same_orientation

#: Relative tolerance on slice spacing before a series is flagged as non-uniform.
SPACING_RTOL = 0.01
#: A gap larger than this multiple of the median gap flags ``missing_slices``.
MISSING_GAP_FACTOR = 1.5
#: Angle (degrees) between the slice step and the normal above which ``gantry_tilt`` is set.
TILT_TOL_DEG = 0.1
#: Frames closer than this along the normal (mm) share one position.
POSITION_TOL_MM = 0.01


@dataclass
class DecodedImage:
    """An image or volume ready to be written as NIfTI.

    Attributes:
        array: ``(X, Y)`` or ``(X, Y, Z)``: modality values (int16, or float32 when not
            integral) for cross-sectional images; uint16 presentation codes for radiographs.
        affine: ``(4, 4)`` voxel-to-RAS matrix in mm.
        flags: QC flags raised while decoding (e.g. ``"nonuniform_spacing"``).
        scale: value of one unit of ``array`` (NIfTI ``scl_slope``); None means 1.
        screen_pixels: ``(X, Y)`` stored values of a radiograph, before the VOI window and
            the robust range of its presentation codes, for the burned-in text screen
            (:mod:`medssl.burned_in`): text is drawn at the stored extreme, and the
            presentation clips the brightest and darkest anatomy to that same code. None:
            the screen reads ``array``. Never written.
    """

    array: npt.NDArray[Any]
    affine: npt.NDArray[np.float64]
    flags: list[str] = field(default_factory=list)
    scale: float | None = None
    screen_pixels: npt.NDArray[Any] | None = None


def assemble_slices(frames: Sequence[Frame]) -> list[DecodedImage]:
    """Assemble the frames of one slice series into 3D volumes (4D split by the rules above).

    Args:
        frames: :func:`~medssl.io.dicom.frames.slice_frame` results of one series, any order.

    Returns:
        Images in volume order, each with the union of the frames' ImageType flags.

    Raises:
        DicomError: ``inconsistent_geometry`` (sizes, spacings, shared positions, volumes)
            or ``malformed_header``.
    """
    with malformed_header("cannot assemble"):
        images = [assemble(v) for v in split_volumes(frames)]
    flags = sorted({f for frame in frames for f in frame.flags})
    for image in images:
        image.flags.extend(flags)
    return images


def split_volumes(frames: Sequence[Frame]) -> list[list[Frame]]:
    """Split the frames of one unit into 3D volumes (module docstring rules 1-5)."""
    out = []
    for group in _by_orientation(frames):
        out.extend(_split_by_position(group))
    return out


def assemble(frames: Sequence[Frame]) -> DecodedImage:
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
        affine = plane_affine(first.row_dir, first.col_dir, first.spacing, step, first.origin)
        return DecodedImage(first.values.T, affine, [*flags, "single_slice"])
    gaps = np.diff(d)
    if np.any(gaps < POSITION_TOL_MM):
        raise DicomError("inconsistent_geometry", "two slices share one position")
    step = (frames[-1].origin - first.origin) / (len(frames) - 1)
    flags += _spacing_flags(gaps) + (["gantry_tilt"] if _tilted(step, normal) else [])
    affine = plane_affine(first.row_dir, first.col_dir, first.spacing, step, first.origin)
    return DecodedImage(_stack(frames), affine, flags)


# --------------------------------------------------------------------------- the 4D split


def _by_orientation(frames: Sequence[Frame]) -> list[list[Frame]]:
    groups: list[list[Frame]] = []
    for f in sorted(frames, key=lambda f: f.order):
        for g in groups:
            if same_orientation((f.row_dir, f.col_dir), (g[0].row_dir, g[0].col_dir)):
                g.append(f)
                break
        else:
            groups.append([f])
    return groups


def _position_ids(frames: Sequence[Frame]) -> npt.NDArray[np.int64]:
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


# --------------------------------------------------------------------------- one volume


def _sorted_by_position(frames: Sequence[Frame]) -> tuple[list[Frame], npt.NDArray[np.float64]]:
    """Frames sorted along the normal of the first, and their ``(n,)`` positions in mm."""
    normal = frames[0].normal
    d = np.asarray([float(np.dot(normal, f.origin)) for f in frames])
    order = np.argsort(d, kind="stable")
    return [frames[i] for i in order], d[order]


def _spacing_flags(gaps: npt.NDArray[np.float64]) -> list[str]:
    median = float(np.median(gaps))
    flags = []
    if np.any(np.abs(gaps - median) > SPACING_RTOL * median):
        flags.append("nonuniform_spacing")
    if np.any(gaps > MISSING_GAP_FACTOR * median):
        flags.append("missing_slices")
    return flags


def _tilted(step: Vector, normal: Vector) -> bool:
    cos = abs(float(np.dot(step, normal))) / float(np.linalg.norm(step))
    return bool(np.degrees(np.arccos(min(cos, 1.0))) > TILT_TOL_DEG)


def _stack(frames: Sequence[Frame]) -> npt.NDArray[Any]:
    """``(X, Y, Z)`` modality values: int16 when every frame is int16, else float32.

    Returns a transposed view of a C-ordered ``(Z, Y, X)`` stack, i.e. Fortran order, which
    is how NIfTI stores voxels (written without another copy).
    """
    dtype = np.int16 if all(f.values.dtype == np.int16 for f in frames) else np.float32
    zyx = np.empty((len(frames), *frames[0].values.shape), dtype=dtype)
    for k, f in enumerate(frames):
        zyx[k] = f.values
    return zyx.transpose(2, 1, 0)
