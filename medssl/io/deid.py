"""DICOM de-identification (PS3.15 Annex E Basic Profile) and keyed pseudonyms.

Ingestion takes :class:`Pseudonymizer` keys, :func:`secret_from_env`,
:func:`has_burned_in_annotation` and :data:`PROFILE_VERSION` from here: its outputs carry
keyed hashes and checked code strings only, never a DICOM attribute value. The rest of
the module (:func:`deidentify`, :func:`safe_attributes`) de-identifies whole datasets,
for writing DICOM; the pipeline does not call it.

What :func:`deidentify` does, following DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile (E.2, action codes of E.1.1, the "Basic Prof." column of Table
E.1-1; no option of E.3 is applied):

* each attribute listed in :data:`BASIC_PROFILE_ACTIONS` gets its action, at every
  nesting level: ``D`` dummy value valid for the VR, ``Z`` zero length, ``X`` removed,
  ``K`` kept, ``C`` cleaned (treated as ``D`` for text, as ``Z`` for sequences), ``U``
  a keyed replacement UID (:meth:`Pseudonymizer.uid`, so references stay consistent);
* composite codes of the table (``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``) are
  resolved once, in the table, to the least revealing single action that keeps common
  image IODs (CT, MR, CR, DX) valid; the official code stays in the comment;
* private attributes are removed (Table E.1-1 "Private attributes", X), and so are
  curves (50xx,eeee) (X in the table) and the whole overlay groups (60xx,eeee): the
  table removes Overlay Data and Overlay Comments, and the rest of the Overlay Plane
  Module (PS3.3 C.9.2) cannot stand without its Type 1 Overlay Data;
* project safeguards beyond the profile: public attributes unknown to the installed
  data dictionary are removed (they cannot be classified), person names (VR PN) that
  the table does not list are emptied, group lengths (gggg,0000) are dropped, the file
  meta group keeps only its technical elements, and the preamble and source file name
  of a :class:`~pydicom.dataset.FileDataset` are cleared;
* PatientName and PatientID get the keyed patient pseudonym (allowed by ``Z``: "a
  non-zero length value that may be a dummy value"); Patient Identity Removed,
  De-identification Method and its code sequence (CID 7050, code 113100) are added.

Standard attributes the table does not list are retained, as the profile allows.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import re
from collections.abc import Iterator
from enum import Enum

from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

PROFILE = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (113100)"
#: Version of this implementation and the edition of PS3.15 whose Table E.1-1 it follows.
PROFILE_VERSION = "medssl-deid/1 (PS3.15 2025b, Table E.1-1 Basic Prof. column)"

#: De-identification Method (0012,0063) is LO (64 characters at most, PS3.5 6.2) with VM
#: 1-n, so :data:`PROFILE` is written as two values; ``" ".join(values) == PROFILE``.
DEIDENTIFICATION_METHOD = (
    "DICOM PS3.15 Annex E",
    "Basic Application Level Confidentiality Profile (113100)",
)

SECRET_ENV = "MEDSSL_DEID_SECRET"
#: Fixed secret for the synthetic demo data set ONLY; never use it on real patients.
DEMO_SECRET = b"medssl-DEMO-ONLY-deid-secret--never-use-on-real-data"
MIN_SECRET_BYTES = 16

#: Pseudonym kinds used by ingestion (the kind is the key's prefix).
KIND_PATIENT = "pat"
KIND_STUDY = "stu"
KIND_SERIES = "ser"
KIND_IMAGE = "img"
KIND_SOURCE = "src"

_KIND_RE = re.compile(r"^[a-z]{2,8}$")
_KEY_HEX_CHARS = 16
_MIN_NAME_PART = 3  # shorter name parts (initials) would match any text


class DeidError(RuntimeError):
    """De-identification cannot proceed (missing secret, no patient identifier, ...)."""


class Action(str, Enum):
    """Action codes of PS3.15 E.1.1 used in Table E.1-1."""

    DUMMY = "D"
    ZERO = "Z"
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"
    UID = "U"


D, Z, X, K, C, U = (
    Action.DUMMY,
    Action.ZERO,
    Action.REMOVE,
    Action.KEEP,
    Action.CLEAN,
    Action.UID,
)

# PS3.15 Table E.1-1, "Basic Prof." column. Where the table gives a composite code the
# comment keeps it and the action is the one chosen (see module docstring).
_TABLE_E1_1: tuple[tuple[int, Action], ...] = (
    # --- Patient (PS3.3 C.7.1.1, C.7.2.2) ---
    (0x00100010, Z),  # PatientName (set to the patient pseudonym)
    (0x00100020, Z),  # PatientID (set to the patient pseudonym)
    (0x00100021, X),  # IssuerOfPatientID
    (0x00100030, Z),  # PatientBirthDate
    (0x00100032, X),  # PatientBirthTime
    (0x00100040, Z),  # PatientSex
    (0x00100050, X),  # PatientInsurancePlanCodeSequence
    (0x00100101, X),  # PatientPrimaryLanguageCodeSequence
    (0x00100102, X),  # PatientPrimaryLanguageModifierCodeSequence
    (0x00101000, X),  # OtherPatientIDs
    (0x00101001, X),  # OtherPatientNames
    (0x00101002, X),  # OtherPatientIDsSequence
    (0x00101005, X),  # PatientBirthName
    (0x00101010, X),  # PatientAge
    (0x00101020, X),  # PatientSize
    (0x00101030, X),  # PatientWeight
    (0x00101040, X),  # PatientAddress
    (0x00101050, X),  # InsurancePlanIdentification
    (0x00101060, X),  # PatientMotherBirthName
    (0x00101080, X),  # MilitaryRank
    (0x00101081, X),  # BranchOfService
    (0x00101090, X),  # MedicalRecordLocator
    (0x00101100, X),  # ReferencedPatientPhotoSequence
    (0x00102000, X),  # MedicalAlerts
    (0x00102110, X),  # Allergies
    (0x00102150, X),  # CountryOfResidence
    (0x00102152, X),  # RegionOfResidence
    (0x00102154, X),  # PatientTelephoneNumbers
    (0x00102155, X),  # PatientTelecomInformation
    (0x00102160, X),  # EthnicGroup
    (0x00102180, X),  # Occupation
    (0x001021A0, X),  # SmokingStatus
    (0x001021B0, X),  # AdditionalPatientHistory
    (0x001021C0, X),  # PregnancyStatus
    (0x001021D0, X),  # LastMenstrualDate
    (0x001021F0, X),  # PatientReligiousPreference
    (0x00102203, X),  # PatientSexNeutered [X/Z]
    (0x00102297, X),  # ResponsiblePerson
    (0x00102299, X),  # ResponsibleOrganization
    (0x00104000, X),  # PatientComments
    (0x00081120, X),  # ReferencedPatientSequence
    (0x00380004, X),  # ReferencedPatientAliasSequence
    # --- Visit and admission (PS3.3 C.3.x) ---
    (0x00380010, X),  # AdmissionID
    (0x00380011, X),  # IssuerOfAdmissionID
    (0x00380014, X),  # IssuerOfAdmissionIDSequence
    (0x00380020, X),  # AdmittingDate
    (0x00380021, X),  # AdmittingTime
    (0x00380050, X),  # SpecialNeeds
    (0x00380060, X),  # ServiceEpisodeID
    (0x00380062, X),  # ServiceEpisodeDescription
    (0x00380300, X),  # CurrentPatientLocation
    (0x00380400, X),  # PatientInstitutionResidence
    (0x00380500, X),  # PatientState
    (0x00384000, X),  # VisitComments
    (0x00081080, X),  # AdmittingDiagnosesDescription
    (0x00081084, X),  # AdmittingDiagnosesCodeSequence
    # --- Study and request ---
    (0x00080020, Z),  # StudyDate
    (0x00080030, Z),  # StudyTime
    (0x00080050, Z),  # AccessionNumber
    (0x00081030, X),  # StudyDescription
    (0x00200010, Z),  # StudyID
    (0x0020000D, U),  # StudyInstanceUID
    (0x00081110, X),  # ReferencedStudySequence [X/Z]
    (0x00320012, X),  # StudyIDIssuer
    (0x00321030, X),  # ReasonForStudy
    (0x00321032, X),  # RequestingPhysician
    (0x00321033, X),  # RequestingService
    (0x00321060, X),  # RequestedProcedureDescription [X/Z]
    (0x00321066, X),  # ReasonForVisit
    (0x00321067, X),  # ReasonForVisitCodeSequence
    (0x00321070, X),  # RequestedContrastAgent
    (0x00324000, X),  # StudyComments
    (0x00400275, X),  # RequestAttributesSequence
    (0x00401001, X),  # RequestedProcedureID
    (0x00401002, X),  # ReasonForTheRequestedProcedure
    (0x0040100A, X),  # ReasonForRequestedProcedureCodeSequence
    (0x00401400, X),  # RequestedProcedureComments
    (0x00402001, X),  # ReasonForTheImagingServiceRequest
    (0x00402008, X),  # OrderEnteredBy
    (0x00402009, X),  # OrderEntererLocation
    (0x00402010, X),  # OrderCallbackPhoneNumber
    (0x00402016, Z),  # PlacerOrderNumberImagingServiceRequest
    (0x00402017, Z),  # FillerOrderNumberImagingServiceRequest
    (0x00402400, X),  # ImagingServiceRequestComments
    # --- Series and procedure steps ---
    (0x00080021, X),  # SeriesDate [X/D]
    (0x00080031, X),  # SeriesTime [X/D]
    (0x0008103E, X),  # SeriesDescription
    (0x0020000E, U),  # SeriesInstanceUID
    (0x00181030, X),  # ProtocolName [X/D]
    (0x00081111, X),  # ReferencedPerformedProcedureStepSequence [X/Z/D]
    (0x00400241, X),  # PerformedStationAETitle
    (0x00400242, X),  # PerformedStationName
    (0x00400243, X),  # PerformedLocation
    (0x00400244, X),  # PerformedProcedureStepStartDate
    (0x00400245, X),  # PerformedProcedureStepStartTime
    (0x00400250, X),  # PerformedProcedureStepEndDate
    (0x00400251, X),  # PerformedProcedureStepEndTime
    (0x00400253, X),  # PerformedProcedureStepID
    (0x00400254, X),  # PerformedProcedureStepDescription
    (0x00400280, X),  # CommentsOnThePerformedProcedureStep
    (0x00400001, X),  # ScheduledStationAETitle
    (0x00400002, X),  # ScheduledProcedureStepStartDate
    (0x00400003, X),  # ScheduledProcedureStepStartTime
    (0x00400004, X),  # ScheduledProcedureStepEndDate
    (0x00400005, X),  # ScheduledProcedureStepEndTime
    (0x00400006, X),  # ScheduledPerformingPhysicianName
    (0x00400007, X),  # ScheduledProcedureStepDescription
    (0x00400009, X),  # ScheduledProcedureStepID
    (0x00400010, X),  # ScheduledStationName
    (0x00400011, X),  # ScheduledProcedureStepLocation
    (0x00400012, X),  # PreMedication
    (0x00400555, X),  # AcquisitionContextSequence [X/Z]
    # --- Instance, acquisition and image ---
    (0x00080012, X),  # InstanceCreationDate [X/D]
    (0x00080013, X),  # InstanceCreationTime [X/Z/D]
    (0x00080014, U),  # InstanceCreatorUID
    (0x00080017, U),  # AcquisitionUID
    (0x00080018, U),  # SOPInstanceUID
    (0x00080022, X),  # AcquisitionDate [X/Z]
    (0x00080032, X),  # AcquisitionTime [X/Z]
    (0x0008002A, X),  # AcquisitionDateTime [X/Z/D]
    (0x00080023, Z),  # ContentDate [Z/D]
    (0x00080033, Z),  # ContentTime [Z/D]
    (0x00080024, X),  # OverlayDate
    (0x00080034, X),  # OverlayTime
    (0x00080025, X),  # CurveDate
    (0x00080035, X),  # CurveTime
    (0x00080201, X),  # TimezoneOffsetFromUTC
    (0x00080058, U),  # FailedSOPInstanceUIDList
    (0x00081140, X),  # ReferencedImageSequence [X/Z/U*]
    (0x00081155, U),  # ReferencedSOPInstanceUID
    (0x00081195, U),  # TransactionUID
    (0x00082111, X),  # DerivationDescription
    (0x00082112, X),  # SourceImageSequence [X/Z/U*]
    (0x00083010, U),  # IrradiationEventUID
    (0x00084000, X),  # IdentifyingComments
    (0x00180010, Z),  # ContrastBolusAgent [Z/D]
    (0x00181012, X),  # DateOfSecondaryCapture
    (0x00181014, X),  # TimeOfSecondaryCapture
    (0x00181042, X),  # ContrastBolusStartTime
    (0x00181043, X),  # ContrastBolusStopTime
    (0x00181072, X),  # RadiopharmaceuticalStartTime
    (0x00181073, X),  # RadiopharmaceuticalStopTime
    (0x00181078, X),  # RadiopharmaceuticalStartDateTime
    (0x00181079, X),  # RadiopharmaceuticalStopDateTime
    (0x00181400, X),  # AcquisitionDeviceProcessingDescription [X/D]
    (0x00184000, X),  # AcquisitionComments
    (0x00189074, D),  # FrameAcquisitionDateTime
    (0x00189151, D),  # FrameReferenceDateTime
    (0x00189185, X),  # RespiratoryMotionCompensationTechniqueDescription
    (0x00189424, X),  # AcquisitionProtocolDescription
    (0x00189516, X),  # StartAcquisitionDateTime [X/D]
    (0x00189517, X),  # EndAcquisitionDateTime [X/D]
    (0x00189623, D),  # FunctionalSyncPulse
    (0x00200052, U),  # FrameOfReferenceUID
    (0x00200200, U),  # SynchronizationFrameOfReferenceUID
    (0x00203401, X),  # ModifyingDeviceID
    (0x00203403, X),  # ModifiedImageDate
    (0x00203405, X),  # ModifiedImageTime
    (0x00203406, X),  # ModifiedImageDescription
    (0x00204000, X),  # ImageComments
    (0x00209158, X),  # FrameComments
    (0x00209161, U),  # ConcatenationUID
    (0x00209164, U),  # DimensionOrganizationUID
    (0x00281199, U),  # PaletteColorLookupTableUID
    (0x00281214, U),  # LargePaletteColorLookupTableUID
    (0x00284000, X),  # ImagePresentationComments
    (0x00880200, X),  # IconImageSequence
    (0x00880140, U),  # StorageMediaFileSetUID
    (0x00041511, U),  # ReferencedSOPInstanceUIDInFile
    (0x00020003, U),  # MediaStorageSOPInstanceUID
    (0x30060024, U),  # ReferencedFrameOfReferenceUID
    (0x300600C2, U),  # RelatedFrameOfReferenceUID
    # --- Equipment and institution (PS3.3 C.7.5.1) ---
    (0x00080080, X),  # InstitutionName [X/Z/D]
    (0x00080081, X),  # InstitutionAddress
    (0x00080082, X),  # InstitutionCodeSequence [X/Z/D]
    (0x00081040, X),  # InstitutionalDepartmentName
    (0x00081041, X),  # InstitutionalDepartmentTypeCodeSequence
    (0x00081010, X),  # StationName [X/Z/D]
    (0x00080054, X),  # RetrieveAETitle
    (0x00080055, X),  # StationAETitle
    (0x00081000, X),  # NetworkID
    (0x00181000, X),  # DeviceSerialNumber [X/Z/D]
    (0x00181002, U),  # DeviceUID
    (0x00181004, X),  # PlateID
    (0x00181005, X),  # GeneratorID
    (0x00181007, X),  # CassetteID
    (0x00181008, X),  # GantryID
    (0x00181009, X),  # UniqueDeviceIdentifier
    (0x0018100A, X),  # UDISequence
    (0x0018100B, U),  # ManufacturerDeviceClassUID
    (0x00181200, X),  # DateOfLastCalibration
    (0x00181201, X),  # TimeOfLastCalibration
    (0x00181202, X),  # DateTimeOfLastCalibration
    (0x00181203, Z),  # CalibrationDateTime
    (0x00181204, X),  # DateOfManufacture
    (0x00181205, X),  # DateOfInstallation
    (0x00185011, X),  # TransducerIdentificationSequence
    (0x0018700A, X),  # DetectorID [X/D]
    (0x0018700C, X),  # DateOfLastDetectorCalibration [X/D]
    (0x0018700E, X),  # TimeOfLastDetectorCalibration [X/D]
    (0x00189367, D),  # XRaySourceID
    (0x00189371, D),  # XRayDetectorID
    (0x00189373, X),  # XRayDetectorLabel
    (0x00500020, X),  # DeviceDescription
    (0x0016004D, X),  # CameraOwnerName
    # --- Physicians, operators and other persons ---
    (0x00080090, Z),  # ReferringPhysicianName
    (0x00080092, X),  # ReferringPhysicianAddress
    (0x00080094, X),  # ReferringPhysicianTelephoneNumbers
    (0x00080096, X),  # ReferringPhysicianIdentificationSequence
    (0x0008009C, Z),  # ConsultingPhysicianName
    (0x0008009D, X),  # ConsultingPhysicianIdentificationSequence
    (0x00081048, X),  # PhysiciansOfRecord
    (0x00081049, X),  # PhysiciansOfRecordIdentificationSequence
    (0x00081050, X),  # PerformingPhysicianName
    (0x00081052, X),  # PerformingPhysicianIdentificationSequence
    (0x00081060, X),  # NameOfPhysiciansReadingStudy
    (0x00081062, X),  # PhysiciansReadingStudyIdentificationSequence
    (0x00081070, X),  # OperatorsName [X/Z/D]
    (0x00081072, X),  # OperatorIdentificationSequence [X/D]
    (0x00401010, X),  # NamesOfIntendedRecipientsOfResults
    (0x00401011, X),  # IntendedRecipientsOfResultsIdentificationSequence
    (0x00401101, D),  # PersonIdentificationCodeSequence
    (0x00401102, X),  # PersonAddress
    (0x00401103, X),  # PersonTelephoneNumbers
    (0x00401104, X),  # PersonTelecomInformation
    (0x00404034, X),  # ScheduledHumanPerformersSequence
    (0x00404035, X),  # ActualHumanPerformersSequence
    (0x00404036, X),  # HumanPerformerOrganization
    (0x00404037, X),  # HumanPerformerName
    (0x00700084, Z),  # ContentCreatorName [Z/D]
    (0x00700086, X),  # ContentCreatorIdentificationCodeSequence
    (0x40080114, X),  # PhysicianApprovingInterpretation
    (0x4008010C, X),  # InterpretationAuthor
    (0x4008010B, X),  # InterpretationText
    (0x40080300, X),  # Impressions
    (0x40084000, X),  # ResultsComments
    # --- Structured content, annotations, observers ---
    (0x00700001, D),  # GraphicAnnotationSequence
    (0x0040A730, D),  # ContentSequence
    (0x0040A123, D),  # PersonName
    (0x0040A073, D),  # VerifyingObserverSequence
    (0x0040A075, D),  # VerifyingObserverName
    (0x0040A027, D),  # VerifyingOrganization
    (0x0040A030, D),  # VerificationDateTime
    (0x0040A088, Z),  # VerifyingObserverIdentificationCodeSequence
    (0x0040A078, X),  # AuthorObserverSequence
    (0x0040A07A, X),  # ParticipantSequence
    (0x0040A07C, X),  # CustodialOrganizationSequence
    (0x0040A120, D),  # DateTime
    (0x0040A121, D),  # Date
    (0x0040A122, D),  # Time
    (0x0040A032, X),  # ObservationDateTime [X/D]
    (0x0040A124, U),  # UID
    (0x0040A171, U),  # ObservationUID
    (0x0072006A, D),  # SelectorPNValue
    (0x300600A6, Z),  # ROIInterpreter
    (0x300E0008, X),  # ReviewerName [X/Z]
    (0x00420011, D),  # EncapsulatedDocument
    (0x20300020, X),  # TextString
    (0x40000010, X),  # Arbitrary
    (0x40004000, X),  # TextComments
    # --- Clinical trial (PS3.3 C.7.1.3, C.7.2.3, C.7.3.2) ---
    (0x00120010, D),  # ClinicalTrialSponsorName
    (0x00120020, D),  # ClinicalTrialProtocolID
    (0x00120021, Z),  # ClinicalTrialProtocolName
    (0x00120030, Z),  # ClinicalTrialSiteID
    (0x00120031, Z),  # ClinicalTrialSiteName
    (0x00120040, D),  # ClinicalTrialSubjectID
    (0x00120042, D),  # ClinicalTrialSubjectReadingID
    (0x00120050, Z),  # ClinicalTrialTimePointID
    (0x00120051, X),  # ClinicalTrialTimePointDescription
    (0x00120060, Z),  # ClinicalTrialCoordinatingCenterName
    (0x00120071, X),  # ClinicalTrialSeriesID
    (0x00120072, X),  # ClinicalTrialSeriesDescription
    (0x00120081, D),  # ClinicalTrialProtocolEthicsCommitteeName
    (0x00120082, X),  # ClinicalTrialProtocolEthicsCommitteeApprovalNumber
    # --- Specimen and container ---
    (0x00400512, D),  # ContainerIdentifier
    (0x00400551, D),  # SpecimenIdentifier
    (0x00400554, U),  # SpecimenUID
    (0x00400610, Z),  # SpecimenPreparationSequence
    (0x22000002, X),  # LabelText [X/Z]
    (0x22000005, X),  # BarcodeValue [X/Z]
    # --- Modification history, signatures, padding ---
    (0x04000100, U),  # DigitalSignatureUID
    (0x04000402, X),  # ReferencedDigitalSignatureSequence
    (0x04000403, X),  # ReferencedSOPInstanceMACSequence
    (0x04000404, X),  # MAC
    (0x04000550, X),  # ModifiedAttributesSequence
    (0x04000561, X),  # OriginalAttributesSequence
    (0xFFFAFFFA, X),  # DigitalSignaturesSequence
    (0xFFFCFFFC, X),  # DataSetTrailingPadding
)

#: GPS Version ID (0016,0070) to GPS Differential (0016,008E): all X in Table E.1-1.
_GPS_TAGS = tuple(range(0x00160070, 0x0016008F))

#: PS3.15 Table E.1-1 (Basic Prof. column), one action per attribute.
BASIC_PROFILE_ACTIONS: dict[BaseTag, Action] = {
    **{BaseTag(tag): action for tag, action in _TABLE_E1_1},
    **{BaseTag(tag): Action.REMOVE for tag in _GPS_TAGS},
}

#: Technical attributes for the manifest. None is in Table E.1-1, whose Basic Prof.
#: column has no K entry: attributes it does not list are retained by the profile.
#: Manufacturer and ManufacturerModelName are not listed either (the Retain Device
#: Identity Option, E.3.3, is about serial numbers, station names and device IDs), and
#: BodyPartExamined is not listed. Free-text, date, person and UID attributes are left
#: out on purpose.
SAFE_KEYWORDS: tuple[str, ...] = (
    "SOPClassUID",
    "Modality",
    "ImageType",
    "BodyPartExamined",
    "Laterality",
    "ImageLaterality",
    "ViewPosition",
    "PatientPosition",
    "Manufacturer",
    "ManufacturerModelName",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "KVP",
    "XRayTubeCurrent",
    "ExposureTime",
    "Exposure",
    "ConvolutionKernel",
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "FlipAngle",
    "BurnedInAnnotation",
    "LossyImageCompression",
)

#: Attributes whose values :func:`identifying_values` collects, at any nesting level.
IDENTIFYING_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "AdmissionID",
    "AccessionNumber",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "ReferencedSOPInstanceUID",
    "FrameOfReferenceUID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "OperatorsName",
    "RequestingPhysician",
)

#: Dummy values for action D, valid for each VR (PS3.5 6.2).
_DUMMY_BY_VR: dict[str, object] = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": "ANONYMOUS",
    "DA": "19000101",
    "DT": "19000101000000",
    "LO": "ANONYMOUS",
    "LT": "ANONYMOUS",
    "PN": "ANONYMOUS",
    "SH": "ANONYMOUS",
    "ST": "ANONYMOUS",
    "TM": "000000",
    "UC": "ANONYMOUS",
    "UR": "ANONYMOUS",
    "UT": "ANONYMOUS",
    "DS": "0",
    "IS": "0",
    "AT": 0,
    "FD": 0.0,
    "FL": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
}
_DUMMY_BYTES = b"\x00" * 8  # OB, OD, OF, OL, OV, OW, UN: a multiple of every word size

#: File meta elements kept (PS3.10 7.1); Media Storage SOP Instance UID gets action U.
_FILE_META_KEEP = frozenset(
    BaseTag(t) for t in (0x00020000, 0x00020001, 0x00020002, 0x00020010, 0x00020012, 0x00020013)
)
_MEDIA_STORAGE_SOP_INSTANCE_UID = BaseTag(0x00020003)

_DEID_CODE_VALUE = "113100"
_DEID_CODE_SCHEME = "DCM"
_DEID_CODE_MEANING = "Basic Application Confidentiality Profile"


def secret_from_env(demo: bool) -> bytes:
    """Read the pseudonymisation secret from :data:`SECRET_ENV`.

    Args:
        demo: allow the fixed :data:`DEMO_SECRET` when the variable is unset (synthetic
            demo data only).

    Returns:
        The secret's UTF-8 bytes (a hex string from ``openssl rand -hex 32`` is used as
        is: 64 bytes).

    Raises:
        DeidError: variable unset outside demo mode, or secret shorter than 16 bytes.
    """
    value = os.environ.get(SECRET_ENV, "")
    if not value:
        if demo:
            return DEMO_SECRET
        raise DeidError(
            f"{SECRET_ENV} is not set: pseudonyms need a secret key that stays at the "
            f"site. Create one once and keep it safe, e.g. "
            f"`export {SECRET_ENV}=$(openssl rand -hex 32)`; the same key must be used "
            "for every ingestion of the same cohort."
        )
    secret = value.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise DeidError(
            f"{SECRET_ENV} is {len(secret)} bytes long; use at least {MIN_SECRET_BYTES}, "
            f"e.g. `export {SECRET_ENV}=$(openssl rand -hex 32)`."
        )
    return secret


class Pseudonymizer:
    """Keyed, deterministic pseudonyms and replacement UIDs (HMAC-SHA256, RFC 2104).

    The same secret and input always give the same output, so images of one patient
    get one key across ingestion runs; without the secret the mapping cannot be
    recomputed or reversed.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        """Store the secret.

        Args:
            secret: at least 16 bytes, e.g. from :func:`secret_from_env`.

        Raises:
            ValueError: secret is not bytes or is too short.
        """
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def __repr__(self) -> str:
        """Never show the secret."""
        return f"Pseudonymizer(fingerprint={self.fingerprint!r})"

    def _digest(self, domain: str, value: str) -> bytes:
        """HMAC-SHA256 of ``domain NUL value``; the NUL keeps domains apart."""
        msg = domain.encode("utf-8") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    @property
    def fingerprint(self) -> str:
        """12 hex characters naming the secret in run records, without revealing it."""
        return self._digest("fingerprint", "").hex()[:12]

    def key(self, kind: str, value: str) -> str:
        """Pseudonymous key ``<kind>-<16 hex>`` (64 bits of HMAC-SHA256 over kind, value).

        Args:
            kind: 2-8 lowercase letters, e.g. :data:`KIND_PATIENT` (``"pat"``),
                ``"stu"``, ``"ser"``, ``"img"``, ``"src"``; different kinds give
                unrelated keys for the same value.
            value: the identifier (PatientID, a UID, a source path, ...).

        Returns:
            E.g. ``"pat-3f2a9c0d1e4b5a67"``.

        Raises:
            ValueError: malformed kind.
        """
        if not _KIND_RE.match(kind):
            raise ValueError(f"pseudonym kind {kind!r} must be 2-8 lowercase letters")
        return f"{kind}-{self._digest(kind, value).hex()[:_KEY_HEX_CHARS]}"

    def uid(self, value: str) -> str:
        """Replacement UID ``2.25.<integer>`` for an original UID (PS3.5 B.2).

        The 128-bit integer is the first 16 bytes of the HMAC with the RFC 9562 variant
        and version 8 ("custom") bits set, so it is a valid UUID; the UID is at most 44
        characters (limit 64, PS3.5 9.1).

        Args:
            value: the original UID (non-empty).

        Returns:
            The same replacement for the same value and secret.

        Raises:
            ValueError: empty value.
        """
        if not value:
            raise ValueError("cannot derive a replacement UID from an empty UID")
        n = int.from_bytes(self._digest("uid", value)[:16], "big")
        n = (n & ~(0xF << 76)) | (0x8 << 76)  # version 8
        n = (n & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
        return f"2.25.{n}"


def patient_key(ds: Dataset, pseudo: Pseudonymizer) -> str:
    """Patient pseudonym from PatientID (0010,0020).

    Args:
        ds: original dataset.
        pseudo: the keyed pseudonymizer.

    Returns:
        ``"pat-<16 hex>"``.

    Raises:
        DeidError: PatientID absent or empty (no stable patient key; quarantine).
    """
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if not patient_id:
        raise DeidError("PatientID is empty: no patient pseudonym can be derived")
    return pseudo.key(KIND_PATIENT, patient_id)


def _base_vr(vr: str) -> str:
    """First of an ambiguous VR such as ``"US or SS"``."""
    return vr.split(" or ")[0]


def _action_for(elem: DataElement) -> Action:
    """Action for one element: Table E.1-1, then the rules for unlisted attributes."""
    tag = elem.tag
    group = tag.group
    if tag.is_private or (group & 0xFF00) in (0x5000, 0x6000) or tag.element == 0:
        return Action.REMOVE
    action = BASIC_PROFILE_ACTIONS.get(tag)
    if action is not None:
        return action
    if not dictionary_has_tag(tag):
        return Action.REMOVE
    if elem.VR == "PN":
        return Action.ZERO
    return Action.KEEP


def _uid_values(value: object, pseudo: Pseudonymizer) -> object:
    """Map each UID of a (multi-)value through :meth:`Pseudonymizer.uid`."""
    if isinstance(value, MultiValue | list):
        return [pseudo.uid(str(v)) for v in value if str(v)]
    return pseudo.uid(str(value))


def _dummy(elem: DataElement, pseudo: Pseudonymizer) -> object:
    """Dummy value of the element's VR (action D, and C for text)."""
    vr = _base_vr(elem.VR)
    if vr == "UI":
        return _uid_values(elem.value, pseudo) if elem.value else pseudo.uid("dummy")
    return _DUMMY_BY_VR.get(vr, _DUMMY_BYTES)


def _apply(ds: Dataset, elem: DataElement, action: Action, pseudo: Pseudonymizer) -> None:
    """Apply one action to ``elem`` of ``ds`` in place."""
    if action is Action.REMOVE:
        del ds[elem.tag]
    elif elem.VR == "SQ":
        if action is Action.KEEP or action is Action.UID:
            for item in elem.value:
                _clean(item, pseudo)
        else:  # D, Z, C on a sequence: no item could be vouched for
            elem.value = Sequence()
    elif action is Action.ZERO:
        elem.value = None
    elif action is Action.UID and _base_vr(elem.VR) == "UI":
        elem.value = _uid_values(elem.value, pseudo) if elem.value else elem.value
    elif action is not Action.KEEP:  # D, C, or U on a non-UI element
        elem.value = _dummy(elem, pseudo)


def _clean(ds: Dataset, pseudo: Pseudonymizer) -> None:
    """Apply the profile to every element of ``ds``, recursing into sequences."""
    for tag in list(ds.keys()):
        elem = ds[tag]  # also loads deferred values while the source is reachable
        _apply(ds, elem, _action_for(elem), pseudo)


def _clean_file_meta(meta: Dataset, pseudo: Pseudonymizer) -> None:
    """Keep the technical file meta elements; replace Media Storage SOP Instance UID."""
    for tag in list(meta.keys()):
        if tag == _MEDIA_STORAGE_SOP_INSTANCE_UID:
            elem = meta[tag]
            elem.value = pseudo.uid(str(elem.value)) if elem.value else elem.value
        elif tag not in _FILE_META_KEEP:
            del meta[tag]


def _mark_deidentified(ds: Dataset) -> None:
    """Add Patient Identity Removed and De-identification Method (PS3.15 E.1.1, CID 7050)."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = list(DEIDENTIFICATION_METHOD)
    code = Dataset()
    code.CodeValue = _DEID_CODE_VALUE
    code.CodingSchemeDesignator = _DEID_CODE_SCHEME
    code.CodeMeaning = _DEID_CODE_MEANING
    ds.DeidentificationMethodCodeSequence = Sequence([code])


def deidentify(ds: Dataset, pseudo: Pseudonymizer) -> Dataset:
    """De-identified copy of a dataset (PS3.15 Annex E Basic Profile, see module doc).

    Args:
        ds: original dataset (a :class:`~pydicom.dataset.FileDataset` keeps its file
            meta, cleaned). Not modified.
        pseudo: keyed pseudonymizer; UIDs and the patient key depend on its secret.

    Returns:
        The de-identified copy; pixel data are untouched (check
        :func:`has_burned_in_annotation` before using them).

    Raises:
        DeidError: PatientID empty (see :func:`patient_key`).
    """
    patient = patient_key(ds, pseudo)
    out = copy.deepcopy(ds)
    _clean(out, pseudo)
    meta = getattr(out, "file_meta", None)
    if isinstance(meta, Dataset):
        _clean_file_meta(meta, pseudo)
    if hasattr(out, "filename"):
        out.filename = None
    if getattr(out, "preamble", None) is not None:
        out.preamble = b"\x00" * 128
    out.PatientName = patient
    out.PatientID = patient
    _mark_deidentified(out)
    return out


def _as_text(value: object) -> str:
    """DICOM string form of a value; multi-values joined by a backslash."""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def safe_attributes(ds: Dataset) -> dict[str, str]:
    """Technical attributes the profile retains, as strings for the manifest.

    Args:
        ds: original or de-identified dataset (same result: none of
            :data:`SAFE_KEYWORDS` is changed by :func:`deidentify`).

    Returns:
        ``{keyword: value}`` for each keyword of :data:`SAFE_KEYWORDS` present with a
        non-empty value at the top level.
    """
    out: dict[str, str] = {}
    for keyword in SAFE_KEYWORDS:
        elem = ds.data_element(keyword) if keyword in ds else None
        if elem is None or elem.VR == "SQ" or elem.value in (None, "", b""):
            continue
        out[keyword] = _as_text(elem.value)
    return out


def has_burned_in_annotation(ds: Dataset) -> bool:
    """Whether Burned In Annotation (0028,0301) is ``YES`` (PS3.3 C.7.6.1.1.6).

    Such pixel data may show names or IDs: ingestion quarantines them.

    Args:
        ds: original or de-identified dataset (the attribute is not in Table E.1-1).

    Returns:
        True for ``YES`` (any case, padding ignored); False otherwise, including when
        the attribute is absent (it is Type 3 in most image IODs).
    """
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"


def _strings_of(value: object) -> Iterator[str]:
    """Non-empty strings of a value; person names also yield their components."""
    values = value if isinstance(value, MultiValue | list) else [value]
    for v in values:
        if v is None:
            continue
        text = str(v).strip()
        if text:
            yield text
        if isinstance(v, PersonName):
            for part in v.components:
                for comp in part.split("^"):
                    if len(comp.strip()) >= _MIN_NAME_PART:
                        yield comp.strip()


def identifying_values(ds: Dataset) -> set[str]:
    """String values of :data:`IDENTIFYING_KEYWORDS` found anywhere in ``ds``.

    Use on the original dataset to check that none of them reaches an output. Short
    values (a one-digit PatientID) are included: match whole fields, not substrings,
    when checking free text.

    Args:
        ds: dataset, searched recursively through sequences.

    Returns:
        The set of values; person names also give each name component of at least
        three characters (initials would match anywhere).
    """
    found: set[str] = set()
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                found |= identifying_values(item)
        elif elem.keyword in IDENTIFYING_KEYWORDS:
            found.update(_strings_of(elem.value))
    return found
