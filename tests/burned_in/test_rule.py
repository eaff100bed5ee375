"""The identity rule on recognised text (no OCR involved)."""

from __future__ import annotations

import pytest

from medssl.burned_in.rule import identity_rules


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("DOB 1951-03-14", "date"),
        ("geb. 14.03.1951", "date"),
        ("03/14/51", "date"),
        ("MRN 12345678", "digit_run"),
        ("ID 2O48I7", "digit_run"),  # OCR confusions O->0, I->1
        ("SURNAME, GIVEN", "person_name"),
        ("Doe^Jane", "person_name"),
        ("ROSSI,, SOFIA", "person_name"),
        ("SCHMIDT, manial", "person_name"),  # OCR got the given name's case wrong
        ("YILMAZ,\nSOFIA", "person_name"),  # the given name read onto the next line
    ],
)
def test_identity_forms_fire(text: str, rule: str) -> None:
    assert rule in identity_rules(text)


@pytest.mark.parametrize(
    "text",
    ["L", "R", "AP", "PA", "PORTABLE", "AP SUPINE", "Bettaufnahme", "-->", "1 2", "kV 125", ""],
)
def test_technician_marks_do_not_fire(text: str) -> None:
    assert identity_rules(text) == ()


def test_short_numbers_and_lowercase_noise_do_not_fire() -> None:
    assert identity_rules("120 cm 4 mAs") == ()
    assert identity_rules("hs, cee ow") == ()


@pytest.mark.parametrize(
    "text", ["OF, uat", "Mae, ahhh", "CS, GD", "SRN, aR", "TO , ee", "Vs , MN"]
)
def test_how_ocr_misreads_anatomy_does_not_fire(text: str) -> None:
    assert identity_rules(text) == ()
