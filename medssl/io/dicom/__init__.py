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

Modules, one concept each, in the order data flows through them:

* :mod:`~medssl.io.dicom.read`: files to datasets, what is a greyscale image (colour is
  quarantined), stored pixel values;
* :mod:`~medssl.io.dicom.pixels`: stored values to modality values or presentation codes;
* :mod:`~medssl.io.dicom.geometry`: plane geometry and affines;
* :mod:`~medssl.io.dicom.frames`: classic slices and enhanced multi-frame objects as frames;
* :mod:`~medssl.io.dicom.mosaic`: Siemens mosaics (CSA header through NiBabel) as frames;
* :mod:`~medssl.io.dicom.assemble`: frames to volumes (4D split, sorting, QC flags);
* :mod:`~medssl.io.dicom.decode`: which of these a unit of files needs;
* :mod:`~medssl.io.dicom.errors`: :class:`DicomError` and its quarantine reason codes.

The names below are the public API; import them from :mod:`medssl.io.dicom`.
"""

from medssl.io.dicom.assemble import (
    MISSING_GAP_FACTOR,
    POSITION_TOL_MM,
    SPACING_RTOL,
    TILT_TOL_DEG,
    DecodedImage,
    assemble_slices,
)
from medssl.io.dicom.decode import (
    PROJECTION_MODALITIES,
    decode_datasets,
    decode_projection,
    decode_series,
)
from medssl.io.dicom.errors import DicomError
from medssl.io.dicom.frames import Frame, slice_frame
from medssl.io.dicom.geometry import ORIENTATION_ATOL, image_affine, pixel_spacing
from medssl.io.dicom.mosaic import siemens_csa_header
from medssl.io.dicom.pixels import (
    GATHER_CHUNK,
    PERCENTILE_STRIDE,
    PRESENTATION_CODES,
    PRESENTATION_SCALE,
    modality_values,
    presentation_codes,
    presentation_image,
)
from medssl.io.dicom.read import (
    GREYSCALE,
    NON_IMAGE_SOP_PREFIXES,
    check_image_object,
    decode_array,
    read_dataset,
)

__all__ = [
    "GATHER_CHUNK",
    "GREYSCALE",
    "MISSING_GAP_FACTOR",
    "NON_IMAGE_SOP_PREFIXES",
    "ORIENTATION_ATOL",
    "PERCENTILE_STRIDE",
    "POSITION_TOL_MM",
    "PRESENTATION_CODES",
    "PRESENTATION_SCALE",
    "PROJECTION_MODALITIES",
    "SPACING_RTOL",
    "TILT_TOL_DEG",
    "DecodedImage",
    "DicomError",
    "Frame",
    "assemble_slices",
    "check_image_object",
    "decode_array",
    "decode_datasets",
    "decode_projection",
    "decode_series",
    "image_affine",
    "modality_values",
    "pixel_spacing",
    "presentation_codes",
    "presentation_image",
    "read_dataset",
    "siemens_csa_header",
    "slice_frame",
]
