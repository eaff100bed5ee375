"""Screen one 2D image for burned-in identity; black out what was found.

Policies (``ingest.burned_in_text``): ``quarantine`` (default; reason ``burned_in_text``,
like BurnedInAnnotation = YES), ``redact`` (regions blacked out before the NIfTI is written,
QC flag ``text_redacted``; quarantined after all if a second screen of the redacted image
still fires), ``flag`` (kept, QC flag ``burned_in_text``) and ``off`` (no screening).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from medssl.burned_in import ocr
from medssl.burned_in.detect import Region, text_regions, to_display
from medssl.burned_in.rule import identity_rules

POLICIES = ("quarantine", "redact", "flag", "off")
#: Pixels added around each region before blacking it out.
REDACT_MARGIN = 4
#: The region that read as identity grows by this fraction of its height on every side: an
#: annotation is a block of lines, and the detector may have split off its next line.
FIRED_GROWTH = 0.5
#: Glyph-sized blobs on one line needed before a region is read (an identity has more:
#: "ID 1234567" has nine; a laterality marker has one).
MIN_GLYPHS = 4
#: A second reading without a run of three letters or digits ends the region's renderings.
_WORDLIKE = re.compile(r"[A-Za-z0-9]{3}")


@dataclass(frozen=True)
class ScreenResult:
    """What the screen found (counts and rule names only, never text).

    Attributes:
        rules: rules fired (see :mod:`medssl.burned_in.rule`); empty when clean.
        n_regions: candidate regions found by the detector.
        n_read: OCR calls made.
        regions: every candidate region (display coordinates), for redaction.
        fired: the region that read as identity, or None.
    """

    rules: tuple[str, ...]
    n_regions: int
    n_read: int
    regions: list[Region] = field(default_factory=list)
    fired: Region | None = None

    @property
    def found(self) -> bool:
        """True when some region reads as identity."""
        return bool(self.rules)


def screen_image(array: NDArray[np.generic]) -> ScreenResult:
    """Look for burned-in identity in a 2D image.

    Args:
        array: ``(X, Y)`` image as ingestion holds it (NIfTI order).

    Returns:
        The rules fired by the first region that reads as identity (reading stops there)
        and the detector's regions.

    Raises:
        medssl.burned_in.ocr.OcrUnavailable: Tesseract is not installed.
    """
    display = to_display(array)
    regions = text_regions(display)
    n_read = 0
    for region in regions:
        r0, c0, r1, c1 = region.box
        crop = display[r0:r1, c0:c1]
        text_mask = ocr.binarize(crop, region.bright)
        if ocr.glyphs_in_a_row(text_mask) < MIN_GLYPHS:
            continue  # a marker, a wire, anatomy: nothing that can spell identity
        for k, image in enumerate(ocr.renderings(crop, region.bright, text_mask)):
            n_read += 1
            text = ocr.read(image)
            rules = identity_rules(text)
            if rules:
                return ScreenResult(rules, len(regions), n_read, regions, region)
            if k >= 1 and not _WORDLIKE.search(text):
                break  # nothing word-like twice: the stretched rendering will not help
    return ScreenResult((), len(regions), n_read, regions)


def redact(array: NDArray[np.generic], found: ScreenResult) -> NDArray[np.generic]:
    """A copy of ``array`` with every region of ``found`` set to the image's minimum.

    Each region grows by :data:`REDACT_MARGIN` pixels; the region that read as identity
    by :data:`FIRED_GROWTH` of its height when that is more (the rest of its block).

    Args:
        array: ``(X, Y)`` image (NIfTI order); regions are in display order (rows, columns).
        found: from :func:`screen_image`.

    Returns:
        ``(X, Y)`` array of the same dtype.
    """
    out = np.array(array, copy=True)
    fill = out.min()
    for region in found.regions:
        r0, c0, r1, c1 = region.box
        m = REDACT_MARGIN
        if region == found.fired:
            m = max(m, round(FIRED_GROWTH * (r1 - r0)))
        out[max(0, c0 - m) : c1 + m, max(0, r0 - m) : r1 + m] = fill
    return out
