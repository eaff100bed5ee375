"""A throw-away local Orthanc PACS (Debian ``orthanc`` + ``orthanc-dicomweb``).

For the pull tests, the pull benchmark and for trying a pull end to end: Orthanc listens on
free localhost ports only, with basic auth, DICOMweb and DIMSE (medssl's AE title allowed
to C-GET), storing into a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def available() -> bool:
    """Whether the Orthanc binary and its DICOMweb plugin are installed."""
    return Path(ORTHANC).exists() and DICOMWEB_PLUGIN.exists()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalPacs:
    """A running local Orthanc.

    Attributes:
        http: REST base URL.
        dicomweb: the ``dicomweb+http://...`` source address.
        dimse: the ``dimse://ORTHANC@127.0.0.1:port`` source address.
        auth: ``(user, password)`` of its one user.
    """

    http: str
    dicomweb: str
    dimse: str
    auth: tuple[str, str]

    def upload(self, files: Sequence[Path]) -> None:
        """Store DICOM files through the REST API (POST /instances)."""
        for path in files:
            r = requests.post(f"{self.http}/instances", data=path.read_bytes(), auth=self.auth,
                              timeout=60)  # fmt: skip
            r.raise_for_status()


def _config(
    folder: Path, http: int, dimse: int, auth: tuple[str, str], aet: str
) -> dict[str, object]:
    return {
        "Name": "medssl-local",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": http,
        "DicomPort": dimse,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {auth[0]: auth[1]},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {
            "medssl": {"AET": aet, "Host": "127.0.0.1", "Port": 1, "AllowGet": True}
        },  # fmt: skip
        "DicomCheckModalityHost": False,
        "DicomAlwaysAllowFind": True,
        "UnknownSopClassAccepted": True,
        "StorageCompression": False,
    }


@contextmanager
def local_orthanc(
    folder: Path, auth: tuple[str, str], aet: str = "MEDSSL", start_s: float = 60.0
) -> Iterator[LocalPacs]:
    """Start Orthanc with a temporary config in ``folder``; stop it on exit.

    Raises:
        RuntimeError: Orthanc missing, or it exited or did not answer within ``start_s``.
    """
    if not available():
        raise RuntimeError("Orthanc or orthanc-dicomweb is not installed")
    http, dimse = free_port(), free_port()
    (folder / "orthanc.json").write_text(json.dumps(_config(folder, http, dimse, auth, aet)))
    log = folder / "orthanc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {log.read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/system", auth=auth, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not answer within {start_s:.0f} s")
            time.sleep(0.2)
        yield LocalPacs(url, f"dicomweb+{url}/dicom-web", f"dimse://ORTHANC@127.0.0.1:{dimse}",
                        auth)  # fmt: skip
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
