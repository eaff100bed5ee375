"""NIfTI read/write, 4D split, canonical orientation and MONAI resampling."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medssl.io.nifti import (
    NiftiError,
    axcodes,
    read_nifti,
    resample,
    split_4d,
    to_canonical,
    write_nifti,
)


def test_round_trip_is_exact_and_deterministic(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(5, 4, 3)).astype(np.float32)
    affine = np.array([[-0.8, 0, 0, 10], [0, -0.8, 0, 5], [0, 0, 2.5, -30], [0, 0, 0, 1]])
    write_nifti(tmp_path / "a.nii.gz", data, affine)
    write_nifti(tmp_path / "b.nii.gz", data, affine)
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()
    got, got_affine = read_nifti(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(got, data)
    np.testing.assert_allclose(got_affine, affine)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left
    header = nib.load(tmp_path / "a.nii.gz").header
    assert int(header["sform_code"]) == 1 and header["descrip"].tobytes().strip(b"\0") == b""


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["int16", "float32", "uint8"])
def test_single_write_gives_nibabel_save_bytes(
    tmp_path: Path, suffix: str, order: str, dtype: str
) -> None:
    """The one-piece voxel write gives nibabel.save's bytes (gzip: once decompressed)."""
    data = np.asarray(
        np.random.default_rng(1).integers(0, 200, (7, 5, 3)), dtype=dtype, order=order
    )
    affine = np.array([[-0.7, 0, 0, 3], [0, 0.9, 0, -4], [0, 0, 1.5, 8], [0, 0, 0, 1]])
    write_nifti(tmp_path / f"ours{suffix}", data, affine)
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, tmp_path / f"nibabel{suffix}")
    ours = (tmp_path / f"ours{suffix}").read_bytes()
    theirs = (tmp_path / f"nibabel{suffix}").read_bytes()
    if suffix == ".nii.gz":
        assert ours[3] & 0x08 == 0 and ours[4:8] == b"\0\0\0\0"  # no FNAME, mtime 0
        ours, theirs = gzip.decompress(ours), gzip.decompress(theirs)
    assert ours == theirs


def test_scaled_codes_read_back_as_values(tmp_path: Path) -> None:
    codes = np.array([[0, 65535, 32768], [1, 2, 3]], dtype=np.uint16).T
    write_nifti(tmp_path / "s.nii", codes, np.eye(4), scale=1 / 65535)
    img = nib.load(tmp_path / "s.nii")
    np.testing.assert_array_equal(np.asarray(img.dataobj.get_unscaled()), codes)
    values, _ = read_nifti(tmp_path / "s.nii")
    np.testing.assert_allclose(values, codes / 65535, rtol=1e-6)


def test_bad_images_get_reasons(tmp_path: Path) -> None:
    nan = np.ones((4, 4, 2), np.float32)
    nan[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(tmp_path / "nan.nii"))
    nib.save(nib.Nifti1Image(np.ones((40, 40, 40), np.int16), np.eye(4)), str(tmp_path / "big.nii"))
    nib.save(
        nib.Nifti1Image(np.ones((2, 2, 2, 2, 2), np.int16), np.eye(4)), str(tmp_path / "5d.nii")
    )
    (tmp_path / "junk.nii").write_bytes(b"\0" * 100)
    cases = {"nan.nii": "non_finite", "5d.nii": "unsupported_geometry", "junk.nii": "unreadable"}
    for name, reason in cases.items():
        with pytest.raises(NiftiError) as err:
            read_nifti(tmp_path / name)
        assert err.value.reason == reason, name
    with pytest.raises(NiftiError) as err:
        read_nifti(tmp_path / "big.nii", max_voxels=1000)
    assert err.value.reason == "resource_limit"


def test_split_4d_gives_volumes_in_order() -> None:
    data = np.arange(2 * 2 * 2 * 3).reshape(2, 2, 2, 3)
    vols = split_4d(data)
    assert len(vols) == 3 and all(v.shape == (2, 2, 2) for v in vols)
    np.testing.assert_array_equal(vols[2], data[..., 2])
    assert split_4d(data[..., 0])[0] is not None


def test_to_canonical_matches_nibabel() -> None:
    data = np.random.default_rng(1).normal(size=(4, 5, 6)).astype(np.float32)
    affine = np.array([[0, 0, -2.0, 10], [-1.0, 0, 0, 3], [0, 3.0, 0, -4], [0, 0, 0, 1]])
    ref = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    out, out_affine = to_canonical(data, affine)
    np.testing.assert_array_equal(out, np.asarray(ref.dataobj))
    np.testing.assert_allclose(out_affine, ref.affine)
    assert axcodes(out_affine) == "RAS" and axcodes(affine) == "PSL"
    flat = np.zeros((3, 4), np.float32)
    assert to_canonical(flat, affine)[0] is flat  # 2D images keep their display orientation


def test_resample_spacing_and_size_update_the_affine() -> None:
    data = np.zeros((9, 9, 5), np.int16)
    data[4, 4, 2] = 1000
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    out, out_affine = resample(data, affine, spacing=(2.0, 2.0, 2.0))
    assert out.dtype == np.int16 and out.shape == (5, 5, 5)
    np.testing.assert_allclose(np.diag(out_affine)[:3], [2.0, 2.0, 2.0])
    peak = np.unravel_index(np.argmax(out), out.shape)
    np.testing.assert_allclose(out_affine @ [*peak, 1], affine @ [4, 4, 2, 1])
    small, small_affine = resample(data.astype(np.float32), affine, size=(3, 3, 5))
    assert small.shape == (3, 3, 5)
    np.testing.assert_allclose(np.diag(small_affine)[:3], [3.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="exactly one"):
        resample(data, affine)
