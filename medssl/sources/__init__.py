"""Pulls from a PACS: DICOMweb (QIDO-RS, WADO-RS) and DIMSE (C-FIND, C-GET)."""
