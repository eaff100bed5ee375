"""Ingestion options: re-ingestion cache, QC drop rules, geometry, sidecars, params, CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from medssl.cli import main as cli_main
from medssl.ingest import IngestOptions, ingest, options_from_params
from medssl.ingest import files as ingest_files
from medssl.io.pseudonym import DEMO_SECRET, Pseudonymizer
from medssl.io.sidecar import SidecarSpec
from tests.conftest import SHARED_DATA
from tests.ingest_corpus import ct_slice, png_bytes, radiograph, save, write_nifti

QUIET = {"progress": False}


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    for n in range(3):
        save(radiograph(n), root / "xr" / f"{n}.dcm")
    for k in range(4):
        save(ct_slice(1, k), root / "ct" / f"{k}.dcm")
    for k in range(2):
        scout = ct_slice(2, k, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
        save(scout, root / "scout" / f"{k}.dcm")
    return root


def _run(src: Path, out: Path, **kw: object) -> dict[str, int]:
    return ingest([src], out, secret=DEMO_SECRET, options=IngestOptions(**{**QUIET, **kw}))  # type: ignore[arg-type]


def test_reingestion_reuses_unchanged_units(export: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _run(export, tmp_path / "a", cache_dir=cache, workers=2)
    assert first["units_decoded"] == 5 and first["units_reused"] == 0  # 3 CR, CT, scout
    again = _run(export, tmp_path / "a", cache_dir=cache)  # the out folder is replaced
    assert again["units_reused"] == 5 and again["units_decoded"] == 0
    _run(export, tmp_path / "b")  # no cache: the reference
    for name in ("manifest.csv", "quarantine.csv", "skipped.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for rel in pd.read_csv(tmp_path / "b" / "manifest.csv")["nifti"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    save(radiograph(9), export / "xr" / "1.dcm")  # one file changed
    save(ct_slice(1, 4), export / "ct" / "4.dcm")  # one slice added to the series
    third = _run(export, tmp_path / "a", cache_dir=cache)
    assert (third["units_decoded"], third["units_reused"]) == (2, 3)
    # the changed series' old slices were not decoded in pass 1 (cached files) but in
    # pass 2: the result equals a run without cache
    _run(export, tmp_path / "c")
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (
        tmp_path / "c" / "manifest.csv"
    ).read_bytes()
    for rel in pd.read_csv(tmp_path / "c" / "manifest.csv")["nifti"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "c" / rel).read_bytes()
    assert not any(p.name.startswith(".") for p in (tmp_path / "a").rglob("*"))  # no scratch


def test_a_corrupt_slice_is_quarantined_alone(tmp_path: Path) -> None:
    """One truncated slice: quarantined with its reason; the rest of the series ingests."""
    src = tmp_path / "src"
    for k in range(6):
        save(ct_slice(1, k), src / f"{k}.dcm")
    broken = src / "3.dcm"
    broken.write_bytes(broken.read_bytes()[:-100])
    summary = _run(src, tmp_path / "out")
    assert (summary["files_quarantined"], summary["files_ingested"]) == (1, 5)
    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv")
    assert list(quarantine["reason"]) == ["truncated_pixel_data"]
    (row,) = pd.read_csv(tmp_path / "out" / "manifest.csv").to_dict("records")
    assert row["shape"].endswith("x5") and "missing_slices" in row["qc_flags"]


def test_a_hung_decoder_is_stopped_and_quarantined(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose reading never ends costs its worker, not the run (timeout_s)."""
    save(radiograph(7), export / "xr" / "hang.dcm")
    real = ingest_files._read_header

    def stuck(path: Path, data: bytes | None) -> object:
        if path.name == "hang.dcm":
            time.sleep(600)  # a decoder in an endless loop
        return real(path, data)

    monkeypatch.setattr(ingest_files, "_read_header", stuck)  # forked workers inherit it
    summary = _run(export, tmp_path / "out", workers=2, timeout_s=2.0)
    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv")
    assert list(quarantine["reason"]) == ["timeout"]
    assert summary["images_ingested"] == 4  # 3 radiographs and the CT; the scout is dropped
    assert summary["files_seen"] == (
        summary["files_ingested"] + summary["files_quarantined"] + summary["files_skipped"]
    )


def test_files_read_twice_when_too_large_give_the_same_outputs(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over ``IN_MEMORY_BYTES`` a file is hashed in chunks and read again to decode."""
    _run(export, tmp_path / "memory")
    monkeypatch.setattr(ingest_files, "IN_MEMORY_BYTES", 0)
    _run(export, tmp_path / "twice")
    manifest = (tmp_path / "memory" / "manifest.csv").read_bytes()
    assert manifest == (tmp_path / "twice" / "manifest.csv").read_bytes()
    for rel in pd.read_csv(tmp_path / "memory" / "manifest.csv")["nifti"]:
        assert (tmp_path / "memory" / rel).read_bytes() == (tmp_path / "twice" / rel).read_bytes()


def test_cache_misses_when_settings_change(export: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _run(export, tmp_path / "a", cache_dir=cache)
    other = _run(export, tmp_path / "b", cache_dir=cache, compress=False)
    assert other["units_reused"] == 0
    assert all(n.endswith(".nii") for n in pd.read_csv(tmp_path / "b" / "manifest.csv")["nifti"])


def test_localizers_are_skipped_or_quarantined_by_rule(export: Path, tmp_path: Path) -> None:
    skip = _run(export, tmp_path / "s")
    assert skip["images_dropped_qc"] == 1 and skip["files_skipped"] == 2
    assert set(pd.read_csv(tmp_path / "s" / "skipped.csv")["rule"]) == {"qc_localizer"}
    quarantine = _run(export, tmp_path / "q", drop_action="quarantine")
    assert quarantine["quarantined_qc_localizer"] == 2
    kept = _run(export, tmp_path / "k", drop_flags=())
    manifest = pd.read_csv(tmp_path / "k" / "manifest.csv", keep_default_na=False)
    assert kept["images_ingested"] == 5
    assert manifest["qc_flags"].str.contains("localizer").sum() == 1


def test_burned_in_annotation_can_be_kept_with_a_flag(tmp_path: Path) -> None:
    ds = radiograph(0)
    ds.BurnedInAnnotation = "YES"
    save(ds, tmp_path / "src" / "b.dcm")
    assert _run(tmp_path / "src", tmp_path / "q")["quarantined_burned_in_annotation"] == 1
    kept = _run(tmp_path / "src", tmp_path / "k", quarantine_burned_in=False)
    assert kept["images_ingested"] == 1
    flags = pd.read_csv(tmp_path / "k" / "manifest.csv")["qc_flags"].iloc[0]
    assert "burned_in_annotation" in flags


def test_canonical_orientation_keeps_world_coordinates(tmp_path: Path) -> None:
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    lps = np.array([[-2.0, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, 3, -5], [0, 0, 0, 1]])
    (tmp_path / "src").mkdir()
    nib.save(nib.Nifti1Image(data, lps), str(tmp_path / "src" / "v.nii.gz"))
    _run(tmp_path / "src", tmp_path / "out")
    row = pd.read_csv(tmp_path / "out" / "manifest.csv").iloc[0]
    img = nib.load(tmp_path / "out" / row["nifti"])
    assert row["axcodes"] == "RAS" and nib.aff2axcodes(img.affine) == ("R", "A", "S")
    got = np.asarray(img.dataobj)
    for idx in [(0, 0, 0), (5, 4, 3), (2, 1, 3)]:  # same value at the same world point
        world = lps @ [*idx, 1]
        new_idx = np.round(np.linalg.solve(img.affine, world)).astype(int)[:3]
        assert got[tuple(new_idx)] == data[idx]


def test_resampling_to_a_target_spacing_and_size(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    write_nifti(tmp_path / "src" / "v.nii.gz", np.ones((10, 8, 6), np.float32), (1.0, 1.0, 2.0))
    (tmp_path / "src" / "x.png").write_bytes(png_bytes(np.full((20, 30), 128, np.uint8)))
    _run(tmp_path / "src", tmp_path / "out", spacing_3d=(2.0, 2.0, 2.0), size_2d=(16, 12))
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("spatial_dims")
    assert manifest.loc[3, "shape"] == "6x4x6"  # MONAI keeps the extent: round(9 / 2) + 1
    assert manifest.loc[3, "spacing"] == "2x2x2"
    assert manifest.loc[2, "shape"] == "16x12"
    with pytest.raises(ValueError, match="not both"):
        IngestOptions(spacing_3d=(1, 1, 1), size_3d=(8, 8, 8))


def test_sidecar_gives_patients_and_views_to_rasters(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        img = np.tile(np.arange(16, dtype=np.uint8), (16, 1)) + ord(name)
        (src / f"{name}.png").write_bytes(png_bytes(img))
    sidecar = tmp_path / "side.csv"
    sidecar.write_text("file,pid,projection\na,P1,pa\nb,P1,AP\n")
    spec = SidecarSpec(
        str(sidecar), "stem", {"path": "file", "patient_id": "pid", "view": "projection"}
    )
    _run(src, tmp_path / "out", sidecar=spec)
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False)
    pseudo = Pseudonymizer(DEMO_SECRET)
    by_source = manifest.set_index("source_key")
    a, b, c = (by_source.loc[pseudo.key("path", f"{n}.png")] for n in "abc")
    assert a["patient_key"] == b["patient_key"] == pseudo.key("patient", "P1")
    assert (a["view_position"], b["view_position"], c["view_position"]) == ("PA", "AP", "")
    assert "no_patient_id" in c["qc_flags"] and "no_patient_id" not in a["qc_flags"]


@pytest.mark.realdata
def test_hannover_pngs_with_their_sidecar(tmp_path: Path) -> None:
    folder = SHARED_DATA / "hannover_cxr"
    if not (folder / "data.csv").exists():
        pytest.skip("shared data absent")
    table = pd.read_csv(folder / "data.csv", dtype=str).head(6)
    src = tmp_path / "png"
    src.mkdir()
    for image_id in table["image_id"]:
        (src / f"{image_id}.png").symlink_to(folder / "png" / f"{image_id}.png")
    spec = SidecarSpec(str(folder / "data.csv"), "stem", {"path": "image_id", "view": "projection"})
    summary = _run(src, tmp_path / "out", sidecar=spec)
    assert summary["images_2d"] == 6
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False)
    pseudo = Pseudonymizer(DEMO_SECRET)
    assert set(manifest["patient_key"]) == {pseudo.key("patient", p) for p in table["patient_id"]}
    assert set(manifest["view_position"]) <= {"AP", "PA"}
    data = np.asarray(nib.load(tmp_path / "out" / manifest["nifti"].iloc[0]).dataobj)
    assert data.min() >= 0 and data.max() <= 1 and data.shape[0] > 200


@pytest.mark.realdata
def test_mosaic_geometry_matches_dcm2niix(tmp_path: Path) -> None:
    folder = SHARED_DATA / "conformance" / "dcm_qa_ts"
    if not (folder / "Ref" / "1.nii").exists():
        pytest.skip("shared data absent")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "1.dcm").symlink_to(folder / "In" / "1.dcm")
    summary = _run(tmp_path / "src", tmp_path / "out")
    assert summary["volumes_3d"] == 1
    row = pd.read_csv(tmp_path / "out" / "manifest.csv").iloc[0]
    ours = nib.as_closest_canonical(nib.load(tmp_path / "out" / row["nifti"]))
    ref = nib.as_closest_canonical(nib.load(folder / "Ref" / "1.nii"))
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours.affine, ref.affine, atol=0.05)
    np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(ref.dataobj))


def test_options_from_params_and_the_checked_in_params() -> None:
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    options = options_from_params(params)
    assert options.workers == params["ingest"]["workers"]
    assert options.drop_flags == ("localizer",) and options.cache_dir is not None
    params["data"]["sidecar"] = {"path": "s.csv", "match": "stem", "columns": {"view": "proj"}}
    params["ingest"]["resample"]["spacing_3d"] = [1, 1, 2]
    options = options_from_params(params)
    assert options.sidecar == SidecarSpec("s.csv", "stem", {"view": "proj"})
    assert options.spacing_3d == (1.0, 1.0, 2.0)
    assert options.timeout_s == float(params["ingest"]["timeout_s"])
    params["ingest"]["timeout_s"] = None
    assert options_from_params(params).timeout_s is None
    params["ingest"]["timeout_s"] = "ten minutes"
    with pytest.raises(ValueError, match="ingest.timeout_s"):
        options_from_params(params)


def test_cli_ingest_prints_the_invariant(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(
        ["ingest", str(export), "--out", str(tmp_path / "o"), "--demo", "--workers", "2"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "files seen 9 = ingested 7 + quarantined 0 + skipped 2" in out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["files_seen"] == 9


def test_cli_ingest_needs_a_secret_outside_demo_mode(
    export: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MEDSSL_DEID_SECRET", raising=False)
    assert cli_main(["ingest", str(export), "--out", str(tmp_path / "o")]) == 2
    assert "MEDSSL_DEID_SECRET" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_two_sources_with_the_same_relative_paths(tmp_path: Path) -> None:
    for s in range(2):
        for k in range(3):
            save(ct_slice(10 + s, k), tmp_path / f"site{s}" / "ct" / f"{k}.dcm")
    summary = ingest(
        [tmp_path / "site0", tmp_path / "site1"],
        tmp_path / "out",
        secret=DEMO_SECRET,
        options=IngestOptions(progress=False),
    )
    assert summary["volumes_3d"] == 2 and summary["files_ingested"] == 6
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert manifest["series_key"].nunique() == 2


def test_truncated_copy_never_hides_a_complete_instance(tmp_path: Path) -> None:
    good = radiograph(5)
    save(good, tmp_path / "src" / "b_good.dcm")
    data = (tmp_path / "src" / "b_good.dcm").read_bytes()
    (tmp_path / "src" / "a_cut.dcm").write_bytes(data[: len(data) - 100])  # same SOP UID
    summary = _run(tmp_path / "src", tmp_path / "out")
    assert summary["images_ingested"] == 1
    assert set(pd.read_csv(tmp_path / "out" / "skipped.csv")["rule"]) == {"duplicate_instance"}


def test_quarantine_messages_never_quote_non_standard_values() -> None:
    from medssl.ingest import sanitize

    assert sanitize("non-image object (SOP class John^Smith)") == (
        "non-image object (SOP class <non-standard>)"
    )
    kept = "non-image object (SOP class 1.2.840.10008.5.1.4.1.1.88.11)"
    assert sanitize(kept) == kept
    assert sanitize("uid 1.2.826.0.1.3680043.2 seen") == "uid <uid> seen"
    assert len(sanitize("x" * 1000)) == 160


def test_every_reason_code_raised_by_the_readers_is_documented() -> None:
    import re

    from medssl.ingest import REASONS

    package = Path(__file__).resolve().parents[1] / "medssl"
    pattern = re.compile(r'(?:DicomError|NiftiError|RasterError|_Quarantine)\(\s*"([a-z_]+)"')
    sources = [*(package / "io").rglob("*.py"), *(package / "ingest").rglob("*.py")]
    raised = {code for p in sources for code in pattern.findall(p.read_text())}
    assert raised and raised <= set(REASONS), sorted(raised - set(REASONS))
