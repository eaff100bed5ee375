"""Ingestion's burned-in text policies on DX DICOM: quarantine, redact, flag, off."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medssl.ingest import IngestOptions, ingest
from medssl.io.pseudonym import DEMO_SECRET
from tests.burned_in.test_screen import planted_strings_read, read_everything
from tests.burned_in.text_images import IDENTITY, draw, radiograph
from tests.ingest_corpus import pixels, save
from tests.ingest_corpus import radiograph as cr_dataset


def _export(folder: Path) -> None:
    """One radiograph with identity burned in (no BurnedInAnnotation), one clean with "L"."""
    burned = draw(radiograph(seed=3), IDENTITY, (16, 16), 18, True)
    clean = draw(radiograph(seed=4), ("L",), (450, 30), 28, True)
    for n, image in ((1, burned), (2, clean)):
        ds = pixels(cr_dataset(n), image)
        assert "BurnedInAnnotation" not in ds
        save(ds, folder / f"cr_{n}.dcm")


def _run(tmp_path: Path, policy: str) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    src, out = tmp_path / "src", tmp_path / f"out_{policy}"
    _export(src)
    options = IngestOptions(workers=1, burned_in_text=policy, progress=False)
    ingest([src], out, secret=DEMO_SECRET, options=options)
    read = lambda name: pd.read_csv(out / name, dtype=str, keep_default_na=False)  # noqa: E731
    return read("manifest.csv"), read("quarantine.csv"), out


def _text_of_outputs(out: Path) -> str:
    """Every byte of text the run wrote (CSV, JSON), to look for the planted identity."""
    return "\n".join(
        p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in {".csv", ".json"}
    )


def test_default_quarantines_identity_and_keeps_the_marked_clean_image(tmp_path: Path) -> None:
    manifest, quarantine, out = _run(tmp_path, "quarantine")
    assert len(manifest) == 1 and manifest["qc_flags"].iloc[0] == ""
    assert quarantine["reason"].tolist() == ["burned_in_text"]
    message = quarantine["message"].iloc[0]
    assert message.startswith("burned-in text, rule ")
    assert planted_strings_read(message + _text_of_outputs(out)) == []


def test_redact_blacks_out_the_text_before_writing(tmp_path: Path) -> None:
    manifest, quarantine, out = _run(tmp_path, "redact")
    assert quarantine.empty
    flags = sorted(manifest["qc_flags"])
    assert flags == ["", "text_redacted"]
    redacted = manifest.loc[manifest["qc_flags"].str.contains("text_redacted"), "nifti"].iloc[0]
    array = np.asarray(nib.load(out / redacted).dataobj)
    assert planted_strings_read(read_everything(array)) == []


@pytest.mark.parametrize(("policy", "flag"), [("flag", "burned_in_text"), ("off", None)])
def test_flag_and_off_keep_the_image(tmp_path: Path, policy: str, flag: str | None) -> None:
    manifest, quarantine, _ = _run(tmp_path, policy)
    assert quarantine.empty and len(manifest) == 2
    flagged = manifest["qc_flags"].str.contains("burned_in_text").sum()
    assert flagged == (1 if flag else 0)


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="ingest.burned_in_text"):
        IngestOptions(burned_in_text="blur")
