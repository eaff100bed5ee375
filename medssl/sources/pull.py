"""Incremental, resumable pulls from a PACS into a folder that ingestion reads.

Each instance is written to a hidden temporary name and renamed when complete, then
recorded in ``pulled.csv`` beside the files (``sop_key`` = keyed hash of the SOP Instance
UID, ``sha256`` of the file, ``path``). A rerun fetches only instances not in the table; a
pull killed mid-way resumes without duplicates or partial files: leftover temporary files
are deleted and complete files missing from the table are adopted. File and folder names
are keyed hashes, so no identifier reaches a path.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from medssl.io.pseudonym import Pseudonymizer, secret_from_env
from medssl.params import PullParams
from medssl.sources.spec import PullError, Query, credentials_from_env, parse_query, parse_source

LEDGER_NAME = "pulled.csv"
#: Instances asked for in one retrieve (one C-GET with a UID list; one WADO-RS call each).
BATCH = 64
LEDGER_COLUMNS = ("sop_key", "sha256", "path")
PARTIAL_SUFFIX = ".partial"


class PacsClient(Protocol):
    """What :func:`pull` needs from a protocol client (DICOMweb or DIMSE)."""

    def studies(self, query: Query) -> list[str]:
        """Study Instance UIDs matching the query (sorted, at most ``query.limit``)."""
        ...

    def instances(self, study_uid: str) -> list[tuple[str, str]]:
        """``(series UID, SOP Instance UID)`` of every instance of a study, sorted."""
        ...

    def fetch(
        self, study_uid: str, series_uid: str, sop_uids: list[str]
    ) -> Iterator[tuple[str, bytes]]:
        """Instances of one series as ``(SOP Instance UID, DICOM Part 10 file)`` pairs."""
        ...


@dataclass(frozen=True)
class PullSummary:
    """Counts of one pull.

    Attributes:
        studies: studies matched.
        instances: instances listed in them.
        fetched: instances listed as new (all fetched when the pull returns).
        already: instances in the ledger before (not fetched again).
        adopted: complete files found without a ledger row (a killed run), recorded.
        bytes: bytes written now.
    """

    studies: int
    instances: int
    fetched: int
    already: int
    adopted: int
    bytes: int


class Ledger:
    """``pulled.csv``: what a folder holds, appended to after each completed file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LEDGER_NAME
        self.rows: dict[str, tuple[str, str]] = {}
        if self.path.exists():
            with self.path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    self.rows[row["sop_key"]] = (row["sha256"], row["path"])
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self._write_header()

    def _write_header(self) -> None:
        with self.path.open("w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerow(LEDGER_COLUMNS)

    def __contains__(self, sop_key: object) -> bool:
        return sop_key in self.rows

    def add(self, sop_key: str, sha256: str, rel: str) -> None:
        """Record a completed file (flushed and fsynced before returning)."""
        with self.path.open("a", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerow((sop_key, sha256, rel))
            handle.flush()
            os.fsync(handle.fileno())
        self.rows[sop_key] = (sha256, rel)

    def recover(self) -> int:
        """Delete temporary files; record complete files a killed run did not. Returns adopted."""
        for partial in self.folder.rglob(f".*{PARTIAL_SUFFIX}"):
            partial.unlink()
        known = {rel for _, rel in self.rows.values()}
        adopted = 0
        for path in sorted(self.folder.rglob("*.dcm")):
            rel = path.relative_to(self.folder).as_posix()
            if rel not in known:
                self.add(path.stem, _sha256(path.read_bytes()), rel)
                adopted += 1
        return adopted


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temporary name beside ``path``, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _listing(client: PacsClient, studies: Iterable[str]) -> list[tuple[str, str, str]]:
    return [(st, se, sop) for st in studies for se, sop in client.instances(st)]


def pull(
    client: PacsClient,
    query: Query,
    out: Path,
    pseudo: Pseudonymizer,
    *,
    log: Callable[[str], None] = print,
) -> PullSummary:
    """Fetch every instance of the matching studies that ``out`` does not hold yet.

    Args:
        client: a connected DICOMweb or DIMSE client.
        query: which studies.
        out: destination folder (created); read by the ingest stage.
        pseudo: the site's pseudonymizer (keys the file names and the ledger).
        log: progress messages (counts only).

    Returns:
        What was matched, fetched and skipped.
    """
    ledger = Ledger(out)
    adopted = ledger.recover()
    studies = client.studies(query)
    listing = _listing(client, studies)
    todo = [item for item in listing if pseudo.key("sop", item[2]) not in ledger]
    log(f"pull: {len(studies)} studies, {len(listing)} instances, {len(todo)} to fetch")
    batches: dict[tuple[str, str], list[str]] = {}
    for study, series, sop in todo:
        batches.setdefault((study, series), []).append(sop)
    written = 0
    with tqdm(total=len(todo), unit="file", desc="pull", disable=not todo) as bar:
        for (study, series), sops in batches.items():
            folder = f"{pseudo.key('study', study)}/{pseudo.key('series', series)}"
            for start in range(0, len(sops), BATCH):
                for sop, data in client.fetch(study, series, sops[start : start + BATCH]):
                    key = pseudo.key("sop", sop)
                    write_atomic(out / folder / f"{key}.dcm", data)
                    ledger.add(key, _sha256(data), f"{folder}/{key}.dcm")
                    written += len(data)
                    bar.update(1)
    return PullSummary(
        studies=len(studies),
        instances=len(listing),
        fetched=len(todo),
        already=len(listing) - len(todo),
        adopted=adopted,
        bytes=written,
    )


def pull_from(
    address: str,
    out: Path,
    query: Query,
    pseudo: Pseudonymizer,
    *,
    calling_aet: str = "MEDSSL",
    repo: Path | None = None,
    timeout: float = 30.0,
    log: Callable[[str], None] = print,
) -> PullSummary:
    """Open the source named by ``address`` (credentials from the environment) and pull.

    Args:
        address: ``dicomweb+https://...``, ``dicomweb+http://...`` or ``dimse://AET@host:port``.
        out: destination folder.
        query: which studies.
        pseudo: the site's pseudonymizer.
        calling_aet: medssl's AE title (DIMSE).
        repo: the repository root (a credentials file inside it is refused).
        timeout: seconds per request or DIMSE message.
        log: progress messages.

    Raises:
        PullError: a bad address, refused login, unreachable server, timeout or bad
            response, named by the source without secrets; what was fetched stays.
    """
    from medssl.sources.dicomweb import DicomWebPacs
    from medssl.sources.dimse import DimsePacs

    source = parse_source(address)
    if source.kind == "dicomweb":
        return pull(DicomWebPacs(source, credentials_from_env(repo), timeout), query, out,
                    pseudo, log=log)  # fmt: skip
    client = DimsePacs(source, calling_aet, timeout)
    try:
        return pull(client, query, out, pseudo, log=log)
    finally:
        client.close()


def pull_configured(
    params: PullParams, out: Path, *, demo: bool, repo: Path | None = None
) -> PullSummary | None:
    """The ``pull`` params section at work: pull when enabled, else only an empty ledger.

    Args:
        params: the typed ``pull`` section.
        out: destination folder (created either way, so that ingestion finds it).
        demo: ``data.demo_mode`` (the demo secret; otherwise ``$MEDSSL_DEID_SECRET``).
        repo: the repository root (a credentials file inside it is refused).

    Returns:
        What was pulled, or None when ``pull.enabled`` is false.

    Raises:
        PullError: see :func:`pull_from`; also a missing ``pull.source``.
        medssl.io.pseudonym.DeidError: no secret outside demo mode.
    """
    if not params.enabled:
        Ledger(out)
        return None
    if not params.source:
        raise PullError("params.yaml: pull.source: is needed when pull.enabled is true")
    query = parse_query(params.study_date, params.modalities, params.limit)
    pseudo = Pseudonymizer(secret_from_env(demo=demo))
    return pull_from(params.source, out, query, pseudo, calling_aet=params.aet, repo=repo,
                     timeout=params.timeout_s)  # fmt: skip
