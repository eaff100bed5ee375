"""Phantoms: a chest radiograph, an axial chest CT and a T1-like head MR, all seeded.

Each phantom is a pure function of a NumPy generator and a size; it consumes the generator
and returns an array. Geometry is drawn on normalised coordinates in ``[-1, 1]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["chest_phantom", "ct_phantom", "mr_phantom"]

# --------------------------------------------------------------------------- geometry


def _grid(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Normalised coordinates in [-1, 1] along each axis, broadcast to ``shape``."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float64) for n in shape]
    return tuple(np.meshgrid(*axes, indexing="ij"))


def _ellipse(
    y: np.ndarray,
    x: np.ndarray,
    cy: float,
    cx: float,
    ry: float | np.ndarray,
    rx: float | np.ndarray,
) -> np.ndarray:
    """Boolean mask of the filled ellipse centred at (cy, cx) with semi-axes (ry, rx)."""
    inside: np.ndarray = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
    return inside


def _band(y: np.ndarray, centre: np.ndarray, half_width: float, where: np.ndarray) -> np.ndarray:
    """Boolean mask of a curved band ``|y - centre| < half_width`` restricted to ``where``."""
    band: np.ndarray = (np.abs(y - centre) < half_width) & where
    return band


# --------------------------------------------------------------------------- chest radiograph


def _bones(
    y: np.ndarray, x: np.ndarray, thorax: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Density of ribs, clavicles and spine on a PA projection, shape of ``y``."""
    density = np.zeros_like(y)
    rib_top = rng.uniform(-0.78, -0.7)
    rib_step = rng.uniform(0.12, 0.135)
    for side in (-1.0, 1.0):
        u = side * x
        lateral = (u > 0.05) & (u < 0.8) & thorax
        for k in range(9):
            centre = rib_top + rib_step * k - 0.3 * u + 0.95 * u**2
            density += 0.16 * _band(y, centre, 0.02, lateral)
        clavicle = (u > 0.06) & (u < 0.58)
        density += 0.25 * _band(y, -0.74 - 0.12 * u + 0.3 * u**2, 0.028, clavicle)
    density += 0.1 * ((np.abs(x) < 0.055) & thorax)
    return density


def _lung(y: np.ndarray, x: np.ndarray, side: float, rng: np.random.Generator) -> np.ndarray:
    """One lung as seen on a PA film: narrow apex, broad base, domed diaphragm."""
    u = side * x
    top, base = rng.uniform(-0.76, -0.68), rng.uniform(0.42, 0.55)
    width = rng.uniform(0.56, 0.66)
    lateral = 0.12 + width * np.sqrt(np.clip((y - top) / (base - top), 0.0, 1.0))
    dome = base - 0.16 * np.clip(1.0 - ((u - 0.38) / 0.36) ** 2, 0.0, 1.0)
    return (y >= top) & (u >= 0.06) & (u <= lateral) & (y <= dome)


def _thorax(
    y: np.ndarray, x: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Projected density (air ~0.04, soft tissue ~0.5, bone up to ~1) and the two lung masks.

    Returns:
        ``(density, (lung_image_left, lung_image_right))``, each of the shape of ``y``.
    """
    rx, ry = 0.85 * rng.uniform(0.92, 1.05), 1.15
    body = (np.abs(y - 0.25) / ry) ** 3 + (np.abs(x) / rx) ** 3 <= 1.0
    body |= (np.abs(x) < rng.uniform(0.18, 0.24)) & (y < -0.6)
    heart = _ellipse(y, x, 0.28, rng.uniform(0.08, 0.16), rng.uniform(0.2, 0.26), 0.3)
    mediastinum = _ellipse(y, x, -0.1, 0.0, 0.7, rng.uniform(0.1, 0.14))
    lungs = tuple(_lung(y, x, side, rng) & ~heart & ~mediastinum & body for side in (-1.0, 1.0))
    density = 0.04 + 0.46 * body
    density[lungs[0] | lungs[1]] = 0.16
    density[mediastinum | heart] = 0.62
    density += _bones(y, x, body & (y < 0.6), rng)
    return density, (lungs[0], lungs[1])


def _nodules(
    rng: np.random.Generator, y: np.ndarray, x: np.ndarray, lung: np.ndarray
) -> np.ndarray:
    """One to three soft round nodules centred inside ``lung`` (density units)."""
    n = 3
    pick = rng.integers(0, max(int(lung.sum()), 1), size=n)
    radius = rng.uniform(max(0.06, 6.0 / y.shape[0]), 0.14, size=n)
    contrast = rng.uniform(0.1, 0.35, size=n)
    count = int(rng.integers(1, n + 1))
    ys, xs = y[lung], x[lung]
    out = np.zeros_like(y)
    for k in range(count if ys.size else 0):
        d2 = (y - ys[pick[k]]) ** 2 + (x - xs[pick[k]]) ** 2
        out += contrast[k] * np.clip(1.6 - np.sqrt(d2) / radius[k], 0.0, 1.0)
    return out


def _patchy(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """A patchy consolidation: thresholded smooth noise under a Gaussian envelope in ``lung``."""
    field = ndimage.gaussian_filter(rng.standard_normal(y.shape), sigma=y.shape[0] / 24)
    field /= field.std() + 1e-12
    pick = int(rng.integers(0, max(int(lung.sum()), 1)))
    extent = rng.uniform(0.12, 0.3)
    contrast = rng.uniform(0.1, 0.3)
    threshold = rng.uniform(-0.3, 0.5)
    if not lung.any():
        return np.zeros_like(y)
    cy, cx = y[lung][pick], x[lung][pick]
    envelope = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * extent**2))
    opacity: np.ndarray = contrast * envelope / (1.0 + np.exp(-4.0 * (field - threshold)))
    return opacity


def _lesion(
    rng: np.random.Generator,
    y: np.ndarray,
    x: np.ndarray,
    lungs: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """A nodule set or a patchy opacity inside one lung; always draws the same random numbers.

    The lesion is scaled so that its peak density is 0.35 to 0.7 (lung field ~0.16).
    Drawing is independent of whether the lesion is used, so a normal and an abnormal
    phantom from the same generator state differ only by the lesion.
    """
    lung = lungs[int(rng.integers(2))]
    use_patchy = bool(rng.integers(2))
    peak = rng.uniform(0.35, 0.7)
    nodules = _nodules(rng, y, x, lung)
    patchy = _patchy(rng, y, x, lung)
    lesion = ndimage.gaussian_filter(patchy if use_patchy else nodules, sigma=0.6) * lung
    scaled: np.ndarray = lesion * (peak / max(float(lesion.max()), 1e-6))
    return scaled


def chest_phantom(rng: np.random.Generator, size: int, abnormal: bool) -> np.ndarray:
    """A synthetic PA/AP chest radiograph in presentation polarity (MONOCHROME2).

    Body outline, two lungs, mediastinum and heart, ribs, clavicles and spine are drawn as a
    projected density map, blurred, then passed through a per-image exposure curve
    (gain, offset, gamma) with additive Gaussian noise. An abnormal image has one to three
    nodules or a patchy opacity of random size and contrast inside one lung. The random numbers
    drawn do not depend on ``abnormal``.

    Args:
        rng: Random generator (consumed).
        size: Image side in pixels (>= 16).
        abnormal: Whether to draw a lesion.

    Returns:
        (size, size) float32 image in [0, 1]; air dark, bone bright.
    """
    if size < 16:
        raise ValueError(f"chest_phantom: size must be >= 16, got {size}")
    yy, xx = _grid((size, size))
    scale, dy, dx = rng.uniform(0.94, 1.06), rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04)
    y, x = (yy - dy) / scale, (xx - dx) / scale
    density, lungs = _thorax(y, x, rng)
    density = ndimage.gaussian_filter(density, sigma=max(size / 256, 0.5))
    lesion = _lesion(rng, y, x, lungs)
    if abnormal:
        density = density + lesion
    gain, offset = rng.uniform(0.85, 1.1), rng.uniform(-0.04, 0.04)
    gamma, noise_sd = rng.uniform(0.85, 1.2), rng.uniform(0.006, 0.02)
    image = offset + gain * np.clip(density, 0.0, None) ** gamma
    image += rng.normal(0.0, noise_sd, size=image.shape)
    clipped: np.ndarray = np.clip(image, 0.0, 1.0).astype(np.float32)
    return clipped


# --------------------------------------------------------------------------- volumes


def ct_phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A synthetic axial chest CT in Hounsfield units.

    Rows run anterior to posterior and columns right to left (DICOM LPS with identity
    orientation); slice index increases towards the head. Air -1000, fat -100, soft tissue
    40, lungs about -850, vertebra with cortical (700) and cancellous (250) bone, ribs 600.

    Args:
        rng: Random generator (consumed).
        shape: (Z, Y, X), each >= 4.

    Returns:
        (Z, Y, X) int16 volume clipped to [-1024, 3071].
    """
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"ct_phantom: shape must be 3 sizes >= 4, got {shape}")
    z, y, x = _grid(shape)
    hu = np.full(shape, -1000.0)
    body_ry, body_rx = rng.uniform(0.6, 0.72), rng.uniform(0.85, 0.95)
    body = _ellipse(y, x, 0.05, 0.0, body_ry, body_rx)
    hu[body] = -100.0
    hu[_ellipse(y, x, 0.05, 0.0, body_ry - 0.08, body_rx - 0.08)] = 40.0
    lung_scale = np.sqrt(np.clip(1.0 - (z / 1.25) ** 2, 0.05, 1.0))
    heart = _ellipse(y, x, -0.12, 0.1, 0.3, 0.26) & (z < rng.uniform(-0.1, 0.3))
    for side in (-1.0, 1.0):
        ry, rx = rng.uniform(0.36, 0.44) * lung_scale, rng.uniform(0.26, 0.32) * lung_scale
        hu[_ellipse(y, x, 0.0, side * 0.42, ry, rx) & ~heart] = rng.uniform(-880.0, -820.0)
    hu[heart] = 40.0
    hu[_ellipse(y, x, 0.46, 0.0, 0.14, 0.12)] = 700.0
    hu[_ellipse(y, x, 0.46, 0.0, 0.1, 0.085)] = 250.0
    hu[_ellipse(y, x, -0.6, 0.0, 0.05, 0.1) & body] = 400.0
    angle = np.arctan2((y - 0.05) / body_ry, x / body_rx)
    radius = np.sqrt(((y - 0.05) / body_ry) ** 2 + (x / body_rx) ** 2)
    rib_phase = np.cos(7.0 * angle + 6.0 * z) > 0.6
    hu[(radius > 0.8) & (radius < 0.87) & rib_phase & (z > -0.6)] = 600.0
    hu += rng.normal(0.0, rng.uniform(8.0, 20.0), size=shape)
    volume: np.ndarray = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return volume


def mr_phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A T1-like head volume (Z, Y, X) int16: scalp, skull, grey/white matter, ventricles."""
    z, y, x = _grid(shape)
    r = np.sqrt((z / 0.95) ** 2 + (y / 0.9) ** 2 + (x / 0.75) ** 2)
    signal = np.where(r < 0.98, 700.0, 0.0)
    signal[r < 0.92] = 80.0
    signal[r < 0.86] = 450.0
    signal[r < 0.6] = 620.0
    ventricle = _ellipse(y, x, -0.05, 0.0, 0.3, 0.12) & (np.abs(z) < 0.3)
    signal[ventricle] = 120.0
    bias = 1.0 + 0.15 * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)
    noise_sd = rng.uniform(10.0, 25.0)
    real = signal * bias + rng.normal(0.0, noise_sd, size=shape)
    imag = rng.normal(0.0, noise_sd, size=shape)
    return np.rint(np.hypot(real, imag)).astype(np.int16)
