"""Stored pixel values to the values medssl writes: modality values or presentation codes.

* Cross-sectional modalities (CT, MR, PT) keep modality values: the modality LUT or
  rescale (HU for CT, PS3.3 C.11.1, C.8.2.1), frame by frame for enhanced objects (Pixel
  Value Transformation, PS3.3 C.7.6.16.2.9), see :func:`modality_values`. Philips private
  "precise" scaling is *not* applied (dcm2niix applies it by default).
* Projection radiographs (CR, DX, MG, ...) are *presentation* images: modality LUT, then
  VOI LUT or window (PS3.3 C.11.1, C.11.2), then scaled to [0, 1], with MONOCHROME1
  inverted so that bone is bright (PS3.3 C.7.6.3.1.2), see :func:`presentation_codes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

#: Subsampling stride for the robust intensity range of radiographs.
PERCENTILE_STRIDE = 4
#: Radiographs are written as uint16 codes 0..PRESENTATION_CODES (NIfTI scl_slope below).
PRESENTATION_CODES = 65535
#: Value of one presentation code: readers see ``code * PRESENTATION_SCALE`` in [0, 1].
PRESENTATION_SCALE = 1.0 / PRESENTATION_CODES
#: Pixels per chunk of a lookup-table gather (bounds numpy's intp copy of the index).
GATHER_CHUNK = 1 << 16


# --------------------------------------------------------------------------- presentation


def presentation_codes(ds: Dataset, stored: npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
    """Projection radiograph to presentation codes: uint16, value = code * PRESENTATION_SCALE.

    Modality LUT, then VOI LUT or window (PS3.3 C.11.1, C.11.2), then a robust min-max scale
    (0.5th-99.5th percentile of a strided sample) to [0, 1], then MONOCHROME1 inversion
    (PS3.3 C.7.6.3.1.2), which neither pydicom's windowing nor MONAI's readers apply; the
    result is quantized to 16 bits (steps of 1/65535, finer than any detector's BitsStored)
    and written with that NIfTI ``scl_slope``, so readers see floats in [0, 1].

    Every step maps a stored value to one output value, so for 8- and 16-bit stored values
    the chain is evaluated once per possible value (a lookup table of 256 or 65536 entries,
    with the very pydicom functions) and applied with one gather: the same codes as
    evaluating it per pixel, without per-pixel float arithmetic.

    Args:
        ds: dataset.
        stored: ``(rows, cols)`` stored values.

    Returns:
        ``(rows, cols)`` uint16 codes.
    """
    domain = _value_domain(stored)
    if domain is None:
        lo, hi = _robust_range(_voi(ds, _sample(stored)))
        return _to_codes(_unit_scale(_voi(ds, stored), lo, hi), ds)
    bits = f"u{stored.dtype.itemsize}"  # the table is indexed by each value's bit pattern
    table = _voi(ds, domain)
    lo, hi = _robust_range(table.take(_sample(stored).view(bits)))
    return _gather(_to_codes(_unit_scale(table, lo, hi), ds), stored.view(bits))


def presentation_image(ds: Dataset, stored: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """:func:`presentation_codes` as float32 in [0, 1] (what NIfTI readers get back).

    Args:
        ds: dataset.
        stored: ``(rows, cols)`` stored values.

    Returns:
        ``(rows, cols)`` float32 in [0, 1], bone bright.
    """
    return presentation_codes(ds, stored).astype(np.float32) * np.float32(PRESENTATION_SCALE)


def _voi(ds: Dataset, values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Modality LUT then VOI LUT or window (pydicom), as float32; elementwise."""
    return np.asarray(apply_voi_lut(apply_modality_lut(values, ds), ds, index=0), np.float32)


def _sample(stored: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """One pixel in ``PERCENTILE_STRIDE**2``, for the robust range's percentiles."""
    return stored[::PERCENTILE_STRIDE, ::PERCENTILE_STRIDE]


def _robust_range(sample: npt.NDArray[np.float32]) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max()) + 1e-6
    return lo, hi


def _unit_scale(values: npt.NDArray[np.float32], lo: float, hi: float) -> npt.NDArray[np.float32]:
    out = (values - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _value_domain(stored: npt.NDArray[Any]) -> npt.NDArray[Any] | None:
    """Every 8- or 16-bit value in bit-pattern order, or None (wider types, small images)."""
    if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
        return None
    n = 1 << (8 * stored.dtype.itemsize)
    if stored.size <= n:
        return None
    return np.arange(n, dtype=f"u{stored.dtype.itemsize}").view(stored.dtype)


def _to_codes(values: npt.NDArray[np.float32], ds: Dataset) -> npt.NDArray[np.uint16]:
    """[0, 1] values to uint16 codes, MONOCHROME1 inverted (PS3.3 C.7.6.3.1.2)."""
    scaled = np.rint(values * np.float32(PRESENTATION_CODES))
    codes: npt.NDArray[np.uint16] = scaled.astype(np.uint16)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        np.subtract(np.uint16(PRESENTATION_CODES), codes, out=codes)
    return codes


def _gather(table: npt.NDArray[np.uint16], index: npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
    """``table[index]`` in cache-sized chunks (numpy widens each index to intp)."""
    out = np.empty(index.shape, dtype=table.dtype)
    flat_in, flat_out = index.reshape(-1), out.reshape(-1)
    for i in range(0, flat_in.size, GATHER_CHUNK):
        np.take(table, flat_in[i : i + GATHER_CHUNK], out=flat_out[i : i + GATHER_CHUNK])
    return out


# --------------------------------------------------------------------------- modality values


def modality_values(ds: Dataset, stored: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Apply the modality LUT / rescale (HU for CT, PS3.3 C.11.1).

    Integer stored values with an integer linear rescale (the usual CT case) are computed
    in int16 directly when the result range fits; wrap-around arithmetic is exact there,
    since only the final values must fit.

    Args:
        ds: dataset, or the functional group item that holds RescaleSlope/Intercept.
        stored: stored values of any shape.

    Returns:
        int16 when the result is integral and fits, else float32.
    """
    rescale = _integer_rescale(ds) if stored.dtype.kind in "iu" and stored.size else None
    if rescale is not None:
        fast = _integer_modality(stored, *rescale)
        if fast is not None:
            return fast
    return _compact(np.asarray(apply_modality_lut(stored, ds)))


def _integer_rescale(lut: Dataset) -> tuple[int, int] | None:
    """``(slope, intercept)`` when the modality transform is an integer linear rescale."""
    if "ModalityLUTSequence" in lut:
        return None
    try:
        slope = float(lut.get("RescaleSlope", 1) or 1)
        intercept = float(lut.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return None
    if slope.is_integer() and intercept.is_integer():
        return int(slope), int(intercept)
    return None


def _integer_modality(
    stored: npt.NDArray[Any], slope: int, intercept: int
) -> npt.NDArray[np.int16] | None:
    ends = (int(stored.min()) * slope + intercept, int(stored.max()) * slope + intercept)
    if min(ends) < -32768 or max(ends) > 32767:
        return None
    out = stored.astype(np.int16)  # wraps; exact modulo 2**16, and the result fits
    if slope != 1:
        out *= np.int16(_wrap16(slope))
    if intercept:
        out += np.int16(_wrap16(intercept))
    return out


def _wrap16(value: int) -> int:
    return (value + 32768) % 65536 - 32768


def _compact(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """int16 when every value is an integer in range, else float32."""
    if (
        values.size
        and np.all(np.mod(values, 1) == 0)
        and values.min() >= -32768
        and values.max() <= 32767
    ):
        return values.astype(np.int16)
    return values.astype(np.float32)
