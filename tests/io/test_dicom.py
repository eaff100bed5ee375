"""Synthetic tests for medssl.io.dicom: sorting, QC flags, value mapping, 4D split, errors.

Every dataset is written to ``tmp_path`` with pydicom and read back through
:func:`read_dataset`, so the files go through the same parser as a hospital export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from medssl.io.dicom import (
    PRESENTATION_CODES,
    PRESENTATION_SCALE,
    DicomError,
    check_image_object,
    decode_array,
    decode_datasets,
    decode_projection,
    decode_series,
    modality_values,
    presentation_codes,
    read_dataset,
)

ROWS, COLS = 6, 8  # pydicom (rows, cols); our arrays are (X, Y) = (COLS, ROWS)
ROW_SPACING, COL_SPACING = 0.7, 0.9
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _base(sop_class: str, modality: str, stored: np.ndarray) -> Dataset:
    """A minimal greyscale image dataset holding ``stored`` ``(rows, cols)`` uint16/int16."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.SOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.SeriesInstanceUID = "1.2.3.4"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = int(stored.dtype.kind == "i")
    ds.PixelData = np.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<")).tobytes()
    return ds


def _ct_slice(
    values: np.ndarray,
    position: Sequence[float] | np.ndarray,
    *,
    instance: int,
    orientation: Sequence[float] = AXIAL,
    slope: float = 1.0,
    intercept: float = -1024.0,
) -> Dataset:
    ds = _base(CTImageStorage, "CT", values.astype(np.uint16))
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [ROW_SPACING, COL_SPACING]
    ds.SliceThickness = 99.0  # never used as spacing
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    return ds


def _save_and_read(datasets: Sequence[Dataset], tmp_path: Path) -> list[Dataset]:
    out = []
    for i, ds in enumerate(datasets):
        path = tmp_path / f"f{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(read_dataset(path))
    return out


def _slice_values(k: int) -> np.ndarray:
    """``(rows, cols)`` stored values identifying slice ``k`` and every pixel."""
    return 1000 + 100 * k + np.arange(ROWS * COLS).reshape(ROWS, COLS)


def _series(z: Sequence[float], instances: Sequence[int], tmp_path: Path) -> list[Dataset]:
    """Axial CT slices at ``z`` (LPS mm), slice ``k`` holding :func:`_slice_values` (k)."""
    slices = [
        _ct_slice(_slice_values(k), (-10.0, -20.0, zk), instance=inst)
        for k, (zk, inst) in enumerate(zip(z, instances, strict=True))
    ]
    return _save_and_read(slices, tmp_path)


def test_series_sorted_by_position_not_instance_number(tmp_path: Path) -> None:
    z = [0.0, 2.5, 5.0, 7.5, 10.0]
    datasets = _series(z, [4, 1, 5, 2, 3], tmp_path)  # instance numbers lie
    shuffled = [datasets[i] for i in (3, 0, 4, 2, 1)]
    (image,) = decode_datasets(shuffled)
    assert image.array.shape == (COLS, ROWS, 5)
    assert image.array.dtype == np.int16
    for k in range(5):
        np.testing.assert_array_equal(image.array[..., k], (_slice_values(k) - 1024).T)
    expected = np.eye(4)
    expected[:3, 0] = LPS_TO_RAS @ [COL_SPACING, 0, 0]
    expected[:3, 1] = LPS_TO_RAS @ [0, ROW_SPACING, 0]
    expected[:3, 2] = [0, 0, 2.5]  # from positions, not SliceThickness (99)
    expected[:3, 3] = LPS_TO_RAS @ [-10.0, -20.0, 0.0]
    np.testing.assert_allclose(image.affine, expected, atol=1e-6)
    assert image.flags == []
    np.testing.assert_array_equal(decode_series(shuffled).array, image.array)


def test_voxel_to_world_matches_each_slice_position(tmp_path: Path) -> None:
    """The affine maps voxel (i, j, k) to IPP_k + i * row_dir * dc + j * col_dir * dr."""
    orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # sagittal
    normal = np.cross(orientation[:3], orientation[3:])
    positions = [np.array([5.0, -3.0, 40.0]) + 1.5 * k * normal for k in range(3)]
    slices = [
        _ct_slice(_slice_values(k), positions[k], instance=3 - k, orientation=orientation)
        for k in range(3)
    ]
    (image,) = decode_datasets(_save_and_read(slices[::-1], tmp_path))
    i, j = 4, 2
    for k in range(3):
        lps = positions[k] + i * COL_SPACING * np.array(orientation[:3])
        lps = lps + j * ROW_SPACING * np.array(orientation[3:])
        np.testing.assert_allclose((image.affine @ [i, j, k, 1])[:3], LPS_TO_RAS @ lps, atol=1e-5)
        assert image.array[i, j, k] == _slice_values(k)[j, i] - 1024


def test_nonuniform_spacing_flagged(tmp_path: Path) -> None:
    (image,) = decode_datasets(_series([0.0, 2.5, 5.0, 8.0, 10.5], range(5), tmp_path))
    assert "nonuniform_spacing" in image.flags
    assert "missing_slices" not in image.flags


def test_missing_slice_flagged(tmp_path: Path) -> None:
    (image,) = decode_datasets(_series([0.0, 2.5, 5.0, 10.0, 12.5], range(5), tmp_path))
    assert {"missing_slices", "nonuniform_spacing"} <= set(image.flags)
    assert image.array.shape[-1] == 5  # not resampled: the gap stays a gap


def test_gantry_tilt_flagged_and_sheared_affine_kept(tmp_path: Path) -> None:
    shift = 2.5 * np.tan(np.radians(15.0))  # slice origins move along y as z increases
    slices = [
        _ct_slice(_slice_values(k), (0.0, k * shift, 2.5 * k), instance=k + 1) for k in range(4)
    ]
    (image,) = decode_datasets(_save_and_read(slices, tmp_path))
    assert "gantry_tilt" in image.flags
    assert "nonuniform_spacing" not in image.flags
    np.testing.assert_allclose(image.affine[:3, 2], LPS_TO_RAS @ [0.0, shift, 2.5], atol=1e-5)


def test_rescale_slope_intercept_gives_hu(tmp_path: Path) -> None:
    stored = np.arange(ROWS * COLS).reshape(ROWS, COLS) * 41 + 3  # odd values: x.5 at slope 0.5
    integral = _ct_slice(stored, (0, 0, 0), instance=1)
    scaled = _ct_slice(stored, (0, 0, 0), instance=1, slope=0.5, intercept=-1000.0)
    read_integral, read_scaled = _save_and_read([integral, scaled], tmp_path)
    (hu,) = decode_datasets([read_integral])
    (half,) = decode_datasets([read_scaled])
    assert hu.array.dtype == np.int16 and half.array.dtype == np.float32
    np.testing.assert_array_equal(hu.array, (stored - 1024).T)
    np.testing.assert_allclose(half.array, (stored * 0.5 - 1000.0).T)
    assert "single_slice" in hu.flags and hu.array.ndim == 2


def test_signed_12_bit_values_are_sign_extended(tmp_path: Path) -> None:
    """BitsStored 12, PixelRepresentation 1: 0x0FFB is -5 whatever the unused bits hold."""
    raw = np.array([[0x0FFB, 0xFFFB, 0x07FF, 0x0800, 0x3800, 0x0000]], dtype=np.uint16)
    ds = _ct_slice(raw, (0, 0, 0), instance=1, intercept=0.0)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
    (image,) = decode_datasets(_save_and_read([ds], tmp_path))
    np.testing.assert_array_equal(image.array[:, 0], [-5, -5, 2047, -2048, -2048, 0])


def test_unused_high_bits_are_masked(tmp_path: Path) -> None:
    """Unsigned 12-bit data with overlay bits set above bit 11 (PS3.5 8.1.1)."""
    raw = np.array([[0xF123, 0x0123, 0x1FFF]], dtype=np.uint16)
    ds = _ct_slice(raw, (0, 0, 0), instance=1, intercept=0.0)
    ds.BitsStored, ds.HighBit = 12, 11
    (image,) = decode_datasets(_save_and_read([ds], tmp_path))
    np.testing.assert_array_equal(image.array[:, 0], [0x123, 0x123, 0xFFF])


def _radiograph(photometric: str) -> Dataset:
    ramp = np.tile(np.arange(COLS, dtype=np.uint16) * 500, (ROWS, 1))  # increases along X
    ds = _base(ComputedRadiographyImageStorage, "CR", ramp)
    ds.PhotometricInterpretation = photometric
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    return ds


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    mono1, mono2 = _save_and_read(
        [_radiograph("MONOCHROME1"), _radiograph("MONOCHROME2")], tmp_path
    )
    (inverted,) = decode_datasets([mono1])
    (plain,) = decode_datasets([mono2])
    assert inverted.array.shape == (COLS, ROWS)
    assert inverted.array.dtype == plain.array.dtype == np.uint16
    assert inverted.scale == plain.scale == PRESENTATION_SCALE
    assert np.all(np.diff(plain.array[:, 0].astype(int)) >= 0)
    assert plain.array[-1, 0] == PRESENTATION_CODES
    np.testing.assert_array_equal(inverted.array, PRESENTATION_CODES - plain.array)
    np.testing.assert_array_equal(decode_projection(mono1).array, inverted.array)
    assert inverted.flags == []


def _reference_codes(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Presentation codes evaluated pixel by pixel (the documented chain, no lookup table)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    def voi(v: np.ndarray) -> np.ndarray:
        return np.asarray(apply_voi_lut(apply_modality_lut(v, ds), ds, index=0), np.float32)

    lo, hi = np.percentile(voi(stored[::4, ::4]), [0.5, 99.5])
    out = np.clip((voi(stored) - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)
    codes = np.rint(out * np.float32(65535)).astype(np.uint16)
    return 65535 - codes if ds.PhotometricInterpretation == "MONOCHROME1" else codes


def _voi_lut_item() -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [256, 0, 16]
    item.LUTData = [int(4000 * np.sqrt(i / 255)) for i in range(256)]
    return item


@pytest.mark.parametrize(
    ("dtype", "photometric", "voi"),
    [
        ("uint16", "MONOCHROME2", "none"),
        ("uint16", "MONOCHROME1", "window"),
        ("int16", "MONOCHROME2", "sigmoid"),
        ("int16", "MONOCHROME1", "lut"),
        ("uint8", "MONOCHROME2", "window"),
    ],
)
def test_presentation_lookup_table_equals_per_pixel_chain(
    dtype: str, photometric: str, voi: str
) -> None:
    """The 8/16-bit lookup-table path gives the codes of the per-pixel evaluation."""
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -3000), min(info.max, 4000)
    stored = rng.integers(lo, hi, (300, 260)).astype(dtype)  # > 65536 pixels: table path
    ds = _base(ComputedRadiographyImageStorage, "DX", stored)
    ds.PhotometricInterpretation = photometric
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    if voi in ("window", "sigmoid"):
        ds.WindowCenter, ds.WindowWidth = 1500, 3000
        if voi == "sigmoid":
            ds.VOILUTFunction = "SIGMOID"
    elif voi == "lut":
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.VOILUTSequence = DicomSequence([_voi_lut_item()])
    codes = presentation_codes(ds, stored)
    assert codes.dtype == np.uint16 and codes.shape == stored.shape
    np.testing.assert_array_equal(codes, _reference_codes(ds, stored))
    small = stored[:100, :100]  # <= 65536 pixels: evaluated per pixel
    np.testing.assert_array_equal(presentation_codes(ds, small), _reference_codes(ds, small))


@pytest.mark.parametrize(
    ("dtype", "low", "high", "slope", "intercept"),
    [
        ("uint16", 0, 4095, 1, -1024),
        ("uint16", 0, 65535, 1, -32768),  # wraps in int16, exact result
        ("int16", -2000, 2000, 3, 7),
        ("uint16", 30000, 40000, 1, 0),  # does not fit int16 without rescale: float32
        ("uint8", 0, 255, 1, 0),
    ],
)
def test_integer_modality_values_equal_pydicom(
    dtype: str, low: int, high: int, slope: int, intercept: int
) -> None:
    from pydicom.pixels import apply_modality_lut

    stored = np.random.default_rng(0).integers(low, high, (40, 30), endpoint=True).astype(dtype)
    stored.flat[:2] = (low, high)
    ds = Dataset()
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    got = modality_values(ds, stored)
    expected = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    fits = expected.min() >= -32768 and expected.max() <= 32767
    assert got.dtype == (np.int16 if fits else np.float32)
    np.testing.assert_array_equal(got.astype(np.float64), expected)


def _echo_series(tmp_path: Path, *, with_echo_numbers: bool) -> list[Dataset]:
    """2 echoes x 4 positions, instance numbers interleaved (slice-major)."""
    slices = []
    for k in range(4):
        for echo in (1, 2):
            ds = _ct_slice(_slice_values(k) + 10 * echo, (0.0, 0.0, 3.0 * k), instance=2 * k + echo)
            ds.Modality = "MR"
            if with_echo_numbers:
                ds.EchoNumbers = echo
            slices.append(ds)
    return _save_and_read(slices[::-1], tmp_path)


@pytest.mark.parametrize("with_echo_numbers", [True, False])
def test_4d_series_split_into_volumes(tmp_path: Path, with_echo_numbers: bool) -> None:
    """By EchoNumbers when present, else the n-th frame at a position goes to volume n."""
    images = decode_datasets(_echo_series(tmp_path, with_echo_numbers=with_echo_numbers))
    assert len(images) == 2
    for echo, image in zip((1, 2), images, strict=True):
        assert image.array.shape == (COLS, ROWS, 4)
        for k in range(4):
            expected = (_slice_values(k) + 10 * echo - 1024).T
            np.testing.assert_array_equal(image.array[..., k], expected)
        np.testing.assert_allclose(image.affine[:3, 2], [0, 0, 3.0])
        assert image.flags == []


def test_decode_series_refuses_4d(tmp_path: Path) -> None:
    with pytest.raises(DicomError) as err:
        decode_series(_echo_series(tmp_path, with_echo_numbers=True))
    assert err.value.reason == "inconsistent_geometry"


def test_incomplete_repeat_is_an_error(tmp_path: Path) -> None:
    datasets = _series([0.0, 2.5, 5.0, 5.0], range(4), tmp_path)
    with pytest.raises(DicomError) as err:
        decode_datasets(datasets)
    assert err.value.reason == "inconsistent_geometry"


def test_localizer_and_derived_flags(tmp_path: Path) -> None:
    ds = _ct_slice(_slice_values(0), (0, 0, 0), instance=1)
    ds.ImageType = ["DERIVED", "SECONDARY", "LOCALIZER"]
    (image,) = decode_datasets(_save_and_read([ds], tmp_path))
    assert {"localizer", "derived", "single_slice"} <= set(image.flags)


#: Frame order of the synthetic enhanced object: slice-major, and the temporal order
#: differs between slices, so "n-th frame at a position" (rule 4) would mix the volumes.
ENHANCED_ORDER = [(0, 0), (0, 1), (1, 1), (1, 0), (2, 0), (2, 1)]  # (slice k, time t)


def _enhanced(tmp_path: Path) -> Dataset:
    """Enhanced MR: 2 temporal positions x 3 slices, per-frame rescale slope ``t + k + 1``."""
    stored = np.stack([_slice_values(k) + 10 * t for k, t in ENHANCED_ORDER]).astype(np.uint16)
    ds = _base(EnhancedMRImageStorage, "MR", stored)
    ds.NumberOfFrames = 6
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    dims = []
    for pointer in (0x00209057, 0x00209128):  # In-Stack Position, Temporal Position Index
        item = Dataset()
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x00209111
        dims.append(item)
    ds.DimensionIndexSequence = DicomSequence(dims)
    shared = Dataset()
    shared.PlaneOrientationSequence = DicomSequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = list(AXIAL)
    shared.PixelMeasuresSequence = DicomSequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [ROW_SPACING, COL_SPACING]
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for k, t in ENHANCED_ORDER:
        item = Dataset()
        content = Dataset()
        content.DimensionIndexValues = [3 - k, t + 1]  # in-stack numbers run downwards
        item.FrameContentSequence = DicomSequence([content])
        item.PlanePositionSequence = DicomSequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, 4.0 * (2 - k)]
        item.PixelValueTransformationSequence = DicomSequence([Dataset()])
        item.PixelValueTransformationSequence[0].RescaleSlope = str(t + k + 1)
        item.PixelValueTransformationSequence[0].RescaleIntercept = "0"
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    return _save_and_read([ds], tmp_path)[0]


def test_enhanced_multiframe_split_by_dimension_index(tmp_path: Path) -> None:
    images = decode_datasets([_enhanced(tmp_path)])
    assert len(images) == 2
    for t, image in enumerate(images):
        assert image.array.shape == (COLS, ROWS, 3)
        for z in range(3):  # z index 0 is the lowest position, i.e. frame group k = 2
            expected = (_slice_values(2 - z) + 10 * t) * (t + (2 - z) + 1)
            np.testing.assert_array_equal(image.array[..., z], expected.T)
        np.testing.assert_allclose(image.affine[:3, 2], [0, 0, 4.0])
        np.testing.assert_allclose(image.affine[:3, 3], [0, 0, 0])


def test_enhanced_multiframe_without_geometry_is_unsupported(tmp_path: Path) -> None:
    ds = _enhanced(tmp_path)
    del ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    with pytest.raises(DicomError) as err:
        decode_datasets([ds])
    assert err.value.reason == "unsupported_multiframe"


@pytest.mark.parametrize("photometric", ["RGB", "PALETTE COLOR", "YBR_FULL"])
def test_colour_images_are_quarantined(tmp_path: Path, photometric: str) -> None:
    samples = 3 if photometric != "PALETTE COLOR" else 1
    stored = np.zeros((ROWS, COLS * samples), dtype=np.uint16)
    ds = _base(SecondaryCaptureImageStorage, "OT", stored)
    ds.Columns = COLS
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PlanarConfiguration = 0
    ds.PixelData = bytes(ROWS * COLS * samples)
    (read,) = _save_and_read([ds], tmp_path)
    for call in (
        lambda: check_image_object(read, header_only=True),
        lambda: decode_datasets([read]),
    ):
        with pytest.raises(DicomError) as err:
            call()
        assert err.value.reason == "colour_image"


def test_broken_files_raise_dicom_errors(tmp_path: Path) -> None:
    good = _ct_slice(_slice_values(0), (0, 0, 0), instance=1)
    good.save_as(tmp_path / "good.dcm", enforce_file_format=True)
    data = (tmp_path / "good.dcm").read_bytes()
    cases = {
        "empty.dcm": (b"", "empty_file"),
        "noise.dcm": (bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
                      "not_dicom"),
        "cut.dcm": (data[: len(data) - 40], "truncated_pixel_data"),
    }  # fmt: skip
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DicomError) as err:
            decode_datasets([read_dataset(tmp_path / name)])
        assert err.value.reason == reason, name
    with pytest.raises(DicomError):
        decode_datasets([])


def test_read_dataset_header_only_keeps_geometry(tmp_path: Path) -> None:
    ds = _ct_slice(_slice_values(0), (1.0, 2.0, 3.0), instance=1)
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=True)
    header = read_dataset(tmp_path / "a.dcm", header_only=True)
    assert "PixelData" not in header
    check_image_object(header, header_only=True)
    assert [float(v) for v in header.ImagePositionPatient] == [1.0, 2.0, 3.0]
    assert pydicom.dcmread(tmp_path / "a.dcm").Rows == ROWS


def test_jpeg2000_signedness_mismatch_is_corrected() -> None:
    """pydicom's J2K_pixelrep_mismatch: signed CT whose codestream says unsigned."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("J2K_pixelrep_mismatch.dcm", download=False)
    if path is None:
        pytest.skip("pydicom test file absent")
    ds = read_dataset(Path(str(path)))
    assert int(ds.PixelRepresentation) == 1 and int(ds.BitsStored) == 13
    (image,) = decode_datasets([ds])
    stored = decode_array(ds)
    assert stored.min() == -2000  # 6192 without the sign correction
    intercept = float(ds.get("RescaleIntercept", 0))
    slope = float(ds.get("RescaleSlope", 1))
    np.testing.assert_allclose(image.array, (stored * slope + intercept).T)


def test_mixed_orientations_become_separate_images(tmp_path: Path) -> None:
    """A localizer series with axial and sagittal planes: one image per orientation."""
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    slices = [
        _ct_slice(_slice_values(0), (0, 0, 0), instance=1),
        _ct_slice(_slice_values(1), (0, 0, 5), instance=2),
        _ct_slice(_slice_values(2), (3, 0, 0), instance=3, orientation=sagittal),
    ]
    for ds in slices:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    axial, sag = decode_datasets(_save_and_read(slices[::-1], tmp_path))
    assert axial.array.shape == (COLS, ROWS, 2) and sag.array.shape == (COLS, ROWS)
    assert "localizer" in axial.flags and {"localizer", "single_slice"} <= set(sag.flags)
    np.testing.assert_array_equal(sag.array, (_slice_values(2) - 1024).T)


def test_unexpected_header_errors_become_dicom_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Malformed headers surface as ValueError/TypeError deep in decoding: reason code."""
    import medssl.io.dicom.decode as dicom

    def broken(ds: Dataset) -> list[object]:
        raise TypeError("unexpected VM")

    monkeypatch.setattr(dicom, "_decode_single", broken)
    (ds,) = _save_and_read([_ct_slice(_slice_values(0), (0, 0, 0), instance=1)], tmp_path)
    with pytest.raises(DicomError) as err:
        decode_datasets([ds])
    assert err.value.reason == "malformed_header"
