"""NIfTI read/write, 4D split, canonical orientation and MONAI resampling."""

from __future__ import annotations

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
