"""Tests for medssl.io.deid (PS3.15 Annex E Basic Profile, keyed pseudonyms)."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import uuid
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_has_tag, tag_for_keyword
from pydicom.dataset import Dataset, FileDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

from medssl.io import deid
from medssl.io.deid import (
    BASIC_PROFILE_ACTIONS,
    DEMO_SECRET,
    PROFILE,
    SAFE_KEYWORDS,
    SECRET_ENV,
    Action,
    DeidError,
    Pseudonymizer,
    deidentify,
    has_burned_in_annotation,
    identifying_values,
    safe_attributes,
    secret_from_env,
)

SECRET = b"unit-test-secret-0123456789abcdef"
OTHER_SECRET = b"another-secret-fedcba9876543210"
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
UNKNOWN_PUBLIC_TAG = 0x0018FFF0

# pydicom's own CT_small.dcm holds an over-long SH value.
pytestmark = pytest.mark.filterwarnings("ignore:The value length:UserWarning")

# Fake PHI placed outside the attributes listed by identifying_values().
EXTRA_PHI = (
    "PRIVATE-PHI-4242",
    "OVERLAY-PHI-Quokka",
    "CURVE-PHI-Wombat",
    "UNKNOWN-PHI-Numbat",
    "Evaluator^Secretname",
    "Chest CT for Zyxwvut",
    "SITEAE-PHI-01",
    "Nested^Doctorname",
    "REQUEST-PHI-Bilby",
)


@pytest.fixture
def pseudo() -> Pseudonymizer:
    return Pseudonymizer(SECRET)


def _item(**keywords: object) -> Dataset:
    item = Dataset()
    for keyword, value in keywords.items():
        setattr(item, keyword, value)
    return item


def _add_phi(ds: Dataset) -> None:
    """Fill ``ds`` with fake PHI in listed, nested, private, overlay and curve elements."""
    ds.PatientName = "Zyxwvut^Quokkajane"
    ds.PatientID = "PID-8817263"
    ds.PatientBirthDate = "19610713"
    ds.OtherPatientIDs = "ALT-55512"
    ds.OtherPatientNames = "Smithers^Janetta"
    ds.PatientAddress = "12 Elm Street Springfield"
    ds.PatientTelephoneNumbers = "555-0142"
    ds.MedicalRecordLocator = "MRL-0099812"
    ds.AccessionNumber = "ACC-99412"
    ds.StudyID = "STUDY-7781"
    ds.InstitutionName = "Saint Example Hospital"
    ds.InstitutionAddress = "1 Hospital Road"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.PerformingPhysicianName = "Wilson^James"
    ds.OperatorsName = "Ratched^Mildred"
    ds.StationName = "CTSCAN-ROOM-3"
    ds.DeviceSerialNumber = "SN-4471902"
    ds.StudyDescription = "Chest CT for Zyxwvut"
    ds.ImageComments = "patient Zyxwvut, MRN PID-8817263"
    ds.add_new(0x00142006, "PN", "Evaluator^Secretname")  # EvaluatorName: not in table
    ds.add_new(UNKNOWN_PUBLIC_TAG, "LO", "UNKNOWN-PHI-Numbat")
    ds.OtherPatientIDsSequence = Sequence(
        [_item(PatientID="NESTED-ID-31337", IssuerOfPatientID="Nested General")]
    )
    # A sequence the table does not list: kept, but its items are de-identified.
    ds.ProcedureCodeSequence = Sequence(
        [
            _item(
                CodeValue="CTCHEST",
                CodingSchemeDesignator="99LOCAL",
                CodeMeaning="CT chest",
                PerformingPhysicianName="Nested^Doctorname",
                ReferencedSOPInstanceUID=ds.SOPInstanceUID,
                RequestAttributesSequence=Sequence(
                    [_item(RequestedProcedureID="REQUEST-PHI-Bilby")]
                ),
            )
        ]
    )
    block = ds.private_block(0x0009, "MEDSSL TEST", create=True)
    block.add_new(0x01, "LO", "PRIVATE-PHI-4242")
    ds.add_new(0x60000010, "US", 4)  # OverlayRows
    ds.add_new(0x60000011, "US", 4)  # OverlayColumns
    ds.add_new(0x60000022, "LO", "OVERLAY-PHI-Quokka")  # OverlayDescription
    ds.add_new(0x60000040, "CS", "G")  # OverlayType
    ds.add_new(0x60000050, "SS", [1, 1])  # OverlayOrigin
    ds.add_new(0x60000100, "US", 1)  # OverlayBitsAllocated
    ds.add_new(0x60000102, "US", 0)  # OverlayBitPosition
    ds.add_new(0x60003000, "OW", b"\xff\x00")  # OverlayData
    ds.add_new(0x50002500, "LO", "CURVE-PHI-Wombat")  # CurveLabel (retired)
    if isinstance(ds, FileDataset):
        ds.file_meta.SourceApplicationEntityTitle = "SITEAE-PHI-01"


def _testdata(name: str) -> FileDataset:
    """A DICOM file shipped with pydicom."""
    path = get_testdata_file(name)
    assert isinstance(path, str)
    ds = pydicom.dcmread(path)
    assert isinstance(ds, FileDataset)
    return ds


def _tag(keyword: str) -> BaseTag:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return BaseTag(tag)


@pytest.fixture(params=["CT_small.dcm", "MR_small.dcm"])
def phi_ds(request: pytest.FixtureRequest) -> FileDataset:
    ds = _testdata(request.param)
    _add_phi(ds)
    return ds


def _to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds)
    return buf.getvalue()


def _hmac_hex(secret: bytes, domain: str, value: str) -> str:
    msg = domain.encode() + b"\x00" + value.encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


# --- table -----------------------------------------------------------------------------


def test_table_covers_common_attributes_with_single_actions() -> None:
    assert len(BASIC_PROFILE_ACTIONS) >= 60
    assert all(isinstance(a, Action) for a in BASIC_PROFILE_ACTIONS.values())
    expected = {
        "PatientName": Action.ZERO,
        "PatientID": Action.ZERO,
        "PatientBirthDate": Action.ZERO,
        "PatientSex": Action.ZERO,
        "PatientAge": Action.REMOVE,
        "OtherPatientIDsSequence": Action.REMOVE,
        "StudyInstanceUID": Action.UID,
        "SeriesInstanceUID": Action.UID,
        "SOPInstanceUID": Action.UID,
        "FrameOfReferenceUID": Action.UID,
        "AccessionNumber": Action.ZERO,
        "InstitutionName": Action.REMOVE,
        "ReferringPhysicianName": Action.ZERO,
        "ContentSequence": Action.DUMMY,
        "ImageComments": Action.REMOVE,
    }
    for keyword, action in expected.items():
        assert BASIC_PROFILE_ACTIONS[_tag(keyword)] is action, keyword
    # The Basic Prof. column has no K entry (K only appears in the option columns).
    assert Action.KEEP not in BASIC_PROFILE_ACTIONS.values()


def test_safe_keywords_are_not_in_the_table() -> None:
    for keyword in SAFE_KEYWORDS:
        assert _tag(keyword) not in BASIC_PROFILE_ACTIONS, keyword


# --- deidentify ------------------------------------------------------------------------


def test_no_identifying_value_survives_serialisation(
    phi_ds: FileDataset, pseudo: Pseudonymizer
) -> None:
    secrets = identifying_values(phi_ds) | set(EXTRA_PHI)
    raw = _to_bytes(phi_ds)
    assert all(s.encode() in raw for s in EXTRA_PHI)  # the probe does find them
    out = _to_bytes(deidentify(phi_ds, pseudo))
    leaked = sorted(s for s in secrets if s.encode() in out)
    assert not leaked


def test_private_overlay_curve_and_unknown_are_removed(
    phi_ds: FileDataset, pseudo: Pseudonymizer
) -> None:
    out = deidentify(phi_ds, pseudo)
    tags = list(out.keys())
    assert not any(t.is_private for t in tags)
    assert not any((t.group & 0xFF00) in (0x5000, 0x6000) for t in tags)
    assert UNKNOWN_PUBLIC_TAG not in out
    assert out[0x00142006].value in (None, "")  # unlisted PN emptied
    assert "SourceApplicationEntityTitle" not in out.file_meta


def test_table_actions_applied_at_every_level(phi_ds: FileDataset, pseudo: Pseudonymizer) -> None:
    out = deidentify(phi_ds, pseudo)
    for keyword in ("PatientBirthDate", "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        assert out[_tag(keyword)].value in (None, "")  # Z
    for keyword in ("OtherPatientIDs", "InstitutionName", "StationName", "DeviceSerialNumber"):
        assert keyword not in out  # X
    assert "OtherPatientIDsSequence" not in out
    item = out.ProcedureCodeSequence[0]  # unlisted sequence: kept, items cleaned
    assert item.CodeValue == "CTCHEST"
    assert "PerformingPhysicianName" not in item
    assert "RequestAttributesSequence" not in item
    assert item.ReferencedSOPInstanceUID == out.SOPInstanceUID  # reference kept consistent


def test_dummy_and_sequence_actions(pseudo: Pseudonymizer) -> None:
    ds = Dataset()
    ds.PatientID = "P1"
    ds.FrameAcquisitionDateTime = "20240101120000"  # D, DT
    ds.VerifyingOrganization = "Some Org"  # D, LO
    ds.ContentSequence = Sequence([_item(TextValue="free text about the patient")])  # D, SQ
    ds.SpecimenPreparationSequence = Sequence([_item(CodeMeaning="x")])  # Z, SQ
    out = deidentify(ds, pseudo)
    assert out.FrameAcquisitionDateTime == "19000101000000"
    assert out.VerifyingOrganization == "ANONYMOUS"
    assert len(out.ContentSequence) == 0
    assert len(out.SpecimenPreparationSequence) == 0


def test_unlisted_attributes_kept_unchanged(phi_ds: FileDataset, pseudo: Pseudonymizer) -> None:
    out = deidentify(phi_ds, pseudo)
    checked = 0
    for elem in phi_ds:
        tag = elem.tag
        if (
            tag.is_private
            or tag in BASIC_PROFILE_ACTIONS
            or (tag.group & 0xFF00) in (0x5000, 0x6000)
            or not dictionary_has_tag(tag)
            or elem.VR in ("SQ", "PN")
            or tag.element == 0
            or elem.keyword in ("PatientIdentityRemoved", "DeidentificationMethod")
        ):
            continue
        assert out[tag].value == elem.value, elem.keyword
        checked += 1
    assert checked >= 15
    assert safe_attributes(out) == safe_attributes(phi_ds)


def test_uids_replaced_consistently(phi_ds: FileDataset, pseudo: Pseudonymizer) -> None:
    out = deidentify(phi_ds, pseudo)
    again = deidentify(phi_ds, Pseudonymizer(SECRET))
    other = deidentify(phi_ds, Pseudonymizer(OTHER_SECRET))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        original, new = str(phi_ds.get(keyword)), str(out.get(keyword))
        assert new != original
        assert new == str(again.get(keyword)) == pseudo.uid(original)
        assert new != str(other.get(keyword))
        assert UID_RE.match(new) and len(new) <= 64 and UID(new).is_valid
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


def test_writes_and_reads_back_with_pixels_intact(
    phi_ds: FileDataset, pseudo: Pseudonymizer, tmp_path: Path
) -> None:
    path = tmp_path / "deid.dcm"
    deidentify(phi_ds, pseudo).save_as(path)
    back = pydicom.dcmread(path)
    np.testing.assert_array_equal(back.pixel_array, phi_ds.pixel_array)
    assert back.PatientIdentityRemoved == "YES"
    assert " ".join(back.DeidentificationMethod) == PROFILE
    assert all(len(v) <= 64 for v in back.DeidentificationMethod)  # LO limit
    code = back.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert code.CodeMeaning == "Basic Application Confidentiality Profile"
    key = pseudo.key("pat", "PID-8817263")
    assert back.PatientID == key and str(back.PatientName) == key


def test_input_untouched_and_file_traces_cleared(
    phi_ds: FileDataset, pseudo: Pseudonymizer
) -> None:
    out = deidentify(phi_ds, pseudo)
    assert str(phi_ds.PatientName) == "Zyxwvut^Quokkajane"
    assert "OtherPatientIDsSequence" in phi_ds
    assert out.filename is None
    assert out.preamble in (None, b"\x00" * 128)


def test_missing_patient_id_raises(pseudo: Pseudonymizer) -> None:
    ds = Dataset()
    ds.PatientName = "Nobody^Known"
    with pytest.raises(DeidError, match="PatientID"):
        deidentify(ds, pseudo)


# --- pseudonyms and secret -----------------------------------------------------------


def test_key_matches_reference_hmac_and_separates_kinds(pseudo: Pseudonymizer) -> None:
    key = pseudo.key("pat", "PID-1")
    assert re.fullmatch(r"pat-[0-9a-f]{16}", key)
    assert key == "pat-" + _hmac_hex(SECRET, "pat", "PID-1")[:16]
    assert key == Pseudonymizer(SECRET).key("pat", "PID-1")
    assert key[4:] != pseudo.key("stu", "PID-1")[4:]
    assert key != Pseudonymizer(OTHER_SECRET).key("pat", "PID-1")
    assert key != pseudo.key("pat", "PID-2")
    with pytest.raises(ValueError, match="kind"):
        pseudo.key("Pat!", "x")


def test_uid_reference_and_uuid_bits(pseudo: Pseudonymizer) -> None:
    new = pseudo.uid("1.2.3.4")
    n = int(new.removeprefix("2.25."))
    ref = int(_hmac_hex(SECRET, "uid", "1.2.3.4")[:32], 16)
    mask = ~((0xF << 76) | (0x3 << 62))
    assert n & mask == ref & mask
    assert uuid.UUID(int=n).version == 8 and uuid.UUID(int=n).variant == uuid.RFC_4122
    assert new.startswith("2.25.") and len(new) <= 64
    with pytest.raises(ValueError):
        pseudo.uid("")


def test_pseudonymizer_rejects_short_secret_and_hides_it() -> None:
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")
    assert SECRET.decode() not in repr(Pseudonymizer(SECRET))


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


# --- helpers for ingestion -----------------------------------------------------------


def test_safe_attributes_ct() -> None:
    ds = _testdata("CT_small.dcm")
    attrs = safe_attributes(ds)
    assert set(attrs) <= set(SAFE_KEYWORDS)
    assert attrs["Modality"] == "CT"
    assert attrs["Rows"] == "128" and attrs["Columns"] == "128"
    assert attrs["PixelSpacing"] == "0.661468\\0.661468"
    assert attrs["PhotometricInterpretation"] == "MONOCHROME2"
    assert not set(attrs.values()) & identifying_values(ds)


@pytest.mark.parametrize(
    ("value", "expected"), [("YES", True), ("YES ", True), ("NO", False), (None, False)]
)
def test_has_burned_in_annotation(value: str | None, expected: bool) -> None:
    ds = Dataset()
    if value is not None:
        ds.BurnedInAnnotation = value
    assert has_burned_in_annotation(ds) is expected


def test_identifying_values_finds_nested_and_name_parts(phi_ds: FileDataset) -> None:
    values = identifying_values(phi_ds)
    assert {"PID-8817263", "NESTED-ID-31337", "19610713", "ALT-55512"} <= values
    assert {"Zyxwvut^Quokkajane", "Zyxwvut", "Quokkajane", "Nested^Doctorname"} <= values
    assert str(phi_ds.StudyInstanceUID) in values
    assert "" not in values


def test_profile_constants() -> None:
    assert PROFILE.endswith("(113100)")
    assert " ".join(deid.DEIDENTIFICATION_METHOD) == PROFILE
    assert "PS3.15" in deid.PROFILE_VERSION
