"""Radiographs with and without burned-in text, drawn with Pillow's bundled font."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

IDENTITY = ("MUSTERMANN, ERIKA", "MRN 40817263", "DOB 1964-08-12")


def radiograph(size: int = 512, seed: int = 0) -> NDArray[np.uint16]:
    """A smooth 12-bit chest-like image with noise, ``(rows, columns)``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = np.exp(-((((x - 0.5) / 0.38) ** 2 + ((y - 0.55) / 0.45) ** 2) ** 2))
    lungs = np.exp(-(((np.abs(x - 0.5) - 0.18) / 0.1) ** 2 + ((y - 0.5) / 0.22) ** 2))
    image = 600 + 2600 * body - 1400 * lungs + rng.normal(0, 40, (size, size))
    return np.clip(image, 0, 4095).astype(np.uint16)


def draw(
    image: NDArray[np.uint16], lines: tuple[str, ...], at: tuple[int, int], size: int, white: bool
) -> NDArray[np.uint16]:
    """``image`` with ``lines`` drawn at ``at`` (column, row) in 12-bit white or black."""
    canvas = Image.new("L", (image.shape[1], image.shape[0]), 0)
    font = ImageFont.load_default(size)
    ImageDraw.Draw(canvas).multiline_text(at, "\n".join(lines), fill=255, font=font)
    ink = np.asarray(canvas) >= 128
    return np.where(ink, 4095 if white else 0, image).astype(np.uint16)
