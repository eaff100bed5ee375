"""QC flags that mark pixels carrying (or having carried) identity.

Kept apart from the OCR code so that readers of the manifest (the report) depend on the
flags only; the header's own declaration (BurnedInAnnotation) is read here too.
"""

from __future__ import annotations

from typing import Any

#: QC flags of images whose pixels carry, or carried, identity: never shown in reports.
PIXEL_IDENTITY_FLAGS = ("burned_in_text", "text_redacted", "burned_in_annotation")


def shows_pixel_identity(qc_flags: str) -> bool:
    """True when a manifest row's ``qc_flags`` (``;``-joined) mark such pixels."""
    return bool(set(qc_flags.split(";")) & set(PIXEL_IDENTITY_FLAGS))


def has_burned_in_annotation(ds: Any) -> bool:
    """Whether Burned In Annotation (0028,0301) is ``YES`` (PS3.3 C.7.6.1.1.6).

    Such pixel data may show names or IDs: ingestion quarantines them.

    Args:
        ds: DICOM dataset.

    Returns:
        True for ``YES`` (any case, padding ignored); False otherwise, including when
        the attribute is absent (it is Type 3 in most image IODs).
    """
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
