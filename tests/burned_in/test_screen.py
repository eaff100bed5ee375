"""Screening 2D images with Tesseract: found, read none of after redaction, markers kept."""

from __future__ import annotations

import numpy as np
import pytest
import tesserocr

from medssl.burned_in import ocr, redact, screen_image, shows_pixel_identity
from medssl.burned_in.detect import Region, to_display
from medssl.burned_in.screen import REDACT_MARGIN, ScreenResult
from tests.burned_in.text_images import IDENTITY, draw, radiograph


def read_everything(array_xy: np.ndarray) -> str:
    """A stronger reader than the screen's: the whole image, 2x, contrast-stretched, both
    polarities, sparse-text layout (what someone trying to read identity would do)."""
    from PIL import Image

    display = to_display(array_xy)
    texts = []
    api = tesserocr.PyTessBaseAPI(path=str(ocr.tessdata_dir()), psm=tesserocr.PSM.SPARSE_TEXT)
    try:
        for image in (display, 255 - display):
            pil = Image.fromarray(np.ascontiguousarray(image))
            api.SetImage(pil.resize((pil.width * 2, pil.height * 2)))
            texts.append(api.GetUTF8Text())
    finally:
        api.End()
    return "\n".join(texts)


def planted_strings_read(text: str) -> list[str]:
    flat = text.replace(" ", "").upper()
    tokens = ["MUSTERMANN", "ERIKA", "40817263", "1964-08-12"]
    return [t for t in tokens if t in flat]


@pytest.mark.parametrize(("white", "at"), [(True, (16, 16)), (False, (140, 250))])
def test_identity_is_found_and_redaction_leaves_nothing_readable(
    white: bool, at: tuple[int, int]
) -> None:
    image = draw(radiograph(), IDENTITY, at, 18, white)
    array = np.ascontiguousarray(image.T)  # ingestion holds (X, Y)
    assert planted_strings_read(read_everything(array)), "the test image must be readable"
    found = screen_image(array)
    assert found.found and found.n_read >= 1
    assert set(found.rules) <= {"date", "digit_run", "person_name"}
    cleaned = redact(array, found)
    assert cleaned.dtype == array.dtype and cleaned.shape == array.shape
    assert planted_strings_read(read_everything(cleaned)) == []
    assert not screen_image(cleaned).found


def test_redaction_grows_the_region_that_read_as_identity() -> None:
    """The fired region loses half its height more on every side (the rest of its block);
    other candidates lose the fixed margin."""
    fired = Region((100, 100, 120, 200), bright=True)
    other = Region((300, 300, 310, 320), bright=True)
    found = ScreenResult(("person_name",), 2, 1, [fired, other], fired)
    display = np.full((400, 400), 7, np.uint16)
    display[399, 399] = 0  # the fill value: the image's minimum
    out = redact(np.ascontiguousarray(display.T), found).T
    assert out.dtype == np.uint16 and set(np.unique(out)) == {0, 7}
    rows, cols = np.nonzero(out[:380, :250] != 7)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (90, 129, 90, 209)
    rows, cols = np.nonzero(out[:380, 250:] != 7)
    assert (rows.min(), rows.max()) == (300 - REDACT_MARGIN, 309 + REDACT_MARGIN)


def test_clean_radiograph_with_laterality_marker_passes() -> None:
    image = draw(radiograph(seed=1), ("L",), (460, 40), 28, True)
    image = draw(image, ("PORTABLE",), (20, 470), 16, True)
    result = screen_image(np.ascontiguousarray(image.T))
    assert not result.found


def test_a_lone_marker_is_read_but_not_identity() -> None:
    image = draw(radiograph(seed=2), ("R",), (30, 30), 28, True)
    result = screen_image(np.ascontiguousarray(image.T))
    assert result.n_regions >= 1 and not result.found


def test_constant_image_has_no_regions() -> None:
    assert screen_image(np.zeros((64, 64), np.uint16)).n_regions == 0


def test_flags_that_hide_an_image_from_reports() -> None:
    assert shows_pixel_identity("single_slice;text_redacted")
    assert shows_pixel_identity("burned_in_text")
    assert not shows_pixel_identity("single_slice;spacing_unknown")
    assert not shows_pixel_identity("")


def test_missing_language_data_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    monkeypatch.setattr(ocr, "TESSDATA_DIRS", ())
    monkeypatch.setattr(ocr, "_ENGINES", {})
    with pytest.raises(ocr.OcrUnavailable, match="tesseract-ocr-eng"):
        ocr.check_available()


def test_report_never_picks_an_image_flagged_for_pixel_identity() -> None:
    import pandas as pd

    from medssl.report.build import pick_samples, showable

    manifest = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "qc_flags": ["", "text_redacted", "burned_in_text;single_slice", "single_slice"],
        }
    )
    labelled = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "label": [0, 0, 1, 1]})
    kept = showable(labelled, manifest)
    assert kept["image_id"].tolist() == ["a", "d"]
    assert pick_samples(kept, 5, 0) == {"normal": ["a"], "abnormal": ["d"]}
