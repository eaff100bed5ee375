"""Reading candidate regions with Tesseract (in process, through ``tesserocr``).

Tesseract 5 (Smith 2007, "An overview of the Tesseract OCR engine", ICDAR; LSTM lines
since 4.0) with the English model of Debian's ``tesseract-ocr-eng``. ``tesserocr`` binds the
C++ API, so a worker loads the model once instead of starting a ``tesseract`` process per
region (as ``pytesseract`` does). No model is downloaded: the language data must be
installed (``make install`` installs the Debian packages when run as root).

Each region is read twice at most: binarised against its own background (the text's
polarity from :mod:`.detect`), then contrast-stretched, both as dark text on white, scaled
so that a text line is about 30 px high, with a white border (Tesseract needs one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

#: Where Debian and common installs keep Tesseract's language data.
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)
LANGUAGE = "eng"
INSTALL_HINT = (
    "install the Debian packages tesseract-ocr and tesseract-ocr-eng "
    "(make install does it when run as root), or set ingest.burned_in_text: off"
)
#: White border added around each rendering (pixels, before scaling).
BORDER = 8
#: Binarised blobs smaller than this (pixels) are noise, not glyph parts.
MIN_SPECK = 3

_ENGINES: dict[int, Any] = {}


class OcrUnavailable(RuntimeError):
    """Tesseract or its English language data is not installed."""


def tessdata_dir() -> Path:
    """The folder holding ``eng.traineddata`` (``TESSDATA_PREFIX`` first).

    Raises:
        OcrUnavailable: no such folder.
    """
    env = os.environ.get("TESSDATA_PREFIX")
    for folder in ([env] if env else []) + list(TESSDATA_DIRS):
        if (Path(folder) / f"{LANGUAGE}.traineddata").is_file():
            return Path(folder)
    raise OcrUnavailable(f"Tesseract language data '{LANGUAGE}' not found: {INSTALL_HINT}")


def _engine() -> Any:
    """This process's Tesseract instance (one per process: worker pools fork)."""
    pid = os.getpid()
    if pid not in _ENGINES:
        try:
            import tesserocr
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise OcrUnavailable(f"tesserocr is not importable ({exc}): {INSTALL_HINT}") from exc
        api = tesserocr.PyTessBaseAPI(
            path=str(tessdata_dir()), lang=LANGUAGE, psm=tesserocr.PSM.SINGLE_BLOCK
        )
        api.SetVariable("tessedit_do_invert", "0")  # renderings are dark on white
        _ENGINES.clear()
        _ENGINES[pid] = api
    return _ENGINES[pid]


def check_available() -> None:
    """Fail early, with the install hint, when OCR cannot run.

    Raises:
        OcrUnavailable: Tesseract or its language data is missing.
    """
    _engine()


def _scale(height: int) -> int:
    return 3 if height <= 40 else 2 if height <= 80 else 1


def _without_specks(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask`` without connected specks under :data:`MIN_SPECK` pixels (image noise)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= MIN_SPECK
    keep[0] = False
    out: NDArray[np.bool_] = keep[labels]
    return out


def binarize(crop: NDArray[np.uint8], bright: bool) -> NDArray[np.bool_]:
    """Text pixels of a region: half-way between its median and the text's extreme.

    Args:
        crop: ``(rows, columns)`` uint8 region of the display image.
        bright: the text is brighter than its background.

    Returns:
        ``(rows, columns)`` bool, True on text.
    """
    c = crop.astype(np.float32)
    background = float(np.median(c))
    text: NDArray[np.bool_] = c >= (background + 255.0) / 2 if bright else c <= background / 2
    return text


def glyphs_in_a_row(text: NDArray[np.bool_]) -> int:
    """The longest run of glyph-sized blobs of ``text`` spaced like characters on a line.

    A glyph is 5 to 64 px high and at most about twice as wide as high (two touching
    characters). Glyphs of one run have centres within 0.6 of a height, heights within a
    factor of 2, and gaps of at most one height to the next. A lone marker gives 1; anatomy
    and wires seldom give runs.

    Args:
        text: ``(rows, columns)`` bool mask from :func:`binarize`.

    Returns:
        The length of the longest run.
    """
    labels, n = ndimage.label(text)
    if n == 0:
        return 0
    glyphs = []  # (height, row centre, first column, last column)
    for rows, cols in ndimage.find_objects(labels):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if 5 <= h <= 64 and w <= 2 * h + 4:
            glyphs.append((h, (rows.start + rows.stop) / 2, cols.start, cols.stop))
    glyphs.sort(key=lambda g: g[2])
    best = 0
    for h, centre, _, right in glyphs:
        run, end = 1, right
        for h2, c2, left2, right2 in glyphs:
            beside = left2 >= end and left2 - end <= h and abs(c2 - centre) <= 0.6 * h
            if beside and h / 2 <= h2 <= 2 * h:
                run, end = run + 1, right2
        best = max(best, run)
    return best


def renderings(
    crop: NDArray[np.uint8], bright: bool, text: NDArray[np.bool_]
) -> Iterator[NDArray[np.uint8]]:
    """Dark-on-white renderings of a region, cheapest first.

    Args:
        crop: ``(rows, columns)`` uint8 region of the display image.
        bright: the text is brighter than its background.
        text: the region's text mask (:func:`binarize`).

    Yields:
        ``(rows, columns)`` uint8 images: binarised half-way between the region's median
        and the text's extreme, the same without specks of noise, then the region
        contrast-stretched (1st-99th percentile).
    """
    yield np.where(text, 0, 255).astype(np.uint8)
    yield np.where(_without_specks(text), 0, 255).astype(np.uint8)
    c = 255.0 - crop.astype(np.float32) if bright else crop.astype(np.float32)
    lo, hi = np.percentile(c, [1, 99])
    yield (np.clip((c - lo) / max(float(hi - lo), 1.0), 0, 1) * 255).astype(np.uint8)


def read(image: NDArray[np.uint8]) -> str:
    """Text Tesseract reads in a dark-on-white image (kept in memory only).

    Args:
        image: ``(rows, columns)`` uint8.

    Returns:
        The recognised text (lines joined by newlines); callers must not store it.
    """
    padded = np.pad(image, BORDER, constant_values=255)
    scale = _scale(image.shape[0])
    pil = Image.fromarray(np.ascontiguousarray(padded))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.BICUBIC)
    api = _engine()
    api.SetImage(pil)
    return str(api.GetUTF8Text())
