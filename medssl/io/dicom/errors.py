"""The one error of the DICOM readers: a quarantine reason code and a message.

Every way a DICOM object can fail to become an image surfaces as :class:`DicomError`, whose
``reason`` is one of the quarantine codes of :data:`medssl.ingest.REASONS` (``not_dicom``,
``colour_image``, ``inconsistent_geometry``, ...). Malformed headers (wrong value
multiplicity, non-numeric strings, frame counts that do not match the pixel data, PS3.5 6.2
and 6.4 violations) raise built-in errors deep inside pydicom and numpy;
:func:`malformed_header` turns those into the ``malformed_header`` code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class DicomError(Exception):
    """A DICOM object that cannot become an image; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@contextmanager
def malformed_header(what: str) -> Iterator[None]:
    """Re-raise the built-in errors of malformed headers as ``malformed_header``.

    Args:
        what: start of the message, e.g. ``"cannot decode"``.

    Raises:
        DicomError: ``malformed_header`` for ValueError, TypeError, AttributeError,
            KeyError and IndexError; a DicomError passes through unchanged.
    """
    try:
        yield
    except DicomError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise DicomError("malformed_header", f"{what}: {type(exc).__name__}") from exc
