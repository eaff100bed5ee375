"""Raster exports: greyscale modes, 16 bit, colour rule, limits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medssl.io.raster import RasterError, read_raster


def _save(path: Path, img: Image.Image, fmt: str = "PNG") -> Path:
    img.save(path, format=fmt)
    return path


def test_8bit_png_is_scaled_and_transposed(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    array, affine = read_raster(_save(tmp_path / "a.png", Image.fromarray(arr)))
    np.testing.assert_allclose(array, arr.T / 255.0, rtol=1e-6)
    assert array.dtype == np.float32 and array.shape == (4, 3)
    np.testing.assert_array_equal(affine, np.diag([-1.0, -1.0, 1.0, 1.0]))


def test_16bit_png_uses_the_full_16_bit_range(tmp_path: Path) -> None:
    arr = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    array, _ = read_raster(_save(tmp_path / "a.png", Image.fromarray(arr)))
    np.testing.assert_allclose(array, arr.T / 65535.0, rtol=1e-6)


def test_rgb_rendering_of_grey_is_accepted_true_colour_is_not(tmp_path: Path) -> None:
    grey = np.repeat(np.arange(16, dtype=np.uint8).reshape(4, 4)[..., None] * 10, 3, axis=2)
    array, _ = read_raster(_save(tmp_path / "g.jpg", Image.fromarray(grey), "PNG"))
    np.testing.assert_allclose(array, grey[..., 0].T / 255.0, rtol=1e-6)
    colour = grey.copy()
    colour[..., 2] = 255
    with pytest.raises(RasterError) as err:
        read_raster(_save(tmp_path / "c.png", Image.fromarray(colour)))
    assert err.value.reason == "colour_image"


def test_palette_and_grey_alpha_images(tmp_path: Path) -> None:
    grey = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16)
    p_img = grey.convert("P")
    array, _ = read_raster(_save(tmp_path / "p.png", p_img))
    np.testing.assert_allclose(array, np.asarray(grey).T / 255.0, atol=1 / 255)
    la = grey.convert("LA")
    array, _ = read_raster(_save(tmp_path / "la.png", la))
    np.testing.assert_allclose(array, np.asarray(grey).T / 255.0, rtol=1e-6)


def test_limits_and_broken_files(tmp_path: Path) -> None:
    big = _save(tmp_path / "big.png", Image.fromarray(np.zeros((50, 50), np.uint8)))
    with pytest.raises(RasterError) as err:
        read_raster(big, max_pixels=100)
    assert err.value.reason == "resource_limit"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:40])
    with pytest.raises(RasterError) as err:
        read_raster(tmp_path / "cut.png")
    assert err.value.reason == "unreadable"
    pages = [Image.fromarray(np.zeros((4, 4), np.uint8)) for _ in range(2)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(RasterError) as err:
        read_raster(tmp_path / "m.tif")
    assert err.value.reason == "unsupported_geometry"
