"""The codes ingestion writes: quarantine reasons, skip rules and QC flags.

Every file ingestion sees ends in exactly one place: an ingested image, the quarantine
table with a reason code (:data:`REASONS`, column ``reason`` of ``quarantine.csv``) or the
skip list by rule (:data:`SKIP_RULES`, column ``rule`` of ``skipped.csv``). Ingested images
carry QC flags (:data:`QC_FLAGS`, column ``qc_flags`` of the manifest).
:func:`decode_failure` and :func:`write_failure` turn an exception into a reason code and a
message that quotes no header value and no path.
"""

from __future__ import annotations

from medssl.io.dicom import DicomError
from medssl.io.nifti import NiftiError
from medssl.io.raster import RasterError

#: Rules of the skip list (``skipped.csv``, column ``rule``).
SKIP_RULES: dict[str, str] = {
    "dicomdir_or_system_file": "DICOMDIR (PS3.10 media directory, not an image)",
    "system_file": "LOCKFILE, VERSION, .DS_Store, Thumbs.db",
    "hidden_file": "a path part starts with '.'",
    "non_image_extension": "txt, csv, json, md, xml, html, pdf, ini, log",
    "symlinked_directory": "symbolic link to a directory (never followed: no loops)",
    "not_regular_file": "FIFO, socket or device (never opened)",
    "duplicate_instance": "byte-identical file or repeated SOPInstanceUID (first path kept)",
    "qc_<flag>": "every image of the unit has a flag of ingest.drop_flags (drop_action skip)",
}

#: Quarantine reason codes (``quarantine.csv``, column ``reason``).
REASONS: dict[str, str] = {
    "empty_file": "zero-byte file",
    "unreadable": "cannot be opened or parsed (I/O error, corrupt NIfTI/PNG, bad DICOM)",
    "permission_denied": "no read permission",
    "broken_link": "dangling symbolic link or link loop",
    "unreadable_directory": "a folder that cannot be listed (its files are not seen)",
    "not_dicom": "no DICOM preamble and no DICOM image attributes",
    "truncated_pixel_data": "file ends inside its data elements or pixel data",
    "non_image_object": "SR, RT objects, presentation states, SEG, KO, PDF, waveforms",
    "no_pixel_data": "image module or pixel data element absent",
    "colour_image": "RGB, YBR or PALETTE COLOR DICOM, or colour raster content",
    "unsupported_syntax": "no installed decoder for the transfer syntax",
    "decode_failed": "pixel data present but the decoder failed",
    "malformed_header": "header values that cannot be interpreted (wrong VM, non-numbers)",
    "unsupported_multiframe": "multi-frame object without per-frame plane geometry",
    "unsupported_mosaic": "Siemens mosaic without a usable tile count",
    "unsupported_geometry": "more than 4 dimensions, multi-page raster, bad affine",
    "inconsistent_geometry": "slices of a series that do not form volumes",
    "burned_in_annotation": "BurnedInAnnotation is YES (pixels may show identity)",
    "burned_in_text": "identity-like text read in the pixels (ingest.burned_in_text: "
    "quarantine; medssl.burned_in)",
    "non_finite": "NaN or infinite voxel values",
    "empty_image": "image with no or a single pixel",
    "resource_limit": "declared size over ingest.max_voxels (or decoding ran out of memory)",
    "decode_error": "unexpected error while decoding a unit (a bug: please report)",
    "write_failed": "the NIfTI could not be written",
    "worker_crashed": "the worker process died on this unit (retried alone first)",
    "timeout": "decoding ran past ingest.timeout_s (a hung decoder; its worker was stopped)",
    "qc_<flag>": "every image of the unit has a flag of ingest.drop_flags (quarantine)",
}

#: QC flags that can appear in the manifest's ``qc_flags`` column.
QC_FLAGS: dict[str, str] = {
    "nonuniform_spacing": "slice gaps differ from their median by more than 1 %",
    "missing_slices": "a slice gap over 1.5x the median gap",
    "gantry_tilt": "slice step off the slice normal by more than 0.1 degree",
    "localizer": "ImageType contains LOCALIZER (scout)",
    "derived": "ImageType value 1 is DERIVED (reformat, MIP, subtraction, ...)",
    "single_slice": "a single cross-sectional slice (2D)",
    "spacing_unknown": "no pixel spacing in the source (1 mm assumed)",
    "volume_of_4d": "one 3D volume of a 4D series or NIfTI (see volume_index)",
    "no_patient_id": "no patient identifier (per-file patient key)",
    "uid_missing": "blank Study/Series/SOP Instance UID: identity from other attributes "
    "(medssl.io.identity)",
    "burned_in_annotation": "kept although BurnedInAnnotation is YES (option)",
    "burned_in_text": "identity-like text read in the pixels, kept (ingest.burned_in_text: flag)",
    "text_redacted": "text regions blacked out before writing (ingest.burned_in_text: redact)",
}

#: Where the files of a unit dropped by a QC flag go (``ingest.drop_action``).
DROP_ACTIONS = ("skip", "quarantine")


def decode_failure(exc: Exception) -> tuple[str, str]:
    """Quarantine reason and message for an error while decoding a unit or a slice.

    Args:
        exc: what the readers or the decoder raised.

    Returns:
        ``(reason, message)``: the reader's own code and message, ``resource_limit`` for
        memory or recursion exhaustion, else ``decode_error`` naming the exception type.
    """
    if isinstance(exc, DicomError | NiftiError | RasterError):
        return exc.reason, exc.message
    if isinstance(exc, MemoryError | RecursionError):
        return "resource_limit", type(exc).__name__
    return "decode_error", f"unexpected {type(exc).__name__}"


def write_failure(exc: OSError) -> tuple[str, str]:
    """Quarantine reason and message for an error while writing outputs or scratch files.

    Args:
        exc: the operating system error.

    Returns:
        ``("write_failed", message)``, the message naming the exception type and errno.
    """
    return "write_failed", f"{type(exc).__name__} (errno {exc.errno})"
