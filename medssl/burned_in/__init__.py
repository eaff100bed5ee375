"""Burned-in text in the pixels: find it, read it, decide whether it is identity.

Radiographs and secondary captures often carry the patient's name, ID or birth date burned
into the pixel matrix, and most exports do not set BurnedInAnnotation (DICOM PS3.3
C.7.6.1.1.6; PS3.15 Annex E, option "Clean Pixel Data"). Ingestion screens every 2D image
before it is written:

1. :mod:`.detect` finds text-like regions with block statistics (cheap, no OCR);
2. :mod:`.ocr` reads each region with Tesseract (Debian ``tesseract-ocr`` and
   ``tesseract-ocr-eng``, in process through ``tesserocr``);
3. :mod:`.rule` decides from the recognised text whether it looks like identity (dates,
   digit runs, person-name form) without keeping the text;
4. :mod:`.screen` puts the three together and blacks out regions (policy ``redact``).

Nothing recognised ever leaves this package: callers get counts, rule names and boxes.
"""

from medssl.burned_in.flags import PIXEL_IDENTITY_FLAGS, shows_pixel_identity
from medssl.burned_in.screen import POLICIES, ScreenResult, redact, screen_image

__all__ = [
    "PIXEL_IDENTITY_FLAGS",
    "POLICIES",
    "ScreenResult",
    "redact",
    "screen_image",
    "shows_pixel_identity",
]
