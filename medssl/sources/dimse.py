"""DIMSE client: C-FIND to search, C-GET to retrieve (PS3.4 C.4), via pynetdicom.

C-GET returns the instances over the same association (PS3.4 C.4.3), so no listening
port is needed on the site's side; medssl proposes the storage classes of
:data:`STORAGE_CLASSES` with the SCP role (PS3.7 D.3.3.4).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association

from medssl.sources.spec import PullError, Query, Source

#: Storage SOP classes accepted on C-GET: radiographs, CT, MR, secondary capture.
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray, for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray, for processing
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
)
#: Transfer syntaxes offered for storage, each in its own presentation context, so that the
#: PACS can send a stored file without transcoding it (PS3.8 9.3.2.2).
STORAGE_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
)
SUCCESS, PENDING = 0x0000, (0xFF00, 0xFF01)
#: Study Root Query/Retrieve Information Model - FIND and - GET (PS3.4 C.6.2.1).
FIND = "1.2.840.10008.5.1.4.1.2.2.1"
GET = "1.2.840.10008.5.1.4.1.2.2.3"


def _part10(dataset: Dataset, meta: FileMetaDataset) -> bytes:
    ds = Dataset(dataset)
    ds.file_meta = meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


class DimsePacs:
    """A DIMSE Query/Retrieve SCP as a :class:`medssl.sources.pull.PacsClient`.

    Args:
        source: a ``dimse`` :class:`Source`.
        calling_aet: medssl's own AE title (the PACS must know it).
        timeout: seconds for association, DIMSE messages and the network.
    """

    def __init__(self, source: Source, calling_aet: str = "MEDSSL", timeout: float = 30.0) -> None:
        self.source = source
        ae = AE(ae_title=calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        ae.add_requested_context(FIND)
        ae.add_requested_context(GET)
        for uid in STORAGE_CLASSES:  # one context per syntax: the PACS sends files as stored
            for syntax in STORAGE_SYNTAXES:
                ae.add_requested_context(uid, syntax)
        self.ae = ae
        self._received: dict[str, bytes] = {}
        self._assoc: Association | None = None

    def _on_store(self, event: Any) -> int:
        ds = event.dataset
        self._received[str(ds.SOPInstanceUID)] = _part10(ds, event.file_meta)
        return SUCCESS

    def _association(self) -> Association:
        if self._assoc is None or not self._assoc.is_established:
            roles: list[Any] = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
            assoc = self.ae.associate(
                self.source.host,
                self.source.port,
                ae_title=self.source.called_aet,
                ext_neg=roles,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
            )
            if not assoc.is_established:
                what = "association rejected" if assoc.is_rejected else "unreachable or aborted"
                raise PullError(f"{self.source.name}: {what}")
            self._assoc = assoc
        return self._assoc

    def close(self) -> None:
        """Release the association."""
        if self._assoc is not None and self._assoc.is_established:
            self._assoc.release()
        self._assoc = None

    @contextmanager
    def _checked(self, what: str) -> Iterator[None]:
        try:
            yield
        except PullError:
            self.close()
            raise
        except (RuntimeError, ValueError) as exc:
            self.close()
            raise PullError(f"{self.source.name}: {what} failed ({type(exc).__name__})") from None

    def _find(self, identifier: Dataset) -> list[Dataset]:
        out = []
        with self._checked("C-FIND"):
            for status, found in self._association().send_c_find(identifier, FIND):
                if not status:
                    raise PullError(f"{self.source.name}: C-FIND got no answer (timeout)")
                if status.Status in PENDING and found is not None:
                    out.append(found)
                elif status.Status != SUCCESS:
                    raise PullError(f"{self.source.name}: C-FIND failed (0x{status.Status:04X})")
        return out

    def studies(self, query: Query) -> list[str]:
        """C-FIND at STUDY level with StudyDate and ModalitiesInStudy (one per modality)."""
        found: set[str] = set()
        for modality in query.modalities or ("",):
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = ""
            ds.StudyDate = query.date_range
            ds.ModalitiesInStudy = modality
            found |= {str(r.get("StudyInstanceUID", "")) for r in self._find(ds)} - {""}
        uids = sorted(found)
        return uids[: query.limit] if query.limit else uids

    def instances(self, study_uid: str) -> list[tuple[str, str]]:
        """C-FIND at IMAGE level for the whole study (series by universal matching).

        Falls back to SERIES-then-IMAGE queries when the PACS answers nothing at IMAGE level
        without a series (strictly hierarchical SCPs, PS3.4 C.4.1.3.1).
        """
        image = Dataset()
        image.QueryRetrieveLevel, image.StudyInstanceUID = "IMAGE", study_uid
        image.SeriesInstanceUID, image.SOPInstanceUID = "", ""
        found = [(str(i.SeriesInstanceUID), str(i.SOPInstanceUID)) for i in self._find(image)]
        if found:
            return sorted(set(found))
        pairs = []
        series = Dataset()
        series.QueryRetrieveLevel, series.StudyInstanceUID = "SERIES", study_uid
        series.SeriesInstanceUID = ""
        for s in self._find(series):
            image.SeriesInstanceUID = s.SeriesInstanceUID
            pairs += [(str(s.SeriesInstanceUID), str(i.SOPInstanceUID)) for i in self._find(image)]
        return sorted(set(pairs))

    def fetch(
        self, study_uid: str, series_uid: str, sop_uids: list[str]
    ) -> Iterator[tuple[str, bytes]]:
        """One C-GET at IMAGE level with a list of SOP Instance UIDs (PS3.4 C.2.2.2.2);
        the instances arrive by C-STORE on the same association."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = list(sop_uids) if len(sop_uids) > 1 else sop_uids[0]
        with self._checked("C-GET"):
            for status, _ in self._association().send_c_get(ds, GET):
                if not status:
                    raise PullError(f"{self.source.name}: C-GET got no answer (timeout)")
                if status.Status not in (*PENDING, SUCCESS):
                    raise PullError(f"{self.source.name}: C-GET failed (0x{status.Status:04X})")
        missing = [uid for uid in sop_uids if uid not in self._received]
        if missing:
            self._received.clear()
            raise PullError(f"{self.source.name}: C-GET sent {len(missing)} instance(s) short")
        for uid in sop_uids:
            yield uid, self._received.pop(uid)
