"""A corpus of broken and hostile inputs: every file accounted for, no crash, no PHI out."""

from __future__ import annotations

import contextlib
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from medssl.ingest import REASONS, IngestOptions, ingest, key_text
from medssl.io.pseudonym import DEMO_SECRET, Pseudonymizer
from tests.ingest_corpus import PHI, hostile_corpus, restore_permissions

Hostile = tuple[Path, dict[str, frozenset[str]], Path, dict[str, int], str]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """The corpus ingested once with two worker processes and a re-identification table."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "export"
    expected = hostile_corpus(root)
    out = base / "out"
    reid = base / "private" / "reid.csv"
    options = IngestOptions(workers=2, progress=False, reid_table=reid)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        summary = ingest([root], out, secret=DEMO_SECRET, options=options)
    yield root, expected, out, summary, err.getvalue()
    restore_permissions(root)


def _outcomes(out: Path) -> tuple[dict[str, str], set[str]]:
    q = pd.read_csv(out / "quarantine.csv", dtype=str)
    s = pd.read_csv(out / "skipped.csv", dtype=str)
    got = {k: f"q:{r}" for k, r in zip(q["source_key"], q["reason"], strict=True)}
    got.update({k: f"skip:{r}" for k, r in zip(s["source_key"], s["rule"], strict=True)})
    return got, set(pd.read_csv(out / "manifest.csv", dtype=str)["source_key"])


def test_corpus_has_at_least_25_kinds(hostile: Hostile) -> None:
    _, expected, *_ = hostile
    assert len(expected) >= 40


def test_every_file_is_accounted_for(hostile: Hostile) -> None:
    root, expected, out, summary, _ = hostile
    assert summary["files_seen"] == (
        summary["files_ingested"] + summary["files_quarantined"] + summary["files_skipped"]
    )
    pseudo = Pseudonymizer(DEMO_SECRET)
    got, _ = _outcomes(out)
    for rel, allowed in expected.items():
        outcome = got.get(pseudo.key("path", key_text(rel)), "ingested")
        assert outcome in allowed, f"{rel}: {outcome} not in {sorted(allowed)}"
    assert set(summary) >= {"files_seen", "images_ingested", "images_dropped_qc"}
    assert {v[2:] for v in got.values() if v.startswith("q:")} <= set(REASONS)


def test_valid_files_survive_their_neighbours(hostile: Hostile) -> None:
    _, _, out, summary, _ = hostile
    manifest = pd.read_csv(out / "manifest.csv")
    ct = manifest[(manifest["modality"] == "CT") & (manifest["spatial_dims"] == 3)]
    assert list(ct["n_files"]) == [4]  # the series split over two folders is one volume
    assert list(ct["axcodes"]) == ["RAS"]
    four_d = manifest[manifest["n_volumes"] == 3]
    assert sorted(four_d["volume_index"]) == [0, 1, 2]
    assert all("volume_of_4d" in f for f in four_d["qc_flags"])
    assert summary["images_dropped_qc"] == 1  # the two-slice localizer series
    for rel in manifest["nifti"]:
        assert (out / rel).is_file()


def test_no_phi_in_outputs_or_logs(hostile: Hostile) -> None:
    root, _, out, _, stderr = hostile
    needles = [p.encode() for p in PHI] + [str(root).encode(), b"Doe^"]
    for path in out.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            if path.name.endswith(".gz"):
                blob = gzip.decompress(blob)
            for needle in needles:
                assert needle not in blob, f"{needle!r} found in {path.name}"
    for needle in needles:
        assert needle.decode() not in stderr


def test_reidentification_table_links_keys_to_sources(hostile: Hostile) -> None:
    root, _, out, _, _ = hostile
    reid = pd.read_csv(out.parent / "private" / "reid.csv", dtype=str, keep_default_na=False)
    assert (out.parent / "private" / "reid.csv").stat().st_mode & 0o077 == 0
    row = reid[reid["source_path"].str.endswith("valid/cr_1")].iloc[0]
    pseudo = Pseudonymizer(DEMO_SECRET)
    assert row["source_key"] == pseudo.key("path", "valid/cr_1")
    assert row["patient_id"] == PHI[1]
    assert row["patient_key"] == pseudo.key("patient", PHI[1])


def test_reidentification_table_is_refused_inside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    monkeypatch.chdir(repo)
    options = IngestOptions(reid_table=repo / "private" / "reid.csv", progress=False)
    with pytest.raises(ValueError, match="re-identification table"):
        ingest([repo / "src"], tmp_path / "out", secret=DEMO_SECRET, options=options)
