"""QC flags that mark pixels carrying (or having carried) identity.

Kept apart from the OCR code so that readers of the manifest (the report) depend on the
flags only.
"""

from __future__ import annotations

#: QC flags of images whose pixels carry, or carried, identity: never shown in reports.
PIXEL_IDENTITY_FLAGS = ("burned_in_text", "text_redacted", "burned_in_annotation")


def shows_pixel_identity(qc_flags: str) -> bool:
    """True when a manifest row's ``qc_flags`` (``;``-joined) mark such pixels."""
    return bool(set(qc_flags.split(";")) & set(PIXEL_IDENTITY_FLAGS))
