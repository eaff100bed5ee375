"""What to pull from where: the source address, the query and the credentials.

Sources are written as URLs: ``dicomweb+https://host/path`` or ``dicomweb+http://...``
(DICOMweb, PS3.18) and ``dimse://AET@host:port`` (DIMSE, PS3.7; ``AET`` is the PACS's
called AE title). Credentials and TLS settings never come from params: they are read from
the environment (:data:`ENV`) or from a JSON file outside the repository named by
``MEDSSL_PACS_CREDENTIALS``, and never appear in logs, errors or the run record.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

#: Environment variables read for credentials and TLS.
ENV = {
    "user": "MEDSSL_PACS_USER",
    "password": "MEDSSL_PACS_PASSWORD",
    "token": "MEDSSL_PACS_TOKEN",
    "ca_bundle": "MEDSSL_PACS_CA_BUNDLE",
    "file": "MEDSSL_PACS_CREDENTIALS",
}
SCHEMES = ("dicomweb+https", "dicomweb+http", "dimse")
_DATE = re.compile(r"^\d{8}$")


class PullError(RuntimeError):
    """A pull that cannot go on; the message names the source (never a secret)."""


@dataclass(frozen=True)
class Source:
    """A parsed source address.

    Attributes:
        kind: ``dicomweb`` or ``dimse``.
        url: DICOMweb base URL (``http(s)://host/path``), empty for DIMSE.
        host: DIMSE host.
        port: DIMSE port.
        called_aet: the PACS's AE title (DIMSE).
    """

    kind: str
    url: str = ""
    host: str = ""
    port: int = 0
    called_aet: str = ""

    @property
    def name(self) -> str:
        """The address without credentials, for messages."""
        if self.kind == "dicomweb":
            return f"dicomweb+{self.url}"
        return f"dimse://{self.called_aet}@{self.host}:{self.port}"


def parse_source(text: str) -> Source:
    """Parse ``dicomweb+https://...`` or ``dimse://AET@host:port``.

    Raises:
        PullError: an unknown scheme, user info in a URL (credentials belong in the
            environment), or a DIMSE address without AE title or port.
    """
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise PullError(f"source must start with one of {[s + '://' for s in SCHEMES]}")
    if parts.scheme.startswith("dicomweb"):
        if parts.username or parts.password:
            raise PullError("credentials do not belong in the source URL: use MEDSSL_PACS_*")
        if not parts.hostname:
            raise PullError("DICOMweb source has no host")
        url = f"{parts.scheme.split('+', 1)[1]}://{parts.netloc}{parts.path}".rstrip("/")
        return Source("dicomweb", url=url)
    if not parts.username or not parts.hostname or not parts.port:
        raise PullError("DIMSE source must be dimse://AET@host:port")
    return Source("dimse", host=parts.hostname, port=parts.port, called_aet=parts.username)


@dataclass(frozen=True)
class Credentials:
    """Basic auth or bearer token and a CA bundle; ``repr`` never shows a secret."""

    user: str = ""
    password: str = ""
    token: str = ""
    ca_bundle: str = ""

    def __repr__(self) -> str:
        kind = "token" if self.token else "basic" if self.user else "none"
        return f"Credentials({kind})"


def credentials_from_env(repo: Path | None = None) -> Credentials:
    """Credentials from :data:`ENV`, or the JSON file named by ``MEDSSL_PACS_CREDENTIALS``.

    Args:
        repo: the repository root: a credentials file inside it is refused.

    Raises:
        PullError: a credentials file inside the repository, unreadable, or not a mapping.
    """
    values = {k: os.environ.get(v, "") for k, v in ENV.items() if k != "file"}
    path = os.environ.get(ENV["file"], "")
    if path:
        file = Path(path).resolve()
        if repo is not None and file.is_relative_to(repo.resolve()):
            raise PullError(f"{ENV['file']} must point outside the repository")
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise PullError(f"{ENV['file']}: unreadable ({type(exc).__name__})") from exc
        if not isinstance(data, dict):
            raise PullError(f"{ENV['file']}: expected a JSON object")
        values.update({k: str(data[k]) for k in values if data.get(k)})
    return Credentials(**values)


@dataclass(frozen=True)
class Query:
    """Which studies to pull.

    Attributes:
        date_from: first study date ``YYYYMMDD`` or empty.
        date_to: last study date ``YYYYMMDD`` or empty.
        modalities: modalities in study (any of); empty for all.
        limit: at most this many studies (0: no limit).
    """

    date_from: str = ""
    date_to: str = ""
    modalities: tuple[str, ...] = ()
    limit: int = 0

    @property
    def date_range(self) -> str:
        """DICOM range matching (PS3.4 C.2.2.2.5): ``FROM-TO``, ``FROM-``, ``-TO`` or ``""``."""
        return f"{self.date_from}-{self.date_to}" if self.date_from or self.date_to else ""


def parse_query(study_date: str | None, modalities: str | None, limit: int | None) -> Query:
    """A :class:`Query` from the command line or params (``20250101-20251231``, ``CR,DX``).

    Raises:
        PullError: a malformed date range, modality or limit.
    """
    lo = hi = ""
    if study_date:
        lo, sep, hi = study_date.partition("-")
        if not sep or not all(_DATE.match(d) for d in (lo, hi) if d) or not (lo or hi):
            raise PullError("study date must be FROM-TO as YYYYMMDD-YYYYMMDD (either may be empty)")
    mods = tuple(m.strip().upper() for m in (modalities or "").split(",") if m.strip())
    if any(not re.fullmatch(r"[A-Z0-9]{1,16}", m) for m in mods):
        raise PullError("modalities must be DICOM codes such as CR,DX,CT")
    if limit is not None and limit < 0:
        raise PullError("limit must be >= 0")
    return Query(lo, hi, mods, int(limit or 0))
