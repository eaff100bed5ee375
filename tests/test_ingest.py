"""Ingestion of the demo export: accounting, quarantine, pixels, geometry, no PHI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from medssl.demo import DemoSummary
from medssl.ingest import discover, ingest
from medssl.io.dicom import PRESENTATION_SCALE, presentation_codes, presentation_image
from medssl.io.pseudonym import DEMO_SECRET


def test_every_file_is_accounted_for(
    demo_export: tuple[Path, DemoSummary], ingested: tuple[Path, dict[str, int]]
) -> None:
    root, _ = demo_export
    out, summary = ingested
    n_files = sum(1 for p in root.rglob("*") if p.is_file())
    assert summary["files_seen"] == n_files
    quarantine = pd.read_csv(out / "quarantine.csv")
    skipped = pd.read_csv(out / "skipped.csv")
    manifest = pd.read_csv(out / "manifest.csv")
    assert summary["files_quarantined"] == len(quarantine)
    assert summary["files_skipped"] == len(skipped)
    assert summary["files_ingested"] == manifest["n_files"].sum()
    assert n_files == manifest["n_files"].sum() + len(quarantine) + len(skipped)


def test_broken_files_are_quarantined_with_reasons(ingested: tuple[Path, dict[str, int]]) -> None:
    out, _ = ingested
    reasons = set(pd.read_csv(out / "quarantine.csv")["reason"])
    assert {"empty_file", "not_dicom", "non_image_object", "burned_in_annotation"} <= reasons
    assert reasons & {"decode_failed", "truncated_pixel_data"}


def test_manifest_rows_and_nifti(
    demo_export: tuple[Path, DemoSummary], ingested: tuple[Path, dict[str, int]]
) -> None:
    _, demo = demo_export
    out, summary = ingested
    manifest = pd.read_csv(out / "manifest.csv")
    assert summary["images_2d"] == demo.n_xray_files
    assert summary["volumes_3d"] == demo.n_ct_series + demo.n_nifti
    assert manifest["image_id"].is_unique
    for row in manifest.itertuples():
        img = nib.load(out / row.nifti)
        assert "x".join(map(str, img.shape)) == row.shape
    xr = manifest[manifest["spatial_dims"] == 2]
    data = nib.load(out / xr.iloc[0]["nifti"]).get_fdata()
    assert data.min() >= 0.0 and data.max() <= 1.0


def test_radiograph_pixels_match_the_dicom(
    demo_export: tuple[Path, DemoSummary], ingested: tuple[Path, dict[str, int]]
) -> None:
    """Each ingested radiograph equals the presentation image of its source, transposed."""
    root, _ = demo_export
    out, _ = ingested
    manifest = pd.read_csv(out / "manifest.csv").set_index("source_sha256")
    from medssl.ingest import sha256_file

    checked = 0
    for path in sorted((root / "xray").rglob("*")):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(path)
        row = manifest.loc[sha256_file(path)]
        img = nib.load(out / row["nifti"])
        codes = np.asarray(img.dataobj.get_unscaled())
        np.testing.assert_array_equal(codes, presentation_codes(ds, ds.pixel_array).T)
        assert img.dataobj.slope == np.float32(PRESENTATION_SCALE) and img.dataobj.inter == 0
        values = np.asarray(img.dataobj)
        expected = presentation_image(ds, ds.pixel_array).T
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-7)
        checked += 1
    assert checked > 10


def test_monochrome1_is_inverted_so_bone_is_bright(
    demo_export: tuple[Path, DemoSummary],
) -> None:
    root, _ = demo_export
    seen = {"MONOCHROME1": 0, "MONOCHROME2": 0}
    for path in sorted((root / "xray").rglob("*")):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(path)
        img = presentation_image(ds, ds.pixel_array)
        rows, cols = img.shape
        spine = img[rows // 3 : rows // 2, cols // 2 - 2 : cols // 2 + 2].mean()
        lung = img[rows // 3 : rows // 2, cols // 4 - 2 : cols // 4 + 2].mean()
        assert spine > lung, ds.PhotometricInterpretation
        seen[ds.PhotometricInterpretation] += 1
    assert min(seen.values()) > 0


def test_ct_series_becomes_a_volume_in_hu(ingested: tuple[Path, dict[str, int]]) -> None:
    out, _ = ingested
    manifest = pd.read_csv(out / "manifest.csv")
    ct = manifest[(manifest["modality"] == "CT") & (manifest["spatial_dims"] == 3)]
    assert len(ct) == 1 and ct.iloc[0]["n_files"] > 2
    img = nib.load(out / ct.iloc[0]["nifti"])
    data = np.asarray(img.dataobj)
    assert data.min() < -900  # air in HU after RescaleIntercept
    assert data.max() > 300  # bone
    zooms = img.header.get_zooms()
    assert zooms[2] == pytest.approx(2.5, abs=0.01)  # from positions, not SliceThickness


def test_no_phi_in_any_output(
    demo_export: tuple[Path, DemoSummary], ingested: tuple[Path, dict[str, int]]
) -> None:
    _, demo = demo_export
    out, _ = ingested
    needles = [s.encode() for s in demo.phi if len(s) >= 4]
    needles += [part.encode() for s in demo.phi for part in s.split("^") if len(part) >= 4]
    assert needles
    for path in out.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            if path.suffix == ".gz":
                import gzip

                blob = gzip.decompress(blob)
            for needle in needles:
                assert needle not in blob, f"PHI found in {path.name}"


def test_reingestion_is_deterministic(
    demo_export: tuple[Path, DemoSummary], ingested: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    out, _ = ingested
    again = tmp_path / "again"
    ingest([demo_export[0]], again, secret=DEMO_SECRET, workers=2)
    for name in ("manifest.csv", "quarantine.csv", "skipped.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes()
    first = sorted(p.name for p in (out / "images").iterdir())
    assert first == sorted(p.name for p in (again / "images").iterdir())
    some = first[0]
    assert (again / "images" / some).read_bytes() == (out / "images" / some).read_bytes()


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data source not found"):
        discover([tmp_path / "nope"])


def test_failed_run_leaves_no_partial_output(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ingest([tmp_path / "nope"], tmp_path / "out", secret=DEMO_SECRET)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial").exists()
