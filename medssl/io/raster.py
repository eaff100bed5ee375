"""2D raster exports (PNG, JPEG, TIFF) to presentation images.

Hospital teams often receive chest radiographs as 8- or 16-bit PNG/JPEG/TIFF exports that
have already been windowed; they are read as greyscale and scaled to [0, 1] like a DICOM
presentation image (see :mod:`medssl.io.dicom`). Spacing is unknown (1 mm, flagged
``spacing_unknown``). Rules:

* greyscale modes (``1``, ``L``, ``LA``, ``I;16*``, ``I``, ``F``) are read as they are;
  the alpha channel is dropped;
* RGB(A) and palette (``P``) images whose three channels agree (within 2 grey levels out
  of 255) are greyscale renderings and keep their first channel; true colour content is
  quarantined as ``colour_image`` (the same rule as colour DICOM);
* values are divided by the range of the stored type (255 for 8 bit, 65535 for 16 bit,
  the maximum for ``I``/``F``), so no per-image contrast stretch is applied;
* multi-page TIFFs are quarantined (``unsupported_geometry``): a page stack has no
  defined slice geometry;
* images with more than ``max_pixels`` pixels are refused before decoding
  (``resource_limit``; PIL's decompression-bomb guard).

Metadata of the file (PNG text chunks, EXIF, TIFF tags) is never read into outputs: it
can hold names (DICOM PS3.15 Annex E applies to every output).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
#: Default pixel limit (below PIL's own decompression-bomb error, 2 x 89,478,485).
MAX_PIXELS = 150_000_000
#: Largest channel disagreement (grey levels out of 255) of an RGB greyscale rendering.
COLOUR_TOLERANCE = 2.0

_GREY_MODES = frozenset({"1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


class RasterError(Exception):
    """A raster file that cannot become an image; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_raster(
    path: Path, *, max_pixels: int = MAX_PIXELS, data: bytes | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a greyscale (or RGB-rendered greyscale) export.

    Args:
        path: PNG/JPEG/TIFF file.
        max_pixels: refuse larger images before decoding them.
        data: the file's bytes when already in memory (``path`` is then not read).

    Returns:
        ``(X, Y)`` float32 in [0, 1] (the transpose of the file's rows x columns) and an
        identity-spacing affine matching :func:`medssl.io.dicom.image_affine` for a slice
        without geometry (``diag(-1, -1, 1, 1)``, DICOM LPS to RAS).

    Raises:
        RasterError: ``unreadable``, ``colour_image``, ``unsupported_geometry``,
            ``empty_image`` or ``resource_limit`` (see the module docstring).
    """
    arr, mode, top = _load(path if data is None else io.BytesIO(data), max_pixels)
    if arr.ndim == 3:
        arr = _grey_from_channels(arr, mode)
    if arr.ndim != 2 or arr.size == 0 or min(arr.shape) < 2:
        raise RasterError("empty_image", f"image of shape {arr.shape}")
    values = arr.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise RasterError("non_finite", "NaN or infinite pixel values")
    out = np.clip(values / top, 0.0, 1.0).astype(np.float32)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    return np.ascontiguousarray(out.T), affine


def _load(path: Path | io.BytesIO, max_pixels: int) -> tuple[np.ndarray, str, float]:
    """Decode the first (only) frame: ``(array, mode, full-scale value)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise RasterError(
                        "resource_limit", f"{width}x{height} pixels > limit {max_pixels}"
                    )
                if getattr(img, "n_frames", 1) > 1:
                    raise RasterError("unsupported_geometry", "multi-page image")
                img.load()
                mode = img.mode
                if mode == "P":
                    arr = np.asarray(img.convert("RGBA" if "transparency" in img.info else "RGB"))
                else:
                    arr = np.asarray(img)
    except RasterError:
        raise
    except Image.DecompressionBombError as exc:
        raise RasterError("resource_limit", "image over PIL's decompression limit") from exc
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise many types on bad input
        raise RasterError("unreadable", f"image read error: {type(exc).__name__}") from exc
    return arr, mode, _full_scale(arr, mode)


def _full_scale(arr: np.ndarray, mode: str) -> float:
    if mode == "1" or arr.dtype == np.bool_:
        return 1.0
    if arr.dtype == np.uint8:
        return 255.0
    if arr.dtype in (np.uint16, np.dtype(">u2"), np.dtype("<u2")) or mode.startswith("I;16"):
        return 65535.0
    peak = float(np.nanmax(arr)) if arr.size else 1.0
    if mode == "I" and peak <= 65535:
        return 65535.0 if peak > 255 else 255.0
    return peak if peak > 0 else 1.0


def _grey_from_channels(arr: np.ndarray, mode: str) -> np.ndarray:
    if mode in _GREY_MODES:  # LA: grey + alpha
        return arr[..., 0]
    rgb = arr[..., :3].astype(np.float64)
    if rgb.shape[-1] < 3:
        return rgb[..., 0]
    scale = 255.0 / (65535.0 if arr.dtype != np.uint8 else 255.0)
    spread = np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).max() * scale
    if spread > COLOUR_TOLERANCE:
        raise RasterError("colour_image", f"colour content in a {mode} image")
    return arr[..., 0]
