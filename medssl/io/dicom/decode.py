"""Units of DICOM files to images: which reader a unit needs, in which order results come.

Units of decoding (:func:`decode_datasets`):

* a single-frame radiograph (:func:`decode_projection`); a single cross-sectional slice
  (2D, flag ``single_slice``);
* a series of single-frame slices (PS3.3 C.7.6.2; :mod:`medssl.io.dicom.frames`);
* an enhanced multi-frame object (PS3.3 C.7.6.16: per-frame and shared functional groups);
* a Siemens MR mosaic (private CSA header, ImageType contains ``MOSAIC``): the tiles of
  one file are the slices of one volume (:mod:`medssl.io.dicom.mosaic`).

Every unit is cut into frames, which :mod:`medssl.io.dicom.assemble` splits into 3D
volumes; radiographs and slices without a position become one 2D image each.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset

from medssl.io.dicom.assemble import DecodedImage, assemble, assemble_slices, split_volumes
from medssl.io.dicom.errors import DicomError, malformed_header
from medssl.io.dicom.frames import classic_frame, enhanced_frames
from medssl.io.dicom.geometry import image_affine, spacing_or_none
from medssl.io.dicom.mosaic import is_mosaic, mosaic_frames
from medssl.io.dicom.pixels import PRESENTATION_SCALE, modality_values, presentation_codes
from medssl.io.dicom.read import (
    check_image_object,
    decode_array,
    image_type_flags,
    n_frames,
    number,
)

#: Modalities stored as 2D presentation images, one record per file.
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "XA", "IO", "PX", "OT", "SC", "US"})


def decode_datasets(datasets: Sequence[Dataset]) -> list[DecodedImage]:
    """Decode one unit into one image per 3D volume (or 2D image).

    A unit is a single-frame radiograph, a single-frame slice series, an enhanced
    multi-frame object, or a Siemens MR mosaic. Several files form one slice series only
    when every one is a single-frame, non-mosaic, cross-sectional image; otherwise each file
    is decoded on its own (e.g. one mosaic or one enhanced object per time point) and the
    results are concatenated in acquisition order (AcquisitionNumber, InstanceNumber,
    input order). 4D data are split into 3D volumes by the rule of
    :mod:`medssl.io.dicom.assemble`.

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
    with malformed_header("cannot decode"):
        return _decode_unit(datasets)


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
    flags = [] if spacing_or_none(ds) else ["spacing_unknown"]
    flags += image_type_flags([ds])
    codes = presentation_codes(ds, stored).T  # Fortran order, as NIfTI stores it
    return DecodedImage(
        codes, image_affine(ds), flags, scale=PRESENTATION_SCALE, screen_pixels=stored.T
    )


def decode_series(datasets: Sequence[Dataset]) -> DecodedImage:
    """Assemble single-frame slices of one series into one volume.

    Slices are sorted by position along the normal, never by InstanceNumber; spacing comes
    from positions, never from SliceThickness. See :mod:`medssl.io.dicom.assemble` for the
    flags.

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


def _decode_unit(datasets: Sequence[Dataset]) -> list[DecodedImage]:
    for ds in datasets:
        check_image_object(ds)
    if len(datasets) == 1:
        return _decode_single(datasets[0])
    if all(_is_slice(ds) for ds in datasets):
        return _decode_slices(datasets)
    ranked = sorted(range(len(datasets)), key=lambda i: (*_acquisition_order(datasets[i]), i))
    return [image for i in ranked for image in _decode_single(datasets[i])]


def _decode_single(ds: Dataset) -> list[DecodedImage]:
    """One file: mosaic, enhanced multi-frame, radiograph or single slice."""
    check_image_object(ds)
    if is_mosaic(ds) and n_frames(ds) == 1:
        frames = mosaic_frames(ds)
    elif ds.get("PerFrameFunctionalGroupsSequence"):
        frames = enhanced_frames(ds)
    elif n_frames(ds) > 1:
        raise DicomError(
            "unsupported_multiframe", "multi-frame object without per-frame plane geometry"
        )
    elif str(ds.get("Modality", "OT")) in PROJECTION_MODALITIES:
        return [decode_projection(ds)]
    else:
        return _decode_slices([ds]) if "ImagePositionPatient" in ds else [_flat_slice(ds)]
    images = [assemble(v) for v in split_volumes(frames)]
    for image in images:
        image.flags.extend(image_type_flags([ds]))
    return images


def _decode_slices(datasets: Sequence[Dataset]) -> list[DecodedImage]:
    return assemble_slices([classic_frame(ds, index) for index, ds in enumerate(datasets)])


def _flat_slice(ds: Dataset) -> DecodedImage:
    """A cross-sectional slice without position: modality values, default geometry."""
    stored = decode_array(ds)
    if stored.ndim != 2:
        raise DicomError("unsupported_geometry", f"expected one frame, got shape {stored.shape}")
    flags = ["single_slice", *image_type_flags([ds])]
    if spacing_or_none(ds) is None:
        flags.insert(0, "spacing_unknown")
    return DecodedImage(modality_values(ds, stored).T, image_affine(ds), flags)


def _is_slice(ds: Dataset) -> bool:
    """A single-frame cross-sectional image that can join a slice series."""
    return (
        n_frames(ds) == 1
        and not is_mosaic(ds)
        and not ds.get("PerFrameFunctionalGroupsSequence")
        and str(ds.get("Modality", "OT")) not in PROJECTION_MODALITIES
    )


def _acquisition_order(ds: Dataset) -> tuple[float, float]:
    return number(ds.get("AcquisitionNumber")), number(ds.get("InstanceNumber"))
