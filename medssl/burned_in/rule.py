"""Does recognised text look like patient identity? A documented rule, no word list.

Burned-in identity follows the forms of DICOM's own attributes (PS3.5 6.2: PN is
``Family^Given``, shown as ``FAMILY, Given``; DA is a date; IDs are digit runs) while
technician marks are short words or letters ("L", "R", "AP", "PORTABLE", "Bettaufnahme").
A text fires the rule when it holds any of:

* ``date``: three digit groups joined by ``-``, ``.`` or ``/`` (``1951-03-14``,
  ``14.03.1951``, ``03/14/51``);
* ``digit_run``: five or more characters of digits, allowing up to two OCR confusions
  (``O``/``o`` for 0, ``I``/``l``/``|`` for 1, ``S`` for 5, ``B`` for 8) in tokens that hold at
  least three digits (record numbers, accession numbers, compact dates);
* ``person_name``: a family name and a given name joined by a comma or caret: a family
  name of four or more capitals and any given name (``MUELLER, Anna``; OCR often gets the
  given name's case wrong, or reads it onto the next line), three capitals and a
  capitalised given name (``DOE, JANE``), or both capitalised (``Doe^Jane``); doubled or
  dotted commas as OCR reads them are accepted. Short or mixed-case pairs (``OF, uat``,
  ``Mae, ahhh``) are how OCR misreads anatomy, not how names are printed.

Only rule names leave this module, never the text.
"""

from __future__ import annotations

import re

_DATE = re.compile(r"\d{1,4} ?[-./] ?\d{1,2} ?[-./] ?\d{2,4}")
_DIGITISH = re.compile(r"[0-9OoIlSB|]{5,}")
_SEP = r"\s?[,^][,.^]?\s?"
_NAME = re.compile(
    rf"(?<![A-Za-z])(?:[A-Z]{{4,}}{_SEP}[A-Za-z]{{2,}}|[A-Z]{{3}}{_SEP}[A-Z]{{2,}}"
    rf"|[A-Z][a-z]{{2,}}{_SEP}[A-Z][a-z]+)(?![a-z])"
)
#: Rule names in the order they are tried.
RULES = ("date", "digit_run", "person_name")


def _digit_run(text: str) -> bool:
    for token in _DIGITISH.findall(text):
        digits = sum(ch.isdigit() for ch in token)
        if digits >= 3 and len(token) - digits <= 2:
            return True
    return False


def identity_rules(text: str) -> tuple[str, ...]:
    """Names of the rules that ``text`` fires (empty: not identity).

    Args:
        text: recognised text of one region.

    Returns:
        A subset of :data:`RULES`, in that order.
    """
    fired = []
    if _DATE.search(text):
        fired.append("date")
    if _digit_run(text):
        fired.append("digit_run")
    if _NAME.search(text):
        fired.append("person_name")
    return tuple(fired)
