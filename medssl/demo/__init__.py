"""Seeded synthetic demo data set shaped like a hospital imaging export.

The generator writes chest-radiograph phantoms as real CR/DX DICOM files (several transfer
syntaxes, MONOCHROME1 and MONOCHROME2, rescale and window tags), CT phantoms as DICOM series
with shuffled file names, NIfTI volumes, deliberately broken files and a partial label table.
Every byte depends only on ``seed`` and the size arguments: UIDs come from
:func:`pydicom.uid.generate_uid` with seeded entropy and all dates and times are drawn from
seeded generators, so two runs give identical files. All patient identities are fake.

Layout under ``out_dir``::

    xray/<folder>/...            CR/DX DICOM (named, PACS-like nested and flat folders)
    ct/<series folder>/...       CT DICOM series, one file per slice, names shuffled
    nifti/ct_0.nii.gz            the first CT volume in RAS+ NIfTI (Hounsfield units)
    nifti/mr_0.nii.gz            a standalone MR-like head volume
    broken/...                   one file per failure mode (see :data:`BROKEN_FILES`)
    burned_text/...              DX radiographs with the patient's fake name, ID and birth
                                 date burned into the pixels, BurnedInAnnotation absent
    labels.csv                   path,label for a fraction of the X-ray images
    README.txt

JPEG-LS is not written: pydicom needs ``pyjpegls`` to encode it and the project does not
depend on it.

Why the pipeline's demo parameters are what they are (``params.yaml`` ``demo:``), fixed
from this rationale before any arm was run on them, and not tuned on arm results:

* The regime self-supervision is for: many images, few labels. One radiograph per
  patient; label budgets of 8, 24 and 96 out of some 600 labelled pool images.
* Precise enough to read: a 95 % CI on test AUROC no wider than 0.15 needs, by Hanley and
  McNeil's variance (Radiology 1982) at AUROC 0.7 with balanced classes, about 100
  labelled test patients per class. With 800 patients the reserve (~30 %) held 218
  labelled test patients, and the first run showed the CIs of near-chance arms (AUROC
  ~0.5, the widest) at up to 0.157; 1000 patients (~270 labelled test patients) is the
  one revision, made for CI width only (the generator itself was not changed).
* Fast enough for a 2-core machine: 48 px phantoms (the lesions stay 3 px or more across),
  with the first ``n_full_size`` patients at 512 px so that ingestion still meets
  radiograph-sized pixel data, compression and windowing.

Modules, one concept each, in the order the writer uses them:

* :mod:`~medssl.demo.seeding`: independent random streams, seeded UIDs, dates and times;
* :mod:`~medssl.demo.patients`: fake identities;
* :mod:`~medssl.demo.phantoms`: chest radiograph, chest CT and head MR phantoms;
* :mod:`~medssl.demo.plan`: the plan of every radiograph (study, label, syntax, path);
* :mod:`~medssl.demo.dicom`: elements, pixel encoding and saving shared by every object;
* :mod:`~medssl.demo.xray`: the planned radiographs as CR/DX files;
* :mod:`~medssl.demo.volumes`: CT series as DICOM, CT and MR volumes as NIfTI;
* :mod:`~medssl.demo.broken`: one broken file per failure mode;
* :mod:`~medssl.demo.burned_text`: radiographs with the identity burned into the pixels;
* :mod:`~medssl.demo.write`: :func:`write_demo_dataset`, the label table and the README.

References: DICOM PS3.3 A.2 (CR IOD), A.26 (DX IOD), A.3 (CT IOD), A.35.1 (Basic Text SR),
C.7.6.2 (Image Plane), C.7.6.3 (Image Pixel), C.11.1/C.11.2 (Modality and VOI LUT);
PS3.5 A.4 (encapsulated transfer syntaxes); NIfTI-1 qform/sform (RAS+ world space).
"""

from medssl.demo.broken import BROKEN_FILES
from medssl.demo.burned_text import BURNED_TEXT_CASES, burned_lines
from medssl.demo.patients import FakePatient
from medssl.demo.phantoms import chest_phantom, ct_phantom
from medssl.demo.plan import XrayPlan, plan_xrays
from medssl.demo.seeding import CT_STREAM, stream_rng
from medssl.demo.volumes import ct_affine
from medssl.demo.write import DemoSummary, write_demo_dataset
from medssl.demo.xray import xray_stored_values

__all__ = [
    "BROKEN_FILES",
    "BURNED_TEXT_CASES",
    "CT_STREAM",
    "DemoSummary",
    "FakePatient",
    "XrayPlan",
    "burned_lines",
    "chest_phantom",
    "ct_affine",
    "ct_phantom",
    "plan_xrays",
    "stream_rng",
    "write_demo_dataset",
    "xray_stored_values",
]
