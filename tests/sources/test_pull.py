"""Pull from a real Orthanc over DICOMweb and DIMSE: same images as the files, incremental,
resumable, clean failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medssl.ingest import ingest
from medssl.io.pseudonym import DEMO_SECRET, Pseudonymizer
from medssl.sources.pull import LEDGER_NAME, Ledger, pull, pull_from
from medssl.sources.spec import PullError, Query, parse_query, parse_source
from tests.sources.conftest import PASSWORD, USER, Pacs

PSEUDO = Pseudonymizer(DEMO_SECRET)
#: Manifest columns that depend on the image, not on the path or bytes it came in.
SAME = ["patient_key", "study_key", "series_key", "modality", "spatial_dims", "shape",
        "spacing", "qc_flags", "n_files", "view_position"]  # fmt: skip


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSSL_PACS_USER", USER)
    monkeypatch.setenv("MEDSSL_PACS_PASSWORD", PASSWORD)


def _manifest(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    return table.sort_values(["series_key", "sop_key", "shape"]).reset_index(drop=True)


def _direct(pacs: Pacs, tmp: Path) -> Path:
    """The same files ingested straight from a folder (the reference)."""
    folder = tmp / "direct_in"
    for i, path in enumerate(pacs.files):
        (folder / f"{i:03d}").mkdir(parents=True)
        shutil.copy(path, folder / f"{i:03d}" / "x.dcm")
    out = tmp / "direct_out"
    ingest([folder], out, secret=DEMO_SECRET, workers=1)
    return out


def _same_images(pulled: Path, direct: Path) -> None:
    a, b = _manifest(pulled), _manifest(direct)
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a[SAME], b[SAME])
    for x, y in zip(a["nifti"], b["nifti"], strict=True):
        np.testing.assert_array_equal(
            np.asarray(nib.load(pulled / x).dataobj), np.asarray(nib.load(direct / y).dataobj)
        )


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_pull_then_ingest_equals_ingesting_the_files(
    pacs: Pacs, tmp_path: Path, creds: None, protocol: str
) -> None:
    address = pacs.dicomweb if protocol == "dicomweb" else pacs.dimse
    out = tmp_path / "pulled"
    done = pull_from(address, out, Query(), PSEUDO, log=lambda _: None)
    assert done.fetched == done.instances == len(pacs.files) and done.already == 0
    ledger = pd.read_csv(out / LEDGER_NAME)
    assert len(ledger) == len(pacs.files) and ledger["sop_key"].is_unique
    assert not list(out.rglob("*.partial"))
    ingest([out], tmp_path / "ingested", secret=DEMO_SECRET, workers=1)
    _same_images(tmp_path / "ingested", _direct(pacs, tmp_path))
    again = pull_from(address, out, Query(), PSEUDO, log=lambda _: None)
    assert again.fetched == 0 and again.already == len(pacs.files)


def test_query_filters_modality_and_limit(pacs: Pacs, tmp_path: Path, creds: None) -> None:
    ct = pull_from(pacs.dicomweb, tmp_path / "ct", parse_query(None, "CT", None), PSEUDO,
                   log=lambda _: None)  # fmt: skip
    assert ct.studies == 1 and ct.fetched == 8  # the one CT series of 8 slices
    one = pull_from(pacs.dimse, tmp_path / "one", parse_query("19000101-", "CR,DX", 1), PSEUDO,
                    log=lambda _: None)  # fmt: skip
    assert one.studies == 1 and 1 <= one.fetched < len(pacs.files)


class _Killed(Exception):
    pass


def test_a_killed_pull_resumes_without_duplicates_or_partials(
    pacs: Pacs, tmp_path: Path, creds: None
) -> None:
    from medssl.sources.dicomweb import DicomWebPacs
    from medssl.sources.spec import credentials_from_env

    client = DicomWebPacs(parse_source(pacs.dicomweb), credentials_from_env())
    fetch, calls = client.fetch, [0]

    def dying_fetch(study: str, series: str, sops: list[str]) -> Iterator[tuple[str, bytes]]:
        for item in fetch(study, series, sops):
            calls[0] += 1
            if calls[0] > 3:
                raise _Killed
            yield item

    client.fetch = dying_fetch  # type: ignore[method-assign]
    out = tmp_path / "pulled"
    with pytest.raises(_Killed):
        pull(client, Query(), out, PSEUDO, log=lambda _: None)
    assert len(Ledger(out).rows) == 3
    stray = next(out.rglob("*.dcm"))  # a file renamed but never recorded, and a partial one
    (stray.parent / f".{stray.stem}x.dcm.partial").write_bytes(b"half")
    lost = stray.parent / "sop-lost.dcm"
    lost.write_bytes(b"\0" * 10)
    done = pull_from(pacs.dicomweb, out, Query(), PSEUDO, log=lambda _: None)
    assert done.adopted == 1 and done.fetched == len(pacs.files) - 3
    assert not list(out.rglob("*.partial"))
    ledger = pd.read_csv(out / LEDGER_NAME)
    assert ledger["sop_key"].is_unique and ledger["path"].is_unique


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medssl.cli", "pull", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_wrong_credentials_and_unreachable_fail_cleanly(pacs: Pacs, tmp_path: Path) -> None:
    env = {**os.environ, "MEDSSL_PACS_USER": USER, "MEDSSL_PACS_PASSWORD": "wrong-password"}
    out = tmp_path / "pulled"
    out.mkdir()
    (out / "kept.dcm").write_bytes(b"fetched before")
    proc = _cli(pacs.dicomweb, "--out", str(out), "--demo", env=env)
    assert proc.returncode != 0
    line = proc.stderr.strip().splitlines()[-1]
    assert line == f"error: {pacs.dicomweb}: login refused (HTTP 401)"
    assert "wrong-password" not in proc.stdout + proc.stderr
    assert (out / "kept.dcm").read_bytes() == b"fetched before"
    proc = _cli("dicomweb+http://127.0.0.1:9/dicom-web", "--out", str(out), "--demo",
                "--timeout", "3", env=env)  # fmt: skip
    assert proc.stderr.strip().endswith("unreachable") and proc.returncode != 0
    proc = _cli("dimse://NOPE@127.0.0.1:9", "--out", str(out), "--demo", "--timeout", "3",
                env=env)  # fmt: skip
    assert "dimse://NOPE@127.0.0.1:9: unreachable or aborted" in proc.stderr


def test_sources_parse_and_refuse_credentials_in_urls() -> None:
    assert parse_source("dimse://PACS@10.1.2.3:104").called_aet == "PACS"
    assert parse_source("dicomweb+https://pacs/dicom-web/").url == "https://pacs/dicom-web"
    with pytest.raises(PullError, match="credentials do not belong"):
        parse_source("dicomweb+https://u:p@pacs/dicom-web")
    with pytest.raises(PullError, match="must be dimse://AET@host:port"):
        parse_source("dimse://pacs:104")
    with pytest.raises(PullError, match="study date"):
        parse_query("2025-01-01", None, None)
    assert parse_query("20250101-", "cr, dx", 3) == Query("20250101", "", ("CR", "DX"), 3)


def test_the_pull_stage_fetches_into_its_folder_and_stays_off_by_default(
    pacs: Pacs, tmp_path: Path
) -> None:
    import yaml

    from tests.conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["pull"]["enabled"] is False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MEDSSL_PACS_USER": USER, "MEDSSL_PACS_PASSWORD": PASSWORD}
    env.pop("MEDSSL_DEID_SECRET", None)
    cmd = [sys.executable, str(REPO / "pipelines" / "pull.py"), "--out", "data/raw/pacs"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "pull: off" in proc.stdout
    assert (tmp_path / "data" / "raw" / "pacs" / LEDGER_NAME).exists()
    params["pull"].update(enabled=True, source=pacs.dimse, modalities="CT")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "pull: 8 new, 0 already here, 1 studies" in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr
