"""Where every file ends up: manifest rows, quarantine and skip rows, and the summary.

The parent books each record as it arrives (:class:`Accounts`): the rows of ingested
units, a quarantine row per file with a reason code (messages pass through
:func:`sanitize`), a skip row per file by rule. :func:`write_outputs` writes the tables and
``summary.json`` and checks the invariant ``files_seen == files_ingested +
files_quarantined + files_skipped`` (:func:`invariant_line` prints it).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medssl.data.manifest import MANIFEST_NAME, QUARANTINE_NAME, SKIPPED_NAME, write_table
from medssl.ingest.cache import UnitCache
from medssl.ingest.context import Context, file_key
from medssl.ingest.series import drop_duplicates

SUMMARY_NAME = "summary.json"
#: Longest quarantine message written (see :func:`sanitize`).
MAX_MESSAGE = 160
#: Summary counts that depend on the re-ingestion cache, not on the data: printed, never
#: written to tracked outputs (they would make two runs on the same data differ).
RUN_DEPENDENT_KEYS = ("units_decoded", "units_reused")

_STANDARD_UID = "1.2.840.10008."
_UID_RE = re.compile(r"\b\d+(?:\.\d+){2,}\b")
_QUOTED_RE = re.compile(r"(SOP class |transfer syntax |syntax )(\S+)")


@dataclass
class Accounts:
    """Everything the parent accumulates (small records only)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    files_ingested: int = 0
    images_dropped: int = 0
    units_cached: int = 0
    units_decoded: int = 0


def quarantine_row(rec: Mapping[str, Any], reason: str, message: str) -> dict[str, str]:
    """A ``quarantine.csv`` row for a record: its source key, the reason, a safe message."""
    return {"source_key": rec["source_key"], "reason": reason, "message": sanitize(message)}


def sanitize(message: str) -> str:
    """A quarantine message safe to write out (DICOM PS3.15 Annex E applies to outputs).

    Messages are built from reason templates, numbers and exception type names, but a few
    quote a header value (SOP Class UID, Transfer Syntax UID), which a malformed file can
    fill with anything: such values are kept only when they are standard DICOM UIDs
    (``1.2.840.10008.*``); any other UID-like number is masked; the text is reduced to
    printable ASCII and :data:`MAX_MESSAGE` characters.

    Args:
        message: the reader's or the worker's message.

    Returns:
        The message to write.
    """

    def quoted(m: re.Match[str]) -> str:
        value = m.group(2).rstrip(")")
        tail = m.group(2)[len(value) :]
        keep = value.startswith(_STANDARD_UID) and _UID_RE.fullmatch(value) is not None
        return m.group(1) + (value if keep else "<non-standard>") + tail

    def uid(m: re.Match[str]) -> str:
        return m.group(0) if m.group(0).startswith(_STANDARD_UID) else "<uid>"

    text = _UID_RE.sub(uid, _QUOTED_RE.sub(quoted, message))
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text[:MAX_MESSAGE]


def account_singles(
    singles: list[dict[str, Any]], ctx: Context, acc: Accounts, cache: UnitCache | None
) -> None:
    """Book pass 1's single-file units, duplicates first (their images are removed).

    Args:
        singles: ``"unit"`` records of pass 1, with their ``result``.
        ctx: run context.
        acc: the accounts to update.
        cache: the re-ingestion cache, or None.
    """
    kept, dupes = drop_duplicates(singles)
    used = {row["nifti"] for rec in kept for row in rec["result"]["rows"]}
    for rec in dupes:
        acc.skipped.append({"source_key": rec["source_key"], "rule": "duplicate_instance"})
        for row in rec["result"]["rows"]:
            if row["nifti"] not in used:
                (ctx.out_dir / row["nifti"]).unlink(missing_ok=True)
    for rec in kept:
        account_unit([rec], rec["result"], ctx, acc, cache)


def account_unit(
    unit: list[dict[str, Any]],
    result: dict[str, Any],
    ctx: Context,
    acc: Accounts,
    cache: UnitCache | None,
) -> None:
    """Book a unit's outcome: rows, quarantine or QC drop, and cache it.

    Args:
        unit: the unit's pass-1 records.
        result: what :func:`~medssl.ingest.units.run_unit` returned (or a worker crash
            as a quarantine result).
        ctx: run context.
        acc: the accounts to update.
        cache: the re-ingestion cache, or None.
    """
    if result.get("cached"):
        acc.units_cached += 1
    else:
        acc.units_decoded += 1
        if cache is not None and result.get("key"):
            stored = {k: v for k, v in result.items() if k not in ("cached", "key")}
            files = [file_key(r, ctx) for r in unit]
            cache.store(result["key"], stored, ctx.out_dir, files)
    acc.images_dropped += int(result.get("n_dropped", 0))
    if result.get("rows"):
        acc.files_ingested += len(unit)
        for row in result["rows"]:
            acc.rows.append({**row, "source_key": unit[0]["source_key"]})
    elif result.get("quarantine"):
        reason, message = result["quarantine"]
        acc.quarantine.extend(quarantine_row(r, reason, message) for r in unit)
    else:
        flag = (result.get("dropped") or ["unknown"])[0]
        message = f"QC flag {flag} is in ingest.drop_flags"
        for r in unit:
            if ctx.options.drop_action == "quarantine":
                acc.quarantine.append(quarantine_row(r, f"qc_{flag}", message))
            else:
                acc.skipped.append({"source_key": r["source_key"], "rule": f"qc_{flag}"})


def write_outputs(ctx: Context, acc: Accounts, seen: int) -> dict[str, int]:
    """Write the manifest, quarantine and skip tables and ``summary.json``.

    Args:
        ctx: run context (``out_dir`` is the partial output folder).
        acc: the accounts of the run.
        seen: files seen (candidates, skipped by rule, unlistable folders).

    Returns:
        The summary counts, cache-dependent ones included.

    Raises:
        RuntimeError: the accounting invariant does not hold (a bug).
    """
    out = ctx.out_dir
    rows = sorted(acc.rows, key=lambda r: r["image_id"])
    quarantine = sorted(acc.quarantine, key=lambda r: (r["source_key"], r["reason"]))
    skipped = sorted(acc.skipped, key=lambda r: (r["source_key"], r["rule"]))
    write_table(out / MANIFEST_NAME, rows, kind="manifest")
    write_table(out / QUARANTINE_NAME, quarantine, "quarantine")
    write_table(out / SKIPPED_NAME, skipped, "skipped")
    if ctx.options.parquet:
        import pandas as pd

        pd.read_csv(out / MANIFEST_NAME, dtype=str, keep_default_na=False).to_parquet(
            out / "manifest.parquet", index=False
        )
        pd.read_csv(out / QUARANTINE_NAME, dtype=str, keep_default_na=False).to_parquet(
            out / "quarantine.parquet", index=False
        )
    summary = _summary(seen, rows, quarantine, skipped, acc)
    (out / SUMMARY_NAME).write_text(
        json.dumps(stable_summary(summary), indent=2, sort_keys=True) + "\n"
    )
    return summary


def stable_summary(summary: Mapping[str, int]) -> dict[str, int]:
    """The summary without cache-dependent counts, for files that DVC hashes."""
    return {k: v for k, v in summary.items() if k not in RUN_DEPENDENT_KEYS}


def invariant_line(summary: Mapping[str, int]) -> str:
    """The accounting invariant as one line (printed at the end of every run)."""
    return (
        f"files seen {summary['files_seen']} = ingested {summary['files_ingested']} "
        f"+ quarantined {summary['files_quarantined']} + skipped {summary['files_skipped']}; "
        f"{summary['images_ingested']} images ({summary['images_2d']} 2D, "
        f"{summary['volumes_3d']} 3D)"
    )


def _summary(
    seen: int,
    rows: list[dict[str, Any]],
    quarantine: list[dict[str, str]],
    skipped: list[dict[str, str]],
    acc: Accounts,
) -> dict[str, int]:
    accounted = acc.files_ingested + len(quarantine) + len(skipped)
    if accounted != seen:
        raise RuntimeError(f"ingestion lost files: saw {seen}, accounted for {accounted}")
    summary = {
        "files_seen": seen,
        "files_ingested": acc.files_ingested,
        "files_quarantined": len(quarantine),
        "files_skipped": len(skipped),
        "images_ingested": len(rows),
        "images_2d": sum(1 for r in rows if r["spatial_dims"] == 2),
        "volumes_3d": sum(1 for r in rows if r["spatial_dims"] == 3),
        "images_dropped_qc": acc.images_dropped,
        "units_decoded": acc.units_decoded,
        "units_reused": acc.units_cached,
    }
    for reason, n in sorted(Counter(q["reason"] for q in quarantine).items()):
        summary[f"quarantined_{reason}"] = n
    return summary
