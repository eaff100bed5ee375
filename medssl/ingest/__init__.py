"""Walk hospital exports into de-identified NIfTI images, a manifest and a quarantine table.

Data flow: every file under each source folder is *seen* once and ends in exactly one of
three places: an ingested image (a manifest row, possibly shared by the slices of a
series), the quarantine table (with a reason code, :data:`~medssl.ingest.codes.REASONS`),
or the skip list (by rule, :data:`~medssl.ingest.codes.SKIP_RULES`). The invariant
``files_seen == files_ingested + files_quarantined + files_skipped`` is checked at the end
of every run.

Nothing identifying leaves this package (DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile, applied to every output): patient, study, series and instance
identifiers and source paths become keyed hashes (:class:`medssl.io.pseudonym.Pseudonymizer`);
messages name reason codes and exception types, never header values or paths; library
warnings are silenced in workers because their text can quote header values. The only
exception is the re-identification table, written when asked to a path outside the
repository (:func:`~medssl.ingest.reid.check_reid_path`).

Two passes over an engine (:mod:`~medssl.ingest.engines`: local processes or Dask):

1. per file (read once: hash, header and pixels come from one read): classify; a file
   that is a unit on its own (a radiograph, a NIfTI, a raster, an enhanced multi-frame
   object, a mosaic) is decoded and written right away; a slice of a cross-sectional
   series is decoded too (:func:`medssl.io.dicom.slice_frame`), its modality values are
   spilled to a scratch ``.npy`` inside the partial output folder, and a small record
   (geometry, keys) goes back, so decoding is parallel per file even for one huge series;
2. per series: slices grouped by SeriesInstanceUID (never by folder) are assembled
   (:func:`medssl.io.dicom.assemble_slices`: sorting along the slice normal, 4D split)
   from their scratch files and written. A slice that fails to decode is quarantined on
   its own; the rest of its series is still assembled (gaps are flagged).

With a re-ingestion cache, a slice whose file is already part of a cached unit is not
decoded in pass 1; its series is restored from the cache in pass 2, or decoded there from
the files if the series changed.

Workers write the NIfTI files and return only rows, so the parent holds small records
whatever the number of files. Units whose source files (by SHA-256) and settings are
unchanged are reused from the cache (:mod:`~medssl.ingest.cache`).

Modules, one concept each, in the order data flows through them:

* :mod:`~medssl.ingest.codes`: quarantine reasons, skip rules, QC flags;
* :mod:`~medssl.ingest.options`: :class:`IngestOptions` and their ``params.yaml`` section;
* :mod:`~medssl.ingest.discovery`: files under the sources, the skip list by rule;
* :mod:`~medssl.ingest.context`: what every worker gets, cache keys, settings fingerprint;
* :mod:`~medssl.ingest.files`: pass 1, one file to a record;
* :mod:`~medssl.ingest.series`: series slices between the passes, grouping, duplicates;
* :mod:`~medssl.ingest.units`: one unit decoded, screened for burned-in text, written;
* :mod:`~medssl.ingest.accounting`: rows, quarantine and skip tables, the summary;
* :mod:`~medssl.ingest.reid`: the re-identification table;
* :mod:`~medssl.ingest.run`: :func:`ingest` and its two passes;
* :mod:`~medssl.ingest.engines`: local process pool or Dask;
* :mod:`~medssl.ingest.cache`: the re-ingestion cache.
"""

from medssl.ingest.accounting import (
    MAX_MESSAGE,
    RUN_DEPENDENT_KEYS,
    SUMMARY_NAME,
    invariant_line,
    sanitize,
    stable_summary,
)
from medssl.ingest.codes import DROP_ACTIONS, QC_FLAGS, REASONS, SKIP_RULES
from medssl.ingest.context import unit_key
from medssl.ingest.discovery import (
    NIFTI_SUFFIXES,
    SKIP_NAMES,
    SKIP_SUFFIXES,
    SourceFile,
    discover,
    key_text,
)
from medssl.ingest.files import IN_MEMORY_BYTES, process_file, sha256_file
from medssl.ingest.options import IngestOptions, ingest_options, options_from_params, sidecar_spec
from medssl.ingest.reid import REID_COLUMNS, check_reid_path, repo_roots
from medssl.ingest.run import ingest
from medssl.ingest.series import SCRATCH_DIR, drop_duplicates, group_units
from medssl.ingest.units import IMAGES_DIR, run_unit

__all__ = [
    "DROP_ACTIONS",
    "IMAGES_DIR",
    "IN_MEMORY_BYTES",
    "MAX_MESSAGE",
    "NIFTI_SUFFIXES",
    "QC_FLAGS",
    "REASONS",
    "REID_COLUMNS",
    "RUN_DEPENDENT_KEYS",
    "SCRATCH_DIR",
    "SKIP_NAMES",
    "SKIP_RULES",
    "SKIP_SUFFIXES",
    "SUMMARY_NAME",
    "IngestOptions",
    "SourceFile",
    "check_reid_path",
    "discover",
    "drop_duplicates",
    "group_units",
    "ingest",
    "ingest_options",
    "invariant_line",
    "key_text",
    "options_from_params",
    "process_file",
    "repo_roots",
    "run_unit",
    "sanitize",
    "sha256_file",
    "sidecar_spec",
    "stable_summary",
    "unit_key",
]
