"""Readers and writers for DICOM, NIfTI and de-identification."""
