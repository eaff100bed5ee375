"""DICOMweb client: QIDO-RS to search, WADO-RS to retrieve (PS3.18), via dicomweb-client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmwrite

from medssl.sources.spec import Credentials, PullError, Query, Source

#: Tags (hex) of the QIDO-RS JSON answers (PS3.18 F.2).
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
#: QIDO-RS page size; paging stops at a short page or one with nothing new (some servers,
#: Orthanc 1.10 with ModalitiesInStudy among them, ignore ``offset``).
PAGE = 100
#: Retrieve instances in the transfer syntax they are stored in (no transcoding).
ANY_SYNTAX = (("application/dicom", "*"),)


def _uid(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value", [])
    return str(values[0]) if values else ""


@contextmanager
def _errors(source: Source) -> Iterator[None]:
    """Turn transport and HTTP failures into one-line errors naming the source."""
    try:
        yield
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        what = "login refused" if code in (401, 403) else "bad response"
        raise PullError(f"{source.name}: {what} (HTTP {code})") from None
    except requests.Timeout:
        raise PullError(f"{source.name}: timed out") from None
    except requests.ConnectionError:
        raise PullError(f"{source.name}: unreachable") from None
    except (ValueError, KeyError) as exc:
        raise PullError(f"{source.name}: bad response ({type(exc).__name__})") from None


class DicomWebPacs:
    """A DICOMweb server as a :class:`medssl.sources.pull.PacsClient`.

    Args:
        source: a ``dicomweb`` :class:`Source`.
        credentials: basic auth or bearer token, CA bundle.
        timeout: seconds per request.
    """

    def __init__(self, source: Source, credentials: Credentials, timeout: float = 30.0) -> None:
        session = requests.Session()
        if credentials.user:
            session.auth = (credentials.user, credentials.password)
        if credentials.ca_bundle:
            session.verify = credentials.ca_bundle
        headers = {"Authorization": f"Bearer {credentials.token}"} if credentials.token else None
        self.source = source
        self.client = DICOMwebClient(source.url, session=session, headers=headers, timeout=timeout)

    def _paged(self, search: Any, key: Any, **kwargs: Any) -> set[Any]:
        """Every answer of a QIDO-RS search, page by page (see :data:`PAGE`)."""
        found: set[Any] = set()
        offset = 0
        while True:
            with _errors(self.source):
                page = search(limit=PAGE, offset=offset, **kwargs)
            new = {key(item) for item in page} - found
            found |= new
            if len(page) < PAGE or not new:
                return found
            offset += len(page)

    def studies(self, query: Query) -> list[str]:
        """QIDO-RS ``/studies`` with StudyDate and ModalitiesInStudy (one query per modality)."""
        found: set[str] = set()
        for modality in query.modalities or ("",):
            filters = {"StudyDate": query.date_range, "ModalitiesInStudy": modality}
            found |= self._paged(
                self.client.search_for_studies,
                lambda item: _uid(item, STUDY_UID),
                search_filters={k: v for k, v in filters.items() if v},
            )
        uids = sorted(found - {""})
        return uids[: query.limit] if query.limit else uids

    def instances(self, study_uid: str) -> list[tuple[str, str]]:
        """QIDO-RS ``/studies/{uid}/instances``."""
        pairs = self._paged(
            self.client.search_for_instances,
            lambda i: (_uid(i, SERIES_UID), _uid(i, SOP_UID)),
            study_instance_uid=study_uid,
            fields=["SeriesInstanceUID"],
        )
        return sorted(p for p in pairs if all(p))

    def fetch(
        self, study_uid: str, series_uid: str, sop_uids: list[str]
    ) -> Iterator[tuple[str, bytes]]:
        """WADO-RS instance retrievals in their stored transfer syntax, as Part 10 bytes."""
        for sop_uid in sop_uids:
            with _errors(self.source):
                ds = self.client.retrieve_instance(
                    study_uid, series_uid, sop_uid, media_types=ANY_SYNTAX
                )
            buffer = io.BytesIO()
            dcmwrite(buffer, ds, enforce_file_format=True)
            yield sop_uid, buffer.getvalue()
