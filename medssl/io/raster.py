"""2D raster exports (PNG, JPEG, TIFF) to presentation images.

Hospital teams often receive chest radiographs as 8- or 16-bit PNG/JPEG exports that have
already been windowed; they are read as greyscale and scaled to [0, 1] like a DICOM
presentation image (see :mod:`medssl.io.dicom`). Spacing is unknown (1 mm, flagged).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})


class RasterError(Exception):
    """A raster file that cannot become an image; ``reason`` is a quarantine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_raster(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a greyscale (or RGB-rendered greyscale) export.

    Args:
        path: PNG/JPEG/TIFF file.

    Returns:
        ``(X, Y)`` float32 in [0, 1] and an identity-spacing RAS affine.

    Raises:
        RasterError: ``unreadable`` or ``colour_image`` (true colour content).
    """
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RasterError("unreadable", f"image read error: {type(exc).__name__}") from exc
    if arr.ndim == 3:
        rgb = arr[..., :3].astype(np.float64)
        if np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).max() > 2:
            raise RasterError("colour_image", f"colour content in a {mode} image")
        arr = rgb[..., 0]
    values = arr.astype(np.float64)
    top = 65535.0 if values.max() > 255 else 255.0
    out = (values / top).astype(np.float32)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    return out.T.copy(), affine
