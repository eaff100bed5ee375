"""DICOM pieces shared by every object the demo writes: common elements, pixels, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from medssl.demo.patients import FakePatient

__all__ = ["base_dataset", "ds_str", "save_dicom", "set_pixels"]

_ENCODING_PLUGIN = {RLELossless: "pylibjpeg", JPEG2000Lossless: "pylibjpeg"}


def ds_str(value: float) -> str:
    """A Decimal String (PS3.5 6.2, at most 16 characters)."""
    return f"{value:.6g}"


def base_dataset(sop_class: str, sop_instance: str, patient: FakePatient) -> Dataset:
    """SOP Common, Patient and file meta elements shared by every object written.

    Args:
        sop_class: SOP Class UID.
        sop_instance: SOP Instance UID (also the Media Storage SOP Instance UID).
        patient: The fake identity written to the Patient module.

    Returns:
        A dataset with file meta (Explicit VR Little Endian until pixels are set).
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.InstitutionName = "MEDSSL DEMO GENERAL HOSPITAL"
    ds.Manufacturer = "MEDSSL"
    ds.ManufacturerModelName = "SYNTHETIC PHANTOM"
    ds.ReferringPhysicianName = "FAKE^REFERRER"
    return ds


def set_pixels(ds: Dataset, arr: np.ndarray, photometric: str, bits: int, syntax: str) -> None:
    """Set Pixel Data and encode it in ``syntax`` (native or lossless-compressed).

    Args:
        ds: Dataset to modify in place.
        arr: Stored pixel values, (rows, columns).
        photometric: Photometric Interpretation, e.g. ``"MONOCHROME2"``.
        bits: Bits Stored.
        syntax: Transfer Syntax UID; RLE and JPEG 2000 are encoded with pylibjpeg.
    """
    ds.set_pixel_data(arr, photometric, bits, generate_instance_uid=False)
    if syntax in _ENCODING_PLUGIN:
        plugin = _ENCODING_PLUGIN[UID(syntax)]
        ds.compress(syntax, arr, encoding_plugin=plugin, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = UID(syntax)


def save_dicom(ds: Dataset, path: Path) -> None:
    """Write ``ds`` as a DICOM Part 10 file, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
