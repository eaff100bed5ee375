"""The ingestion driver: :func:`ingest` and its two passes over an engine.

1. Pass 1 maps :func:`medssl.ingest.files.process_file` over the files found by
   :func:`medssl.ingest.discovery.discover`; records come back quarantined, as series
   slices, or as single-file units already written.
2. Pass 2 drops duplicate slices, groups the rest by series, restores the series that
   the re-ingestion cache holds and maps :func:`medssl.ingest.units.run_unit` over the
   others; each series' scratch files are removed as soon as it is done.

Outputs are built in a temporary sibling folder and moved into place at the end, so a
failed run leaves no partial outputs.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from medssl.burned_in.ocr import check_available as check_ocr
from medssl.ingest.accounting import (
    Accounts,
    account_singles,
    account_unit,
    quarantine_row,
    write_outputs,
)
from medssl.ingest.cache import UnitCache
from medssl.ingest.context import Context, settings_fp, unit_key
from medssl.ingest.discovery import SourceFile, discover, file_format, key_text
from medssl.ingest.engines import Engine, WorkerCrash, make_engine
from medssl.ingest.files import process_file
from medssl.ingest.options import IngestOptions
from medssl.ingest.reid import ReidWriter, check_reid_path, repo_roots
from medssl.ingest.series import SCRATCH_DIR, drop_duplicates, group_units
from medssl.ingest.units import run_unit
from medssl.io import pseudonym
from medssl.io.sidecar import match_key, read_sidecar


def ingest(
    sources: Sequence[Path],
    out_dir: Path,
    *,
    secret: bytes,
    workers: int = 1,
    options: IngestOptions | None = None,
) -> dict[str, int]:
    """Ingest sources into ``out_dir`` (manifest, quarantine and skip tables, NIfTI, summary).

    Outputs are built in a temporary sibling folder and moved into place at the end, so a
    failed run leaves no partial outputs.

    Args:
        sources: folders or files.
        out_dir: output folder (replaced).
        secret: pseudonymization key (see :func:`medssl.io.pseudonym.secret_from_env`).
        workers: worker processes (shortcut for ``IngestOptions(workers=...)``; ignored
            when ``options`` is given).
        options: all settings (:class:`~medssl.ingest.options.IngestOptions`).

    Returns:
        The summary counts; ``files_seen == files_ingested + files_quarantined +
        files_skipped`` always holds.

    Raises:
        FileNotFoundError: a source does not exist.
        ValueError: bad options, sidecar or re-identification path.
        medssl.burned_in.ocr.OcrUnavailable: Tesseract is missing (and the policy is not off).
    """
    options = options or IngestOptions(workers=workers)
    pseudonym.Pseudonymizer(secret)  # fail early on a bad secret
    if options.burned_in_text != "off":
        check_ocr()  # fail before reading anything when Tesseract is missing
    reid_path = None
    if options.reid_table is not None:
        forbidden = [*repo_roots(Path.cwd(), out_dir.parent), out_dir, *sources]
        reid_path = check_reid_path(options.reid_table, forbidden=forbidden)
    sidecar = read_sidecar(options.sidecar) if options.sidecar else None
    candidates, skipped_raw, broken = discover(sources)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    ctx = Context(secret, tmp, options, settings_fp(options), reid=reid_path is not None)
    reid = ReidWriter(reid_path)
    try:
        summary = _ingest_into(candidates, skipped_raw, broken, sidecar, ctx, reid)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        reid.close()
    shutil.rmtree(tmp / SCRATCH_DIR, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return summary


def _sidecar_entry(
    rel: str, sidecar: dict[str, dict[str, str]] | None, match: str, ambiguous: set[str]
) -> dict[str, str] | None:
    if sidecar is None:
        return None
    key = match_key(rel, match)
    return None if key in ambiguous else sidecar.get(key)


def _ingest_into(
    candidates: list[SourceFile],
    skipped_raw: list[dict[str, str]],
    broken: list[dict[str, str]],
    sidecar: dict[str, dict[str, str]] | None,
    ctx: Context,
    reid: ReidWriter,
) -> dict[str, int]:
    pseudo = pseudonym.Pseudonymizer(ctx.secret)
    acc = Accounts()
    acc.skipped = [
        {"source_key": pseudo.key("path", key_text(s["rel"])), "rule": s["rule"]}
        for s in skipped_raw
    ]
    acc.quarantine = [
        {
            "source_key": pseudo.key("path", key_text(b["rel"])),
            "reason": b["reason"],
            "message": b["message"],
        }
        for b in broken
    ]
    match = ctx.options.sidecar.match if ctx.options.sidecar else "path"
    counts = Counter(match_key(c.rel, match) for c in candidates if file_format(c.path) != "dicom")
    ambiguous = {k for k, n in counts.items() if n > 1}
    tasks = [(c, _sidecar_entry(c.rel, sidecar, match, ambiguous)) for c in candidates]
    engine = make_engine(
        ctx.options.engine,
        ctx.options.workers,
        address=ctx.options.dask_address,
        progress=ctx.options.progress,
        timeout_s=ctx.options.timeout_s,
    )
    cache = UnitCache(ctx.options.cache_dir) if ctx.options.cache_dir else None
    try:
        slices, singles = _pass_files(engine, tasks, ctx, acc, reid)
        account_singles(singles, ctx, acc, cache)
        _pass_series(engine, slices, {c.ident: c.path for c in candidates}, ctx, acc, cache)
    finally:
        engine.close()
    return write_outputs(ctx, acc, seen=len(candidates) + len(skipped_raw) + len(broken))


def _pass_files(
    engine: Engine,
    tasks: list[tuple[SourceFile, dict[str, str] | None]],
    ctx: Context,
    acc: Accounts,
    reid: ReidWriter,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pass 1; returns slice records and single-file unit records (deduplicated later)."""
    slices: list[dict[str, Any]] = []
    singles: list[dict[str, Any]] = []
    fn = partial(process_file, ctx=ctx)
    for i, rec in engine.imap(fn, tasks, "files"):
        if isinstance(rec, WorkerCrash):
            rel = tasks[i][0].rel
            rec = {
                "rel": rel,
                "id": tasks[i][0].ident,
                "source_key": pseudonym.Pseudonymizer(ctx.secret).key("path", key_text(rel)),
                "kind": "quarantine",
                "reason": rec.reason,
                "message": rec.message,
            }
        reid.add(rec)
        if rec["kind"] == "quarantine":
            acc.quarantine.append(quarantine_row(rec, rec["reason"], rec["message"]))
        elif rec["kind"] == "slice":
            slices.append(rec)
        else:
            singles.append(rec)
    return slices, singles


def _pass_series(
    engine: Engine,
    slices: list[dict[str, Any]],
    paths: Mapping[str, Path],
    ctx: Context,
    acc: Accounts,
    cache: UnitCache | None,
) -> None:
    """Pass 2: deduplicate slices, group by series, reuse cached units, decode the rest."""
    kept, dupes = drop_duplicates(slices)
    acc.skipped.extend({"source_key": r["source_key"], "rule": "duplicate_instance"} for r in dupes)
    todo: list[list[dict[str, Any]]] = []
    for unit in group_units(kept):
        hit = cache.restore(unit_key(unit, ctx), ctx.out_dir) if cache else None
        if hit is not None:
            account_unit(unit, {**hit, "cached": True}, ctx, acc, cache)
        else:
            todo.append(unit)
    work = [(u, {r["id"]: paths[r["id"]] for r in u}) for u in todo]
    for i, result in engine.imap(partial(_run_series, ctx=ctx), work, "series"):
        if isinstance(result, WorkerCrash):
            result = {"rows": [], "quarantine": [result.reason, result.message], "key": None}
        account_unit(todo[i], result, ctx, acc, cache)


def _run_series(
    packed: tuple[list[dict[str, Any]], dict[str, Path]], ctx: Context
) -> dict[str, Any]:
    """Pass 2 for one series (in a worker): :func:`run_unit`, then drop its scratch files."""
    unit, paths = packed
    try:
        return run_unit(unit, paths, ctx)
    finally:
        for rec in unit:
            if "pixels" in rec:
                (ctx.out_dir / rec["pixels"]).unlink(missing_ok=True)
