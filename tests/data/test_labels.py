"""Label CSV validation: every error names the file and the row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medssl.data.labels import LabelError, join_labels
from medssl.data.manifest import read_manifest
from medssl.io.pseudonym import DEMO_SECRET, Pseudonymizer

PSEUDO = Pseudonymizer(DEMO_SECRET)


def _manifest(tmp_path: Path, rels: list[str]) -> pd.DataFrame:
    rows = []
    for i, rel in enumerate(rels):
        rows.append(
            {
                "image_id": f"image-{i:04d}",
                "patient_key": f"patient-{i // 2}",
                "study_key": f"study-{i // 2}",
                "series_key": f"series-{i}",
                "sop_key": PSEUDO.key("sop", f"1.2.3.{i}"),
                "source_key": PSEUDO.key("path", rel),
            }
        )
    return pd.DataFrame(rows)


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_join_by_path(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm", "a/2.dcm", "b/3.dcm"])
    path = _csv(tmp_path, "path,label\na/1.dcm,1\nb/3.dcm,0\n")
    out = join_labels(path, manifest, set(), PSEUDO)
    assert out.set_index("image_id")["label"].to_dict() == {"image-0000": 1, "image-0002": 0}


def test_unknown_key_names_the_row(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm"])
    path = _csv(tmp_path, "path,label\na/1.dcm,1\nDOE^JOHN/x.dcm,0\n")
    with pytest.raises(LabelError, match=r"labels.csv: row 3: 'path' matches no") as err:
        join_labels(path, manifest, set(), PSEUDO)
    assert "DOE" not in str(err.value)


def test_quarantined_rows_are_dropped_not_fatal(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm"])
    path = _csv(tmp_path, "path,label\na/1.dcm,1\nbroken.dcm,0\n")
    out = join_labels(path, manifest, {PSEUDO.key("path", "broken.dcm")}, PSEUDO)
    assert len(out) == 1


def test_non_binary_value(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm", "a/2.dcm"])
    path = _csv(tmp_path, "path,label\na/1.dcm,1\na/2.dcm,maybe\n")
    with pytest.raises(LabelError, match=r"row 3: label 'label' missing or not one of"):
        join_labels(path, manifest, set(), PSEUDO)


def test_conflicting_duplicates(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm"])
    path = _csv(tmp_path, "path,label\na/1.dcm,1\na/1.dcm,0\n")
    with pytest.raises(LabelError, match=r"row 2, 3: duplicate key with conflicting labels"):
        join_labels(path, manifest, set(), PSEUDO)


def test_consistent_duplicates_are_fine(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm"])
    path = _csv(tmp_path, "path,label\na/1.dcm,1\na/1.dcm,1\n")
    assert len(join_labels(path, manifest, set(), PSEUDO)) == 1


def test_missing_column_and_file(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm"])
    with pytest.raises(LabelError, match=r"missing column\(s\) \['label'\]"):
        join_labels(_csv(tmp_path, "path,diagnosis\na/1.dcm,1\n"), manifest, set(), PSEUDO)
    with pytest.raises(LabelError, match="label file not found"):
        join_labels(tmp_path / "none.csv", manifest, set(), PSEUDO)


def test_patient_pinned_to_two_splits(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm", "a/2.dcm"])
    text = "path,label,split,patient_id\na/1.dcm,1,train,P1\na/2.dcm,0,test,P1\n"
    with pytest.raises(LabelError, match=r"row 2, 3: one patient pinned to two splits"):
        join_labels(_csv(tmp_path, text), manifest, set(), PSEUDO)


def test_sop_key_and_custom_values(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm", "a/2.dcm"])
    text = "sop_instance_uid,finding\n1.2.3.0,abnormal\n1.2.3.1,normal\n"
    out = join_labels(
        _csv(tmp_path, text),
        manifest,
        set(),
        PSEUDO,
        key="sop_instance_uid",
        label_column="finding",
        positive=["abnormal"],
        negative=["normal"],
    )
    assert out["label"].tolist() == [1, 0]


def test_read_manifest_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="manifest not found"):
        read_manifest(tmp_path / "manifest.csv")


def test_empty_key_and_path_normalisation(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm", "a/2.dcm"])
    out = join_labels(
        _csv(tmp_path, "path,label\n./a/1.dcm,1\na\\2.dcm,0\n"), manifest, set(), PSEUDO
    )
    assert out["label"].tolist() == [1, 0]
    assert out["row"].tolist() == [2, 3]
    with pytest.raises(LabelError, match=r"row 3: 'path' is empty"):
        join_labels(_csv(tmp_path, "path,label\na/1.dcm,1\n ,0\n"), manifest, set(), PSEUDO)


def test_missing_label_value_names_the_row(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm", "a/2.dcm"])
    with pytest.raises(LabelError, match=r"row 3: label 'label' missing"):
        join_labels(_csv(tmp_path, "path,label\na/1.dcm,1\na/2.dcm,\n"), manifest, set(), PSEUDO)


def test_overlapping_positive_and_negative_values(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm"])
    with pytest.raises(LabelError, match="disjoint"):
        join_labels(
            _csv(tmp_path, "path,label\na/1.dcm,1\n"),
            manifest,
            set(),
            PSEUDO,
            positive=["1"],
            negative=["1", "0"],
        )


def test_study_key_labels_every_image_of_the_study(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.dcm", "a/2.dcm", "b/3.dcm", "b/4.dcm"])
    manifest["study_key"] = [PSEUDO.key("study", u) for u in ["1.9.1", "1.9.1", "1.9.2", "1.9.2"]]
    text = "study_instance_uid,label\n1.9.1,1\n1.9.2,0\n"
    out = join_labels(_csv(tmp_path, text), manifest, set(), PSEUDO, key="study_instance_uid")
    assert out.set_index("image_id")["label"].to_dict() == {
        "image-0000": 1,
        "image-0001": 1,
        "image-0002": 0,
        "image-0003": 0,
    }
    conflict = "study_instance_uid,label\n1.9.1,1\n1.9.1,0\n"
    with pytest.raises(LabelError, match="row 2, 3: duplicate key with conflicting labels"):
        join_labels(_csv(tmp_path, conflict), manifest, set(), PSEUDO, key="study_instance_uid")


def test_duplicates_skipped_at_ingest_are_dropped(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, ["a/1.png"])
    unusable = {PSEUDO.key("path", "a/copy_of_1.png")}
    text = "path,label\na/1.png,1\na/copy_of_1.png,1\n"
    assert len(join_labels(_csv(tmp_path, text), manifest, unusable, PSEUDO)) == 1
