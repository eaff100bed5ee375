"""Series whose UIDs were blanked: identity from other attributes, one volume per series."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset

from medssl.demo import write_demo_dataset
from medssl.ingest import ingest
from medssl.io.identity import instance_identity, series_identity, study_identity
from medssl.io.pseudonym import DEMO_SECRET

BLANKED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def _slice(series_number: int, position: float, uid: str = "") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{series_number}.{int(position)}"
    ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.SOPInstanceUID = uid, "", ""
    ds.PatientID, ds.StudyDate, ds.StudyTime, ds.Modality = "P1", "20260101", "101010", "CT"
    ds.SeriesNumber, ds.ImageType = series_number, ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, position]
    ds.Rows = ds.Columns = 8
    ds.PixelSpacing = [0.5, 0.5]
    return ds


def test_blank_uids_fall_back_to_series_attributes() -> None:
    a0, a1, b0 = _slice(2, 0.0), _slice(2, 2.5), _slice(3, 0.0)
    assert series_identity(a0, "x/1.dcm") == series_identity(a1, "x/2.dcm")
    assert series_identity(a0, "x/1.dcm")[1] is True
    assert series_identity(a0, "x/1.dcm") != series_identity(b0, "x/3.dcm")  # SeriesNumber
    assert series_identity(a0, "x/1.dcm") != series_identity(a1, "y/2.dcm")  # folder
    tilted = _slice(2, 5.0)
    tilted.ImageOrientationPatient = [1, 0, 0, 0, 0.98, 0.2]
    assert series_identity(tilted, "x/4.dcm") != series_identity(a0, "x/1.dcm")
    assert series_identity(_slice(2, 0, uid="1.2.3"), "x/1.dcm") == ("1.2.3", False)
    assert study_identity(a0, "x/1.dcm") == study_identity(b0, "x/3.dcm")
    assert instance_identity(a0, "x/1.dcm") == ("1.2.3.2.0", True)
    del a0.file_meta.MediaStorageSOPInstanceUID
    assert instance_identity(a0, "x/1.dcm") == ("uidless-instance|x/1.dcm", True)


def _ct_export(root: Path) -> list[Path]:
    write_demo_dataset(root, seed=3, n_patients=2, image_size=48, n_ct=2, ct_shape=(12, 32, 32))
    return sorted(p for p in (root / "ct").rglob("*") if p.is_file())


def _blank_copy(files: list[Path], dest: Path) -> None:
    """Every slice of both CT series in one folder, UIDs emptied, names shuffled."""
    dest.mkdir(parents=True)
    names = [f"IM{i:04d}" for i in range(len(files))]
    random.Random(0).shuffle(names)
    for path, name in zip(files, names, strict=True):
        ds = pydicom.dcmread(path)
        for keyword in BLANKED:
            setattr(ds, keyword, "")
        ds.save_as(dest / name)


def _volumes(out: Path) -> pd.DataFrame:
    """CT rows of a manifest, ordered by the mean of their voxels (pairs volumes up)."""
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    ct = manifest[manifest["modality"] == "CT"].copy()
    ct["mean"] = [float(nib.load(out / p).get_fdata().mean()) for p in ct["nifti"]]
    return ct.sort_values("mean").reset_index(drop=True)


def test_blank_uid_series_ingest_as_the_same_volumes(tmp_path: Path) -> None:
    files = _ct_export(tmp_path / "demo")
    _blank_copy(files, tmp_path / "blank" / "export")
    shutil.copytree(tmp_path / "demo" / "ct", tmp_path / "orig" / "ct")
    ingest([tmp_path / "orig"], tmp_path / "out_orig", secret=DEMO_SECRET, workers=1)
    ingest([tmp_path / "blank"], tmp_path / "out_blank", secret=DEMO_SECRET, workers=1)
    orig, blank = _volumes(tmp_path / "out_orig"), _volumes(tmp_path / "out_blank")
    assert len(orig) == len(blank) == 2 and (blank["spatial_dims"] == "3").all()
    assert all("uid_missing" in f.split(";") for f in blank["qc_flags"])
    assert blank["series_key"].nunique() == 2
    assert orig["mean"].nunique() == 2  # two different volumes, so the pairing is sound
    for a, b in zip(orig.itertuples(), blank.itertuples(), strict=True):
        x = nib.load(tmp_path / "out_orig" / a.nifti)
        y = nib.load(tmp_path / "out_blank" / b.nifti)
        np.testing.assert_array_equal(np.asarray(x.dataobj), np.asarray(y.dataobj))
        np.testing.assert_allclose(x.affine, y.affine)


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix not installed")
def test_blank_uid_series_match_dcm2niix_voxel_for_voxel(tmp_path: Path) -> None:
    files = _ct_export(tmp_path / "demo")
    export = tmp_path / "blank" / "export"
    _blank_copy(files, export)
    ingest([tmp_path / "blank"], tmp_path / "out", secret=DEMO_SECRET, workers=1)
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["dcm2niix", "-z", "n", "-o", str(ref), "-f", "%s_%j", str(export)],
                   check=True, capture_output=True)  # fmt: skip
    refs = sorted(ref.glob("*.nii"), key=lambda p: float(nib.load(p).get_fdata().mean()))
    ours = _volumes(tmp_path / "out")
    assert len(refs) == len(ours) == 2  # dcm2niix also finds exactly two series
    for path, row in zip(refs, ours.itertuples(), strict=True):
        theirs = nib.as_closest_canonical(nib.load(path))
        mine = nib.as_closest_canonical(nib.load(tmp_path / "out" / row.nifti))
        np.testing.assert_array_equal(theirs.get_fdata(), mine.get_fdata())
        np.testing.assert_allclose(theirs.affine, mine.affine, atol=1e-3)
