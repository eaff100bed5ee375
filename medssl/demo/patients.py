"""Fake patient identities: names from fixed lists of placeholder names, 6-digit IDs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from medssl.demo.seeding import PATIENT_STREAM, random_date, stream_rng

__all__ = ["FakePatient", "fake_patients"]

_FAMILY_NAMES = (
    "DOE", "ROE", "POE", "MOE", "BLOGGS", "PUBLIC", "CITIZEN", "MUSTERMANN",
    "DUPONT", "ROSSI", "NOONE", "TESTER", "SAMPLE", "EXAMPLE", "DEMO", "PHANTOM",
)  # fmt: skip
_GIVEN_NAMES = (
    "JOHN", "JANE", "RICHARD", "MARY", "JOE", "ERIKA", "MAX", "PAT",
    "ALEX", "SAM", "ROBIN", "KIM", "LEE", "JAMIE", "TAYLOR", "CHRIS",
)  # fmt: skip


@dataclass(frozen=True)
class FakePatient:
    """A fake identity; ``name`` is a DICOM PN (``FAMILY^GIVEN``), dates are ``YYYYMMDD``."""

    name: str
    patient_id: str
    birth_date: str
    sex: str

    @property
    def phi(self) -> tuple[str, str, str]:
        """The identifying strings written to files and folder names."""
        return (self.name, self.patient_id, self.birth_date)


def fake_patients(seed: int, n: int) -> list[FakePatient]:
    """``n`` distinct fake identities (names from fixed fake lists, 6-digit IDs).

    Args:
        seed: Data set seed (the patient stream).
        n: Number of identities.

    Returns:
        ``n`` patients with distinct names and IDs.

    Raises:
        ValueError: If ``n`` exceeds the available name combinations.
    """
    rng = stream_rng(seed, PATIENT_STREAM)
    middles = ("",) if n <= len(_FAMILY_NAMES) * len(_GIVEN_NAMES) else ("", *"ABCDEFGHJKLMN")
    combos = [(f, g, m) for m in middles for f in _FAMILY_NAMES for g in _GIVEN_NAMES]
    if n > len(combos):
        raise ValueError(f"n_patients={n} exceeds the {len(combos)} available fake names")
    picks = rng.choice(len(combos), size=n, replace=False)
    ids = rng.choice(900_000, size=n, replace=False) + 100_000
    patients = []
    for pick, pid in zip(picks, ids, strict=True):
        family, given, middle = combos[int(pick)]
        name = f"{family}^{given}" + (f"^{middle}" if middle else "")
        birth = random_date(rng, dt.date(1935, 1, 1), dt.date(2005, 12, 31))
        sex = "MF"[int(rng.integers(2))]
        patients.append(FakePatient(name, str(int(pid)), birth, sex))
    return patients
