"""A real Orthanc PACS (Debian ``orthanc`` + ``orthanc-dicomweb``) on free localhost ports."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests

from medssl.demo import write_demo_dataset

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "medssl", "pacs-test-secret-7Hq"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pacs:
    """A running Orthanc loaded with ``files``."""

    http: str
    dicomweb: str
    dimse: str
    files: list[Path]
    root: Path


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/system", auth=(USER, PASSWORD), timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError("Orthanc did not start within 60 s")


def _dicom_files(root: Path) -> list[Path]:
    """The demo's readable DICOM images (broken files and non-images left out)."""
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
    if not Path(ORTHANC).exists() or not DICOMWEB_PLUGIN.exists():
        pytest.skip("Orthanc or its DICOMweb plugin not installed (.ci/run installs them)")
    tmp = tmp_path_factory.mktemp("orthanc")
    export = tmp / "export"
    write_demo_dataset(export, seed=5, n_patients=4, image_size=48, n_ct=1, ct_shape=(8, 24, 24))
    files = _dicom_files(export)
    http, dimse = _free_port(), _free_port()
    config = {
        "Name": "medssl-test",
        "StorageDirectory": str(tmp / "db"),
        "IndexDirectory": str(tmp / "db"),
        "HttpPort": http,
        "DicomPort": dimse,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {
            "medssl": {"AET": "MEDSSL", "Host": "127.0.0.1", "Port": 1, "AllowGet": True}
        },
        "DicomCheckModalityHost": False,
        "DicomAlwaysAllowFind": True,
        "UnknownSopClassAccepted": True,
        "StorageCompression": False,
    }
    (tmp / "orthanc.json").write_text(json.dumps(config))
    log = tmp / "orthanc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([ORTHANC, str(tmp / "orthanc.json")], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{http}"
    try:
        _wait(url, proc, log)
        for path in files:
            r = requests.post(f"{url}/instances", data=path.read_bytes(), auth=(USER, PASSWORD),
                              timeout=30)  # fmt: skip
            r.raise_for_status()
        yield Pacs(url, f"dicomweb+{url}/dicom-web", f"dimse://ORTHANC@127.0.0.1:{dimse}",
                   files, export)  # fmt: skip
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
