"""Sidecar CSVs: column mapping, match modes, view codes, row-level errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from medssl.io.sidecar import SidecarError, SidecarSpec, match_key, normalize_view, read_sidecar


def test_read_with_mapped_columns(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    csv.write_text("image_id,patient_id,projection,extra\nab12,P7,pa,x\ncd34,P8,Lateral,y\n")
    spec = SidecarSpec(str(csv), "stem", {"path": "image_id", "view": "projection"})
    entries = read_sidecar(spec)
    assert entries == {
        "ab12": {"patient_id": "P7", "study_id": "", "view": "PA"},
        "cd34": {"patient_id": "P8", "study_id": "", "view": "LL"},
    }


def test_match_modes() -> None:
    assert match_key("a/b/img.nii.gz", "path") == "a/b/img.nii.gz"
    assert match_key("a/b/img.nii.gz", "name") == "img.nii.gz"
    assert match_key("a/b/img.nii.gz", "stem") == "img"


def test_views_are_reduced_to_codes() -> None:
    assert [normalize_view(v) for v in ("ap", " PA ", "AP  supine", "", "John")] == [
        "AP",
        "PA",
        "AP",
        "",
        "OTHER",
    ]


def test_errors_name_rows_not_content(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    csv.write_text("path,patient_id\na.png,Smith\na.png,Jones\n,P3\n")
    with pytest.raises(SidecarError, match=r"row 4: empty image path") as err:
        read_sidecar(SidecarSpec(str(csv)))
    assert "Smith" not in str(err.value)
    csv.write_text("path,patient_id\na.png,Smith\na.png,Jones\n")
    with pytest.raises(SidecarError, match=r"row 2, 3: conflicting rows") as err:
        read_sidecar(SidecarSpec(str(csv)))
    assert "Jones" not in str(err.value)
    with pytest.raises(SidecarError, match="no column 'file'"):
        read_sidecar(SidecarSpec(str(csv), columns={"path": "file"}))
    with pytest.raises(SidecarError, match="not found"):
        read_sidecar(SidecarSpec(str(tmp_path / "nope.csv")))
