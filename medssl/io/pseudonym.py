"""Keyed pseudonyms: the site secret, HMAC keys, and the de-identification profile version.

Everything the pipeline writes carries keyed hashes and checked code strings only, never
a DICOM attribute value (DICOM PS3.15 Annex E, Basic Application Level Confidentiality
Profile, met by construction; see ``docs/ingestion.md``). This module holds what that
needs: the secret (:func:`secret_from_env`), the keys (:class:`Pseudonymizer`) and the
version string outputs record (:data:`PROFILE_VERSION`). Identity in the pixels is
:mod:`medssl.burned_in`'s concern (including the BurnedInAnnotation header check).

Ingestion hashes this file into its cache fingerprint and several DVC stages depend on
it: keep it to what the pipeline uses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

#: Version of the de-identification rules the outputs follow and the edition of PS3.15
#: they refer to. Recorded in every manifest row (``deid_profile``), the run record, the
#: model card and the ingestion cache settings: changing it re-ingests everything.
PROFILE_VERSION = "medssl-deid/1 (PS3.15 2025b, Table E.1-1 Basic Prof. column)"

SECRET_ENV = "MEDSSL_DEID_SECRET"
#: Fixed secret for the synthetic demo data set ONLY; never use it on real patients.
DEMO_SECRET = b"medssl-DEMO-ONLY-deid-secret--never-use-on-real-data"
MIN_SECRET_BYTES = 16

_KIND_RE = re.compile(r"^[a-z]{2,8}$")
_KEY_HEX_CHARS = 16


class DeidError(RuntimeError):
    """Pseudonymisation cannot proceed (missing or too short secret)."""


def secret_from_env(demo: bool) -> bytes:
    """Read the pseudonymisation secret from :data:`SECRET_ENV`.

    Args:
        demo: allow the fixed :data:`DEMO_SECRET` when the variable is unset (synthetic
            demo data only).

    Returns:
        The secret's UTF-8 bytes (a hex string from ``openssl rand -hex 32`` is used as
        is: 64 bytes).

    Raises:
        DeidError: variable unset outside demo mode, or secret shorter than 16 bytes.
    """
    value = os.environ.get(SECRET_ENV, "")
    if not value:
        if demo:
            return DEMO_SECRET
        raise DeidError(
            f"{SECRET_ENV} is not set: pseudonyms need a secret key that stays at the "
            f"site. Create one once and keep it safe, e.g. "
            f"`export {SECRET_ENV}=$(openssl rand -hex 32)`; the same key must be used "
            "for every ingestion of the same cohort."
        )
    secret = value.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise DeidError(
            f"{SECRET_ENV} is {len(secret)} bytes long; use at least {MIN_SECRET_BYTES}, "
            f"e.g. `export {SECRET_ENV}=$(openssl rand -hex 32)`."
        )
    return secret


class Pseudonymizer:
    """Keyed, deterministic pseudonyms (HMAC-SHA256, RFC 2104).

    The same secret and input always give the same output, so images of one patient
    get one key across ingestion runs; without the secret the mapping cannot be
    recomputed or reversed.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        """Store the secret.

        Args:
            secret: at least 16 bytes, e.g. from :func:`secret_from_env`.

        Raises:
            ValueError: secret is not bytes or is too short.
        """
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def __repr__(self) -> str:
        """Never show the secret."""
        return f"Pseudonymizer(fingerprint={self.fingerprint!r})"

    def _digest(self, domain: str, value: str) -> bytes:
        """HMAC-SHA256 of ``domain NUL value``; the NUL keeps domains apart."""
        msg = domain.encode("utf-8") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    @property
    def fingerprint(self) -> str:
        """12 hex characters naming the secret, without revealing it."""
        return self._digest("fingerprint", "").hex()[:12]

    def key(self, kind: str, value: str) -> str:
        """Pseudonymous key ``<kind>-<16 hex>`` (64 bits of HMAC-SHA256 over kind, value).

        Args:
            kind: 2-8 lowercase letters; different kinds give unrelated keys for the
                same value. Ingestion uses ``"patient"`` (PatientID: the manifest's
                ``patient_key``), ``"study"``, ``"series"``, ``"sop"``, ``"image"`` and
                ``"path"``; labels and the reserve key their own columns the same way.
            value: the identifier (PatientID, a UID, a source path, ...).

        Returns:
            E.g. ``"patient-3f2a9c0d1e4b5a67"``.

        Raises:
            ValueError: malformed kind.
        """
        if not _KIND_RE.match(kind):
            raise ValueError(f"pseudonym kind {kind!r} must be 2-8 lowercase letters")
        return f"{kind}-{self._digest(kind, value).hex()[:_KEY_HEX_CHARS]}"
