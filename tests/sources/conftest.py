"""A real Orthanc PACS (Debian ``orthanc`` + ``orthanc-dicomweb``) on free localhost ports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from medssl.demo import write_demo_dataset
from medssl.sources.orthanc import available, local_orthanc

USER, PASSWORD = "medssl", "pacs-test-secret-7Hq"


@dataclass(frozen=True)
class Pacs:
    """A running Orthanc loaded with ``files``."""

    http: str
    dicomweb: str
    dimse: str
    files: list[Path]


def dicom_files(root: Path) -> list[Path]:
    """The readable DICOM images under ``root`` (broken files and non-images left out)."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "broken" not in p.parts):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - NIfTI, README, labels
            continue
        if "SOPInstanceUID" in ds:
            out.append(path)
    return out


@pytest.fixture(scope="session")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    """Orthanc with DICOMweb and DIMSE, basic auth, loaded with a small demo export."""
    if not available():
        pytest.skip("Orthanc or its DICOMweb plugin not installed (.ci/run installs them)")
    tmp = tmp_path_factory.mktemp("orthanc")
    export = tmp / "export"
    write_demo_dataset(export, seed=5, n_patients=4, image_size=48, n_ct=1, ct_shape=(8, 24, 24))
    files = dicom_files(export)
    with local_orthanc(tmp, (USER, PASSWORD)) as server:
        server.upload(files)
        yield Pacs(server.http, server.dicomweb, server.dimse, files)
