"""Ingestion's burned-in text policies on DX DICOM: quarantine, redact, flag, off."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medssl.burned_in import screen_image
from medssl.ingest import IngestOptions, ingest
from medssl.io.dicom.decode import decode_projection
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


def test_text_on_anatomy_the_presentation_clips_is_screened_on_stored_values(
    tmp_path: Path,
) -> None:
    """White text over a bright plate: the presentation's robust range clips the plate's
    brightest pixels to the text's code, so the written image shows the text at low
    contrast (a person reads it) and a screen of the codes finds nothing; the stored values
    keep the text at its own extreme, and ingestion quarantines the file."""
    image = radiograph(seed=3).astype(np.int32)
    image[0:64, 0:256] = 3400 + np.random.default_rng(0).normal(0, 40, (64, 256))
    burned = draw(np.clip(image, 0, 4095).astype(np.uint16), IDENTITY, (16, 8), 16, True)
    ds = pixels(cr_dataset(1), burned)
    decoded = decode_projection(ds)
    assert decoded.screen_pixels is not None
    assert np.array_equal(decoded.screen_pixels, ds.pixel_array.T)
    assert not screen_image(decoded.array).found  # why the codes are not what is screened
    save(ds, tmp_path / "src" / "cr_1.dcm")
    out = tmp_path / "out"
    ingest([tmp_path / "src"], out, secret=DEMO_SECRET, options=IngestOptions(workers=1))
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    assert quarantine["reason"].tolist() == ["burned_in_text"]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="ingest.burned_in_text"):
        IngestOptions(burned_in_text="blur")
