"""medssl.io.dicom against real data: dcm2niix references, lossless codecs, broken files.

Data: ``../shared/data/conformance`` (see its README.md); every test skips when absent.

How a dcm2niix reference is compared (the rule):

* dcm2niix writes the voxel grid in its own order. It always reverses the row axis
  (``flipY`` in nii_dicom_batch.cpp, so that viewers that draw NIfTI bottom-up do not show
  a mirrored image): its Y index ``j`` is our ``ny - 1 - j``. For the Philips enhanced field
  map it also reverses X (observed in the reference; the result is an in-plane rotation by
  180 degrees). Such an index flip ``F`` is harmless as long as both files put the same
  value at the same RAS point, so the test requires, for the flip ``F`` named per data set,
  ``A_ref == A_ours @ F`` within 1e-3 mm and ``ref == np.flip(ours, flipped_axes)`` voxel for
  voxel.
* Values: dcm2niix keeps the stored integers and scales with scl_slope/scl_inter. Our
  reader writes modality values (PS3.3 C.11.1 / C.7.6.16.2.9: ``stored * RescaleSlope +
  RescaleIntercept``). Without rescale (the Siemens data) both are the stored integers.
  For Philips, dcm2niix's default ``-p y`` writes "precise" values ``FP = DV / (RS * SS)``
  (DV the display value, RS the RescaleSlope, SS the private ScaleSlope 2005,100E; dcm2niix
  Philips/README), so the test compares our DV with ``FP * RS * SS``, and also checks that
  ``(DV - RI) / RS`` recovers dcm2niix's unscaled integers exactly.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medssl.io.dicom import (
    PRESENTATION_SCALE,
    DecodedImage,
    DicomError,
    check_image_object,
    decode_array,
    decode_datasets,
    read_dataset,
    siemens_csa_header,
)

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "conformance"
TS = CONFORMANCE / "dcm_qa_ts"
ENH = CONFORMANCE / "dcm_qa_enh"
PYDICOM_DATA = CONFORMANCE / "pydicom_data" / "data"

pytestmark = pytest.mark.realdata


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"conformance data absent: {path.name}")
    return path


def _decode_file(path: Path) -> list[DecodedImage]:
    ds = read_dataset(path)
    check_image_object(ds)
    return decode_datasets([ds])


def _load(path: Path) -> nib.Nifti1Image:
    img = nib.load(_need(path))
    assert isinstance(img, nib.Nifti1Image)
    return img


def _flip(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """``(4, 4)`` voxel-index map reversing ``axes``: ``i -> n - 1 - i``."""
    f = np.eye(4)
    for ax in axes:
        f[ax, ax], f[ax, 3] = -1.0, shape[ax] - 1
    return f


def _assert_same_grid(image: DecodedImage, ref: nib.Nifti1Image, axes: tuple[int, ...]) -> None:
    assert image.array.shape == ref.shape[:3]
    np.testing.assert_allclose(image.affine @ _flip(image.array.shape, axes), ref.affine, atol=1e-3)


# --------------------------------------------------------------------------- dcm_qa_ts


@pytest.mark.parametrize("series", range(1, 10))
def test_transfer_syntaxes_match_dcm2niix(series: int) -> None:
    """One Siemens mosaic (64x64x35) in 9 transfer syntaxes, all decodable here."""
    images = _decode_file(_need(TS / "In" / f"{series}.dcm"))
    ref = _load(TS / "Ref" / f"{series}.nii")
    assert len(images) == 1
    (image,) = images
    _assert_same_grid(image, ref, axes=(1,))
    np.testing.assert_array_equal(np.flip(image.array, 1), np.asarray(ref.dataobj))
    assert image.flags == []


def test_csa_header_parser_agrees_with_nibabel() -> None:
    import pydicom

    ds = pydicom.dcmread(_need(TS / "In" / "1.dcm"), stop_before_pixels=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom warns that it is experimental
        from nibabel.nicom import csareader

    reference = csareader.get_csa_header(ds)
    ours = siemens_csa_header(ds)
    assert int(ours["NumberOfImagesInMosaic"][0]) == csareader.get_n_mosaic(reference) == 35
    np.testing.assert_allclose(
        [float(v) for v in ours["SliceNormalVector"]], csareader.get_slice_normal(reference)
    )


# --------------------------------------------------------------------------- dcm_qa_enh


def test_siemens_xa10_enhanced_matches_dcm2niix() -> None:
    """4 enhanced files x 6 frames: one volume per file, ordered by acquisition."""
    files = [_need(ENH / "In" / "Siemens" / "XA10" / f"6_{t}.dcm") for t in range(1, 5)]
    ref = _load(ENH / "Ref" / "Siemens_REST1_w_SMS_PF7-8_6.nii")  # (64, 64, 6, 4)
    images = decode_datasets([read_dataset(f) for f in reversed(files)])
    assert len(images) == 4
    data = np.asarray(ref.dataobj)
    for t, image in enumerate(images):
        _assert_same_grid(image, ref, axes=(1,))
        np.testing.assert_array_equal(np.flip(image.array, 1), data[..., t])


def _philips_scaling(name: str) -> tuple[float, float, float]:
    """``(RS, RI, SS)`` of the Philips volume ``name`` from the DICOM per-frame groups."""
    import pydicom

    ds = pydicom.dcmread(ENH / "In" / "Philips" / "IM_0027_fMAP.dcm", stop_before_pixels=True)
    frame = ds.PerFrameFunctionalGroupsSequence[0 if name == "e1" else 32]
    pvt = frame.PixelValueTransformationSequence[0]
    private = frame[0x2005, 0x140F][0]
    return (
        float(pvt.RescaleSlope),
        float(pvt.RescaleIntercept),
        float(private[0x2005, 0x100E].value),
    )


def test_philips_enhanced_field_map_matches_dcm2niix() -> None:
    """64 frames = magnitude + field map (Hz), split by DimensionIndexValues."""
    images = _decode_file(_need(ENH / "In" / "Philips" / "IM_0027_fMAP.dcm"))
    assert len(images) == 2
    for image, name in zip(images, ("e1", "e2_fieldmaphz"), strict=True):
        path = ENH / "Ref" / f"Philips_WIP_B0_NS_801_{name}.nii"
        if not path.exists():
            continue
        ref = _load(path)
        _assert_same_grid(image, ref, axes=(0, 1))
        ours = np.flip(image.array, (0, 1)).astype(np.float64)
        rs, ri, ss = _philips_scaling(name)
        unscaled = ref.dataobj.get_unscaled()  # type: ignore[attr-defined]
        np.testing.assert_array_equal(np.rint((ours - ri) / rs), unscaled)
        precise = np.asarray(ref.dataobj, dtype=np.float64)
        np.testing.assert_allclose(ours, precise * rs * ss, rtol=1e-5, atol=1e-2)
        units = json.loads(path.with_suffix(".json").read_text()).get("Units")
        assert (units == "Hz") == (name == "e2_fieldmaphz")


# --------------------------------------------------------------------------- pydicom-data

LOSSLESS_PAIRS = [
    ("693_UNCR.dcm", "693_J2KR.dcm"),
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("MR2_UNCI.dcm", "MR2_J2KI.dcm"),  # UNCI: the lossy J2KI, stored decompressed
    ("emri_small.dcm", "emri_small_RLE.dcm"),
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
]


@pytest.mark.parametrize(("plain", "coded"), LOSSLESS_PAIRS)
def test_lossless_pairs_decode_identically(plain: str, coded: str) -> None:
    a, b = (read_dataset(_need(PYDICOM_DATA / name)) for name in (plain, coded))
    stored_a, stored_b = decode_array(a), decode_array(b)
    assert stored_a.shape == stored_b.shape
    np.testing.assert_array_equal(stored_a.astype(np.int64), stored_b.astype(np.int64))
    if int(a.get("NumberOfFrames", 1) or 1) == 1:
        (image_a,), (image_b,) = decode_datasets([a]), decode_datasets([b])
        np.testing.assert_array_equal(image_a.array, image_b.array)
        np.testing.assert_allclose(image_a.affine, image_b.affine)


EXPECTED_REASONS = {
    "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated_pixel_data",
    "emri_small.dcm": "unsupported_multiframe",  # enhanced MR stripped of its frame geometry
    "liver.dcm": "non_image_object",  # segmentation
    "liver_nonbyte_aligned_rle.dcm": "non_image_object",
    "OBXXXX1A.dcm": "colour_image",  # palette colour ultrasound
    "OT-PAL-8-face.dcm": "colour_image",  # palette colour, no preamble
    "SC_rgb.dcm": "colour_image",
    "US1_J2KR.dcm": "colour_image",  # YBR_RCT
    "JLSL_RGB_ILV0.dcm": "colour_image",  # no preamble, JPEG-LS colour
}


def test_every_file_decodes_or_raises_dicom_error() -> None:
    """No exception other than DicomError escapes, and the known failures have reasons."""
    files = sorted(_need(PYDICOM_DATA).glob("*.dcm"))
    outcome: dict[str, str] = {}
    for path in files:
        try:
            images = _decode_file(path)
        except DicomError as err:
            assert err.reason and err.message
            outcome[path.name] = err.reason
            continue
        assert images and all(np.isfinite(im.array).all() for im in images), path.name
        outcome[path.name] = "ok"
    for name, reason in EXPECTED_REASONS.items():
        assert outcome[name] == reason, name
    decoded = {"693_J2KR.dcm", "MR2_J2KR.dcm", "RG1_J2KI.dcm", "eCT_Supplemental.dcm"}
    assert all(outcome[name] == "ok" for name in decoded)


def test_twelve_bit_jpeg_extended_without_a_decoder_is_decode_failed() -> None:
    """pydicom's JPEG-lossy.dcm (JPEG Extended, 12 bit): pylibjpeg-libjpeg rejects its
    codestream (misplaced marker) and GDCM 3.2 has no 12-bit JPEG Extended; the file must
    come out as ``decode_failed``, never as an exception."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPEG-lossy.dcm")
    assert path is not None  # shipped inside pydicom
    with pytest.raises(DicomError) as err:
        _decode_file(Path(path))
    assert err.value.reason == "decode_failed"


def test_enhanced_ct_two_frames_form_one_volume() -> None:
    (image,) = _decode_file(_need(PYDICOM_DATA / "eCT_Supplemental.dcm"))
    assert image.array.shape == (512, 512, 2)
    assert np.linalg.norm(image.affine[:3, 2]) == pytest.approx(10.0)
    assert "derived" in image.flags


def test_monochrome1_chest_radiograph_has_bright_bone() -> None:
    """RG1_J2KI: CR chest PA, MONOCHROME1, 15 bit, JPEG 2000 (checked visually as PNG).

    In presentation polarity the mediastinum/spine column in the middle of the image is
    brighter than the lung fields on either side; without MONOCHROME1 inversion it is the
    darkest band.
    """
    (image,) = _decode_file(_need(PYDICOM_DATA / "RG1_J2KI.dcm"))
    assert image.array.shape == (1841, 1955)  # (X, Y) = (Columns, Rows)
    assert image.array.dtype == np.uint16 and image.scale == PRESENTATION_SCALE
    values = image.array * image.scale
    assert values.min() >= 0.0 and values.max() <= 1.0
    nx, ny = values.shape
    chest = values[:, int(0.3 * ny) : int(0.6 * ny)]  # rows through hila and heart

    def band(lo: float, hi: float) -> float:
        return float(chest[int(lo * nx) : int(hi * nx)].mean())

    centre, left, right = band(0.45, 0.55), band(0.15, 0.33), band(0.67, 0.85)
    assert centre > left + 0.15 and centre > right + 0.15
    assert {"derived", "spacing_unknown"} <= set(image.flags)  # PixelSpacing is 0\0 here
