"""Slices of cross-sectional series between the two passes, and duplicate files.

Pass 1 decodes each series slice on its own (:func:`spill_slice`): its modality values go
to a scratch ``.npy`` file inside the partial output folder and only its geometry travels
back to the parent. Pass 2 drops duplicate instances (:func:`drop_duplicates`), groups the
slices by series key, never by folder (:func:`group_units`), and assembles each series
from its scratch files (:func:`series_frames`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medssl.ingest.codes import decode_failure, write_failure
from medssl.ingest.context import Context
from medssl.ingest.discovery import SourceFile
from medssl.io.dicom import Frame, read_dataset, slice_frame

#: Scratch folder (inside the partial output, removed before it is moved into place) for
#: the decoded values of series slices between pass 1 and pass 2.
SCRATCH_DIR = ".slices"


def scratch_path(ident: str) -> str:
    """Relative path (under the partial output folder) of a slice's decoded values.

    Args:
        ident: the slice's :attr:`SourceFile.ident`.
    """
    return f"{SCRATCH_DIR}/{hashlib.sha256(ident.encode()).hexdigest()[:40]}.npy"


def spill_slice(ds: Any, sf: SourceFile, ctx: Context) -> dict[str, Any]:
    """Decode a series slice now and keep its values in the scratch folder for pass 2.

    Args:
        ds: the slice's full dataset.
        sf: its file.
        ctx: run context.

    Returns:
        ``{"frame", "pixels"}`` (the frame without its values, the scratch file), or a
        quarantine record (``kind``, ``reason``, ``message``).
    """
    try:
        frame = slice_frame(ds)
    except Exception as exc:  # noqa: BLE001 - one bad slice never stops the run
        reason, message = decode_failure(exc)
        return {"kind": "quarantine", "reason": reason, "message": message}
    rel = scratch_path(sf.ident)
    try:
        path = ctx.out_dir / rel
        path.parent.mkdir(exist_ok=True)
        np.save(path, frame.values, allow_pickle=False)
    except OSError as exc:
        reason, message = write_failure(exc)
        return {"kind": "quarantine", "reason": reason, "message": message}
    return {"frame": replace(frame, values=np.empty(0, frame.values.dtype)), "pixels": rel}


def series_frames(
    unit: Sequence[Mapping[str, Any]], paths: Mapping[str, Path], out_dir: Path
) -> list[Frame]:
    """Frames of a series: from pass 1's scratch files, or decoded now when deferred.

    Args:
        unit: slice records of one series.
        paths: ``id -> absolute path`` of its files.
        out_dir: the partial output folder holding the scratch files.

    Returns:
        One frame per slice, in the order of ``unit``.
    """
    frames = []
    for index, rec in enumerate(unit):
        if "frame" in rec:
            meta: Frame = rec["frame"]
            values = np.load(out_dir / rec["pixels"], allow_pickle=False)
            frames.append(replace(meta, values=values, order=(*meta.order[:2], index)))
        else:
            frames.append(slice_frame(read_dataset(paths[rec["id"]]), index))
    return frames


def group_units(records: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group slice records into series units by series key (never by folder).

    Args:
        records: pass-1 ``"slice"`` records (duplicates already removed).

    Returns:
        Units sorted by their first relative path; slices of a unit sorted by path (the
        decoder sorts them along the slice normal).
    """
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        series[rec["series_key"]].append(rec)
    units = [sorted(members, key=lambda r: r["id"]) for members in series.values()]
    return sorted(units, key=lambda u: u[0]["id"])


def drop_duplicates(
    records: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep one of byte-identical files or repeated SOP instances.

    The copy kept is an ingested one when there is one (a truncated copy of an instance
    never hides a complete one), then the first by source and relative path. Used for
    series slices and for single-file units alike.

    Args:
        records: records with ``id``, ``source_sha256`` and optionally ``sop_key`` and
            ``result`` (pass-1 unit records).

    Returns:
        ``(kept, duplicates)``.
    """
    seen: set[str] = set()
    kept, dupes = [], []

    def order(r: dict[str, Any]) -> tuple[int, str]:
        return (0 if r.get("result", {"rows": [1]})["rows"] else 1, r["id"])

    for rec in sorted(records, key=order):
        keys = {rec["source_sha256"]} | ({rec["sop_key"]} if rec.get("sop_key") else set())
        if keys & seen:
            dupes.append(rec)
            continue
        seen |= keys
        kept.append(rec)
    return kept, dupes
