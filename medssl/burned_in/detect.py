"""Text-like regions of a radiograph, found without OCR.

Burned-in annotations are drawn by the modality or the export software at (or next to) the
darkest or brightest value of the image, in strokes a few pixels wide. Anatomy seldom
reaches those values in thin, dense, two-directional strokes with step edges. For each
polarity the detector marks the pixels within ``TOLERANCE`` of the extreme, counts the
mask's horizontal and vertical transitions that are steps (``STEP``: the darkest texture of
a lung is a slope, a glyph's edge is a step) in blocks of ``BLOCK`` pixels, keeps blocks
with many of both whose other pixels stand off the extreme by ``CONTRAST`` (noise in
clipped air toggles the mask too, but its other pixels sit next to the band), and joins
neighbouring blocks into regions (per block row where a region grows taller than
``MAX_HEIGHT``). Large saturated areas (collimator edges, air) give one transition per row
at most and are not text. Only region boxes leave this module; they are read by
:mod:`medssl.burned_in.ocr`.

Cost: a few vectorised passes over the image; only dense blocks are looked at one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

#: Block size (rows, columns): about one text line high, two characters wide.
BLOCK = (8, 16)
#: Distance from the extreme value (of 255) that still counts as the text's value.
TOLERANCE = 8
#: Minimum transitions of the extreme mask in a block: across rows, across columns.
MIN_TRANSITIONS = (8, 6)
#: Regions per image at most (a guard against pathological images; none seen near it).
MAX_REGIONS = 200
#: A transition counts when the values two pixels apart differ by this much (a glyph's edge
#: is a step; the darkest or brightest texture of a lung or bone is a slope).
STEP = 24
#: How far (of 255) the rest of a text block's pixels stand off the text's band.
CONTRAST = 16
#: Taller regions are anatomy (eight lines of 16 px text fit).
MAX_HEIGHT = 160


@dataclass(frozen=True)
class Region:
    """A candidate text region.

    Attributes:
        box: ``(row0, col0, row1, col1)`` in display pixels, end exclusive.
        bright: True when the text is brighter than its background.
    """

    box: tuple[int, int, int, int]
    bright: bool


def to_display(array: NDArray[np.generic]) -> NDArray[np.uint8]:
    """Display-oriented 8-bit image of a 2D image as ingestion holds it.

    Args:
        array: ``(X, Y)`` image (NIfTI order: the transpose of rows x columns).

    Returns:
        ``(rows, columns)`` uint8, min-max scaled (a constant image gives zeros).
    """
    a = np.asarray(array, dtype=np.float32).T
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return ((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _block_sums(mask: NDArray[np.bool_]) -> NDArray[np.uint16]:
    bh, bw = BLOCK
    h, w = mask.shape[0] // bh, mask.shape[1] // bw
    blocks = mask[: h * bh, : w * bw].view(np.uint8).reshape(h, bh, w, bw)
    sums: NDArray[np.uint16] = blocks.sum(axis=(1, 3), dtype=np.uint16)
    return sums


def _steps(values: NDArray[np.int16]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Where values two pixels apart differ by :data:`STEP`: ``(across, down)``, each
    ``(rows, columns)`` with the border pixels False."""
    across = np.zeros(values.shape, bool)
    across[:, 1:-1] = np.abs(values[:, 2:] - values[:, :-2]) >= STEP
    down = np.zeros(values.shape, bool)
    down[1:-1, :] = np.abs(values[2:, :] - values[:-2, :]) >= STEP
    return across, down


def _stands_off(
    display: NDArray[np.uint8], mask: NDArray[np.bool_], dense: NDArray[np.bool_], bright: bool
) -> NDArray[np.bool_]:
    """``dense`` without blocks whose other pixels sit near the band (noise in clipped air)."""
    bh, bw = BLOCK
    keep = dense.copy()
    for i, j in np.argwhere(dense):
        rows, cols = slice(i * bh, (i + 1) * bh), slice(j * bw, (j + 1) * bw)
        rest = display[rows, cols][~mask[rows, cols]]
        level = float(rest.mean()) if rest.size else (255.0 if bright else 0.0)
        keep[i, j] = (255.0 - level if bright else level) >= TOLERANCE + CONTRAST
    return keep


def _regions(
    display: NDArray[np.uint8],
    mask: NDArray[np.bool_],
    steps: tuple[NDArray[np.bool_], NDArray[np.bool_]],
    bright: bool,
) -> list[Region]:
    shape = (int(display.shape[0]), int(display.shape[1]))
    across = np.zeros_like(mask)
    across[:, 1:-1] = (mask[:, 2:] != mask[:, :-2]) & steps[0][:, 1:-1]
    down = np.zeros_like(mask)
    down[1:-1, :] = (mask[2:, :] != mask[:-2, :]) & steps[1][1:-1, :]
    dense = (_block_sums(across) >= MIN_TRANSITIONS[0]) & (_block_sums(down) >= MIN_TRANSITIONS[1])
    if not dense.any():
        return []
    dense = _stands_off(display, mask, dense, bright)
    out = []
    for rows, cols in _groups(dense, (3, 5)):
        if (rows.stop - rows.start) * BLOCK[0] > MAX_HEIGHT:
            # Text touching a large structure (saturated bone, a wire): per block row.
            sub = np.zeros_like(dense)
            sub[rows, cols] = dense[rows, cols]
            for r, c in _groups(sub, (1, 5), rows_apart=True):
                out.append(_box(slice(max(0, r.start - 1), r.stop + 1), c, shape))
        else:
            out.append(_box(rows, cols, shape))
    return [Region(b, bright) for b in out if _text_shaped(b)]


def _groups(
    blocks: NDArray[np.bool_], reach: tuple[int, int], rows_apart: bool = False
) -> list[tuple[slice, slice]]:
    """Block slices of groups of ``blocks`` joined within ``reach`` (rows, columns);
    ``rows_apart``: block rows are never joined."""
    grown = ndimage.binary_dilation(blocks, structure=np.ones(reach, bool))
    link = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]]) if rows_apart else None
    labels, _ = ndimage.label(grown, structure=link)
    return [(r, c) for r, c in ndimage.find_objects(labels)]


def _box(rows: slice, cols: slice, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    bh, bw = BLOCK
    return (
        rows.start * bh,
        cols.start * bw,
        min(shape[0], rows.stop * bh),
        min(shape[1], cols.stop * bw),
    )


def _text_shaped(box: tuple[int, int, int, int]) -> bool:
    height, width = box[2] - box[0], box[3] - box[1]
    return height <= MAX_HEIGHT and (width >= 1.5 * height or width >= 96)


def text_regions(display: NDArray[np.uint8]) -> list[Region]:
    """Candidate text regions of a display image, bright first (at most MAX_REGIONS).

    Args:
        display: ``(rows, columns)`` uint8 (see :func:`to_display`).

    Returns:
        Regions wider than high (after joining neighbouring blocks) and at most
        :data:`MAX_HEIGHT` tall: a lung is not a candidate; a marker may be (it is read,
        and the rule keeps it).
    """
    steps = _steps(display.astype(np.int16))
    bright = _regions(display, display >= 255 - TOLERANCE, steps, True)
    dark = _regions(display, display <= TOLERANCE, steps, False)
    return (bright + dark)[:MAX_REGIONS]
