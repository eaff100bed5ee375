"""Tests for medssl.demo: the seeded synthetic hospital-export generator."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from medssl.demo import (
    BROKEN_FILES,
    CT_STREAM,
    DemoSummary,
    XrayPlan,
    chest_phantom,
    ct_phantom,
    plan_xrays,
    stream_rng,
    write_demo_dataset,
    xray_stored_values,
)

SEED = 7
KW = dict(n_patients=6, images_per_patient=3, image_size=64, n_ct=2, ct_shape=(8, 32, 32))
PLAN_ARGS = (6, 3, 0.75, 0.4)  # n_patients, images_per_patient, label_fraction, abnormal_fraction


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary, list[XrayPlan]]:
    out = tmp_path_factory.mktemp("demo") / "data"
    summary = write_demo_dataset(out, seed=SEED, **KW)  # type: ignore[arg-type]
    return out, summary, plan_xrays(SEED, *PLAN_ARGS)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in _files(root)}  # fmt: skip


def _read_labels(root: Path) -> list[dict[str, str]]:
    with (root / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_counts_match_summary(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    out, summary, plans = demo
    assert len(_files(out / "xray")) == summary.n_xray_files == len(plans) == 18
    assert len({p.rel_path for p in plans}) == len(plans)
    assert len(list((out / "ct").iterdir())) == summary.n_ct_series == 2
    assert len(_files(out / "ct")) == summary.n_ct_files == 2 * 8
    assert sorted(p.name for p in (out / "nifti").iterdir()) == ["ct_0.nii.gz", "mr_0.nii.gz"]
    assert summary.n_nifti == 2
    assert sorted(p.name for p in (out / "broken").iterdir()) == sorted(BROKEN_FILES)
    assert summary.n_broken == len(BROKEN_FILES)
    assert len(_read_labels(out)) == summary.n_labelled == round(0.75 * 18)
    assert "SYNTHETIC" in (out / "README.txt").read_text()


def test_xray_pixels_equal_written_values(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    out, _, plans = demo
    syntaxes = set()
    for plan in plans:
        ds = pydicom.dcmread(out / plan.rel_path)
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        assert ds.file_meta.TransferSyntaxUID == plan.transfer_syntax
        np.testing.assert_array_equal(ds.pixel_array, xray_stored_values(SEED, plan, 64))
    assert {ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless} <= syntaxes


def test_xray_tags(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    out, summary, plans = demo
    sop_class = {
        "CR": ComputedRadiographyImageStorage,
        "DX": DigitalXRayImageStorageForPresentation,
    }
    studies = defaultdict(set)
    for plan in plans:
        ds = pydicom.dcmread(out / plan.rel_path, stop_before_pixels=True)
        assert ds.Modality == plan.modality and ds.SOPClassUID == sop_class[plan.modality]
        assert str(ds.PatientName) == plan.patient.name and ds.PatientName in summary.phi
        assert ds.PatientID in summary.phi and ds.PatientBirthDate in summary.phi
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert UID(uid).is_valid
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (16, 12, 0)
        assert ds.PhotometricInterpretation == plan.photometric
        assert ds.ViewPosition in ("PA", "AP") and ds.BurnedInAnnotation == "NO"
        assert "PixelSpacing" in ds or "ImagerPixelSpacing" in ds
        assert float(ds.WindowWidth) > 0 and "WindowCenter" in ds
        assert ("RescaleSlope" in ds) == (plan.rescale is not None)
        studies[ds.PatientID].add(ds.StudyInstanceUID)
    assert {p.photometric for p in plans} == {"MONOCHROME1", "MONOCHROME2"}
    assert {p.modality for p in plans} == {"CR", "DX"}
    assert all(1 <= len(s) <= 2 for s in studies.values()) and len(studies) == 6
    named = [p for p in plans if f"{p.patient.name}_{p.patient.patient_id}" in p.rel_path]
    assert named and any("." not in Path(p.rel_path).name for p in plans)
    assert len(summary.phi) == 3 * 6


def _bone_minus_lung(image: np.ndarray) -> float:
    """Mean of the mediastinum/spine strip minus mean of both mid-lung fields."""
    size = image.shape[0]
    rows = slice(int(0.3 * size), int(0.5 * size))
    centre = image[rows, int(0.48 * size) : int(0.52 * size) + 1].mean()
    left = image[rows, int(0.16 * size) : int(0.34 * size)].mean()
    right = image[rows, int(0.66 * size) : int(0.84 * size)].mean()
    return float(centre - (left + right) / 2)


def test_chest_phantom_contrast() -> None:
    for k in range(4):
        image = chest_phantom(stream_rng(0, 99, k), 96, abnormal=k % 2 == 1)
        assert image.shape == (96, 96) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0
        assert _bone_minus_lung(image) > 0.15
        assert image[:, :3].mean() < image[int(0.9 * 96), 40:56].mean()  # air darker than body


def test_monochrome1_inverts_to_bone_bright(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    out, _, plans = demo
    mono1 = [p for p in plans if p.photometric == "MONOCHROME1"]
    assert mono1
    for plan in mono1:
        ds = pydicom.dcmread(out / plan.rel_path)
        values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
        assert _bone_minus_lung(values) < 0  # stored polarity: bone dark
        low, high = values.min(), values.max()
        presented = (high - values) / (high - low)  # PS3.3 C.7.6.3.1.2 inversion
        assert _bone_minus_lung(presented) > 0.15


def test_lesion_is_an_opacity_inside_one_lung() -> None:
    for k in range(6):
        abnormal = chest_phantom(stream_rng(1, 99, k), 64, abnormal=True)
        normal = chest_phantom(stream_rng(1, 99, k), 64, abnormal=False)
        diff = abnormal.astype(np.float64) - normal
        assert diff.min() >= -1e-6 and diff.max() > 0.03
        cols = np.flatnonzero((diff > 1e-6).any(axis=0))
        assert cols.max() < 32 or cols.min() >= 32  # one lung only


def test_labels_are_ground_truth(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    out, _, plans = demo
    by_path = {p.rel_path: p for p in plans}
    rows = _read_labels(out)
    assert list(rows[0]) == ["path", "label"]
    for row in rows:
        assert (out / row["path"]).is_file() and "\\" not in row["path"]
        plan = by_path[row["path"]]
        label = row["label"] == "1"
        assert plan.labelled and label == plan.abnormal
        pixels = pydicom.dcmread(out / row["path"]).pixel_array
        flipped = dataclasses.replace(plan, abnormal=not label)
        assert not np.array_equal(pixels, xray_stored_values(SEED, flipped, 64))
    assert {r["label"] for r in rows} == {"0", "1"}
    assert len({by_path[r["path"]].patient_index for r in rows}) == 6  # every patient labelled


def test_abnormal_status_by_patient() -> None:
    plans = plan_xrays(3, 20, 4, 0.5, 0.4)
    status = defaultdict(list)
    for plan in plans:
        status[plan.patient_index].append(plan.abnormal)
    abnormal_patients = [p for p, flags in status.items() if any(flags)]
    assert len(abnormal_patients) == 8
    assert sum(sum(f) for f in status.values()) >= 0.7 * 8 * 4


def _ct_series(out: Path) -> dict[str, list[pydicom.FileDataset]]:
    series: dict[str, list[pydicom.FileDataset]] = defaultdict(list)
    for path in _files(out / "ct"):
        ds = pydicom.dcmread(path)
        series[path.parent.name].append(ds)
    return series


def test_ct_series_geometry_and_hu(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    out, _, _ = demo
    series = _ct_series(out)
    for i in range(2):
        (slices,) = [v for k, v in series.items() if k.endswith(f"_CT{i + 1}")]
        assert len({ds.SeriesInstanceUID for ds in slices}) == 1
        assert all(ds.SOPClassUID == CTImageStorage for ds in slices)
        iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        ordered = sorted(slices, key=lambda ds: float(np.dot(ds.ImagePositionPatient, normal)))
        assert ordered != slices  # file-name order is not spatial order
        positions = np.array([ds.ImagePositionPatient for ds in ordered], dtype=float)
        np.testing.assert_allclose(np.diff(positions @ normal), 2.5)
        np.testing.assert_allclose(positions[:, :2] - positions[0, :2], 0.0)
        for ds in ordered:
            np.testing.assert_allclose(ds.ImageOrientationPatient, iop)
            np.testing.assert_allclose(ds.PixelSpacing, [0.8, 0.8])
            assert (ds.RescaleSlope, ds.RescaleIntercept) == (1, -1024)
        hu = np.stack([apply_modality_lut(ds.pixel_array, ds) for ds in ordered])
        expected = ct_phantom(stream_rng(SEED, CT_STREAM, i), (8, 32, 32))
        np.testing.assert_array_equal(hu, expected)
        assert expected.min() >= -1024 and (expected < -700).any() and (expected > 500).any()


def test_ct_nifti_matches_dicom(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    out, _, _ = demo
    (slices,) = [v for k, v in _ct_series(out).items() if k.endswith("_CT1")]
    ordered = sorted(slices, key=lambda ds: float(ds.ImagePositionPatient[2]))
    first, last = (
        np.array(ds.ImagePositionPatient, dtype=float) for ds in (ordered[0], ordered[-1])
    )
    iop = np.array(ordered[0].ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in ordered[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = iop[:3] * dc, iop[3:] * dr
    lps[:3, 2], lps[:3, 3] = (last - first) / (len(ordered) - 1), first
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    image = nib.load(out / "nifti" / "ct_0.nii.gz")
    assert isinstance(image, nib.Nifti1Image)
    np.testing.assert_allclose(image.affine, ras, atol=1e-4)
    hu = np.stack([apply_modality_lut(ds.pixel_array, ds) for ds in ordered])
    np.testing.assert_array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), hu)
    assert image.header.get_xyzt_units()[0] == "mm"
    mr = nib.load(out / "nifti" / "mr_0.nii.gz")
    assert isinstance(mr, nib.Nifti1Image)
    assert mr.ndim == 3 and np.asarray(mr.dataobj).std() > 0


def test_same_seed_same_bytes_other_seed_differs(
    demo: tuple[Path, DemoSummary, list[XrayPlan]], tmp_path: Path
) -> None:
    out, summary, _ = demo
    again = write_demo_dataset(tmp_path / "again", seed=SEED, **KW)  # type: ignore[arg-type]
    assert again == summary
    assert _hashes(tmp_path / "again") == _hashes(out)
    other = write_demo_dataset(tmp_path / "other", seed=SEED + 1, **KW)  # type: ignore[arg-type]
    assert other.phi != summary.phi
    assert not set(_hashes(tmp_path / "other").values()) & set(_hashes(out).values()) - {
        hashlib.sha256(b"").hexdigest(),
        hashlib.sha256((out / "broken" / "export_log.txt").read_bytes()).hexdigest(),
    }


def test_broken_files_fail_as_described(demo: tuple[Path, DemoSummary, list[XrayPlan]]) -> None:
    broken = demo[0] / "broken"
    assert (broken / "empty.dcm").stat().st_size == 0
    for name in ("empty.dcm", "random_bytes.dcm", "export_log.txt"):
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(broken / name)
    truncated = pydicom.dcmread(broken / "truncated.dcm")
    with pytest.raises(ValueError, match="less than expected"):
        _ = truncated.pixel_array
    sr = pydicom.dcmread(broken / "no_pixel_data.dcm")
    assert sr.Modality == "SR" and "PixelData" not in sr
    burned = pydicom.dcmread(broken / "burned_in.dcm")
    assert burned.BurnedInAnnotation == "YES" and burned.pixel_array.shape == (64, 64)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label_fraction"):
        write_demo_dataset(tmp_path / "a", label_fraction=1.5)
    with pytest.raises(ValueError, match="image_size"):
        write_demo_dataset(tmp_path / "b", image_size=8)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        write_demo_dataset(tmp_path / "c")
