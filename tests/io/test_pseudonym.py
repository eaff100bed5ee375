"""Tests for medssl.io.pseudonym (keyed pseudonyms, secret, profile version)."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from pydicom.dataset import Dataset

from medssl.burned_in.flags import has_burned_in_annotation
from medssl.io.pseudonym import (
    DEMO_SECRET,
    PROFILE_VERSION,
    SECRET_ENV,
    DeidError,
    Pseudonymizer,
    secret_from_env,
)

SECRET = b"unit-test-secret-0123456789abcdef"
OTHER_SECRET = b"another-secret-fedcba9876543210"


@pytest.fixture
def pseudo() -> Pseudonymizer:
    return Pseudonymizer(SECRET)


def _hmac_hex(secret: bytes, domain: str, value: str) -> str:
    msg = domain.encode() + b"\x00" + value.encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def test_key_matches_reference_hmac_and_separates_kinds(pseudo: Pseudonymizer) -> None:
    key = pseudo.key("patient", "PID-1")
    assert re.fullmatch(r"patient-[0-9a-f]{16}", key)
    assert key == "patient-" + _hmac_hex(SECRET, "patient", "PID-1")[:16]
    assert key == Pseudonymizer(SECRET).key("patient", "PID-1")
    assert key.split("-")[1] != pseudo.key("study", "PID-1").split("-")[1]
    assert key != Pseudonymizer(OTHER_SECRET).key("patient", "PID-1")
    assert key != pseudo.key("patient", "PID-2")
    with pytest.raises(ValueError, match="kind"):
        pseudo.key("Pat!", "x")


def test_demo_patient_keys_unchanged() -> None:
    """The demo's manifest, splits and reports depend on these exact values."""
    pseudo = Pseudonymizer(DEMO_SECRET)
    assert pseudo.key("patient", "P1") == "patient-b74e9c5298588815"
    assert pseudo.key("patient", "PID-8817263") == "patient-539158f5d43e6949"


def test_pseudonymizer_rejects_short_secret_and_hides_it() -> None:
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")
    shown = repr(Pseudonymizer(SECRET))
    assert SECRET.decode() not in shown
    assert re.fullmatch(r"Pseudonymizer\(fingerprint='[0-9a-f]{12}'\)", shown)


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(DeidError, match=SECRET_ENV) as info:
        secret_from_env(demo=False)
    assert "openssl rand -hex 32" in str(info.value)
    assert secret_from_env(demo=True) == DEMO_SECRET
    monkeypatch.setenv(SECRET_ENV, "tooshort")
    with pytest.raises(DeidError, match="at least 16"):
        secret_from_env(demo=True)
    monkeypatch.setenv(SECRET_ENV, "a" * 64)
    assert secret_from_env(demo=False) == b"a" * 64


@pytest.mark.parametrize(
    ("value", "expected"), [("YES", True), ("YES ", True), ("NO", False), (None, False)]
)
def test_has_burned_in_annotation(value: str | None, expected: bool) -> None:
    ds = Dataset()
    if value is not None:
        ds.BurnedInAnnotation = value
    assert has_burned_in_annotation(ds) is expected


def test_profile_version_unchanged() -> None:
    """Manifest rows and the ingestion cache settings record it: a change re-ingests."""
    assert PROFILE_VERSION == "medssl-deid/1 (PS3.15 2025b, Table E.1-1 Basic Prof. column)"
