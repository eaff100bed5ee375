"""The ``medssl`` command: the library's entry points outside DVC.

``medssl ingest SOURCE... --out DIR [--workers N]`` runs the same code as the ingest stage;
``medssl demo OUT`` writes the synthetic demo data set;
``medssl pull SOURCE --out DIR`` fetches new instances from a PACS (DICOMweb or DIMSE);
``medssl audit verify [RUN_RECORD]`` and ``medssl audit reproduce [RUN_RECORD]`` check a run
record against the workspace and against a re-run; ``medssl results [DIR]`` prints each
arm's headline AUROC per budget and whether self-supervision paid.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medssl.params import DataParams, IngestParams


def _ingest(args: argparse.Namespace) -> int:
    from medssl.burned_in.ocr import OcrUnavailable
    from medssl.ingest import ingest, ingest_options, invariant_line
    from medssl.io.pseudonym import DeidError, secret_from_env

    try:
        ingest_params, data = _ingest_params(args)
        options = ingest_options(ingest_params, data)
        secret = secret_from_env(demo=data.demo_mode)
        summary = ingest(args.sources, args.out, secret=secret, options=options)
    except (DeidError, FileNotFoundError, ValueError, OcrUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(invariant_line(summary))
    return 0


def _ingest_params(args: argparse.Namespace) -> tuple[IngestParams, DataParams]:
    """The ``ingest`` and ``data`` params models the stage reads, from the flags."""
    from medssl.params import DataParams, IngestParams, validate

    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    sidecar = None
    if args.sidecar:
        columns = dict(c.split("=", 1) for c in args.sidecar_column)
        sidecar = {"path": str(args.sidecar), "match": args.sidecar_match, "columns": columns}
    flags = {
        "workers": args.workers,
        "engine": args.engine,
        "dask_address": args.dask_address,
        "cache_dir": text(args.cache_dir),
        "drop_flags": [f for f in args.drop_flags.split(",") if f],
        "drop_action": args.drop_action,
        "quarantine_burned_in": not args.keep_burned_in,
        "burned_in_text": args.burned_in_text,
        "canonical": not args.no_canonical,
        "resample": {
            k: getattr(args, k) for k in ("spacing_2d", "spacing_3d", "size_2d", "size_3d")
        },
        "compress": not args.no_compress,
        "parquet": args.parquet,
        "timeout_s": args.timeout if args.timeout and args.timeout > 0 else None,
        "reid_table": text(args.reid_table),
    }
    where = "medssl ingest"
    data = {"sources": [str(s) for s in args.sources], "demo_mode": args.demo, "sidecar": sidecar}
    return (
        validate(IngestParams, flags, where, ("ingest",)),
        validate(DataParams, data, where, ("data",)),
    )


def _add_ingest_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from medssl.burned_in import POLICIES
    from medssl.params import IngestParams

    defaults = IngestParams(workers=1)
    ing = sub.add_parser("ingest", help="DICOM/NIfTI/PNG folders -> NIfTI + manifest")
    ing.add_argument("sources", nargs="+", type=Path, help="folders or files to ingest")
    ing.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    ing.add_argument("--workers", type=int, default=1, help="worker processes")
    ing.add_argument("--engine", choices=["local", "dask"], default="local")
    ing.add_argument("--dask-address", help="Dask scheduler (default: a LocalCluster)")
    ing.add_argument("--cache-dir", type=Path, help="re-ingestion cache folder (default: none)")
    ing.add_argument("--sidecar", type=Path, help="CSV: path, patient_id, study_id, view")
    ing.add_argument("--sidecar-match", choices=["path", "name", "stem"], default="path")
    ing.add_argument(
        "--sidecar-column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="sidecar column for a field, e.g. view=projection (repeatable)",
    )
    ing.add_argument(
        "--drop-flags",
        default=",".join(defaults.drop_flags),
        help="comma-separated QC flags to drop ('' none)",
    )
    ing.add_argument("--drop-action", choices=["skip", "quarantine"], default="skip")
    ing.add_argument("--keep-burned-in", action="store_true", help="flag instead of quarantine")
    ing.add_argument(
        "--burned-in-text",
        choices=list(POLICIES),
        default=defaults.burned_in_text,
        help="identity-like text in the pixels of 2D images (default: quarantine)",
    )
    ing.add_argument("--no-canonical", action="store_true", help="keep DICOM voxel axes")
    ing.add_argument("--spacing-2d", type=float, nargs=2, metavar="MM")
    ing.add_argument("--spacing-3d", type=float, nargs=3, metavar="MM")
    ing.add_argument("--size-2d", type=int, nargs=2, metavar="N")
    ing.add_argument("--size-3d", type=int, nargs=3, metavar="N")
    ing.add_argument("--no-compress", action="store_true", help="write .nii, not .nii.gz")
    ing.add_argument("--parquet", action="store_true", help="also write Parquet tables")
    ing.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout_s,
        metavar="S",
        help="stop a worker stuck on one file or series after S seconds (0: never)",
    )
    ing.add_argument(
        "--reid-table", type=Path, help="write the re-identification CSV here (outside the repo)"
    )
    ing.add_argument(
        "--demo", action="store_true", help="use the built-in demo secret (synthetic data only)"
    )
    ing.set_defaults(func=_ingest)


def _record_path(args: argparse.Namespace) -> Path:
    """The record named on the command line, else the workspace's declared one."""
    from medssl.workspace import workspace_path

    return Path(args.record) if args.record else workspace_path("record", args.root)


def _audit_verify(args: argparse.Namespace) -> int:
    from medssl.audit import AuditError, read_record, verify_record
    from medssl.workspace import WorkspaceError

    try:
        args.record = _record_path(args)
        problems = verify_record(read_record(args.record), args.root)
    except (AuditError, WorkspaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"MISMATCH {line}")
    print(f"{args.record}: {'OK' if not problems else f'{len(problems)} mismatch(es)'}")
    return 1 if problems else 0


def _audit_reproduce(args: argparse.Namespace) -> int:
    import tempfile

    from medssl.audit import AuditError, on_cpu, read_record, reproduce_in
    from medssl.workspace import WorkspaceError

    try:
        record = read_record(_record_path(args))
    except (AuditError, WorkspaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="medssl-reproduce-", dir=args.workdir) as tmp:
        problems = reproduce_in(record, args.root, Path(tmp), args.atol)
    for line in problems:
        print(f"MISMATCH {line}")
    what = "metrics and output hashes" if on_cpu(record) else "metrics"
    print(f"re-run: {what} {'match' if not problems else 'differ'} ({len(problems)} mismatches)")
    return 1 if problems else 0


def _add_audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    aud = sub.add_parser("audit", help="check a run record against the workspace")
    asub = aud.add_subparsers(dest="audit_command", required=True)
    record = "run record (default: vars.paths.record of dvc.yaml)"
    ver = asub.add_parser("verify", help="re-hash data, models, params and code; list mismatches")
    ver.add_argument("record", type=Path, nargs="?", help=record)
    ver.add_argument("--root", type=Path, default=Path(), help="workspace root")
    ver.set_defaults(func=_audit_verify)
    rep = asub.add_parser("reproduce", help="re-run the pipeline in a scratch folder and compare")
    rep.add_argument("record", type=Path, nargs="?", help=record)
    rep.add_argument("--root", type=Path, default=Path(), help="workspace root")
    rep.add_argument("--workdir", type=Path, help="parent of the scratch folder (default: tmp)")
    rep.add_argument("--atol", type=float, default=1e-6, help="metric tolerance")
    rep.set_defaults(func=_audit_reproduce)


def _demo(args: argparse.Namespace) -> int:
    from medssl.demo import write_demo_dataset

    summary = write_demo_dataset(args.out, seed=args.seed, n_patients=args.patients)
    print(f"wrote {summary.n_xray_files} radiographs and {summary.n_ct_series} CT series")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from medssl.io.pseudonym import DeidError
    from medssl.params import ParamsError, PullParams, validate
    from medssl.sources.pull import pull_configured
    from medssl.sources.spec import PullError

    flags = {
        "enabled": True,
        "source": args.source,
        "aet": args.aet,
        "study_date": args.study_date,
        "modalities": args.modality,
        "limit": args.limit,
        "timeout_s": args.timeout,
    }
    try:
        params = validate(PullParams, flags, "medssl pull", ("pull",))
        done = pull_configured(params, args.out, demo=args.demo, repo=Path.cwd())
    except (PullError, DeidError, ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if done is None:  # not reached: the flags enable the pull
        return 1
    print(
        f"pulled {done.fetched} new instance(s) ({done.bytes} bytes) of {done.instances} in "
        f"{done.studies} studies; {done.already} already there, {done.adopted} recovered"
    )
    return 0


def _add_pull_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pull = sub.add_parser("pull", help="fetch new instances from a PACS into a folder")
    pull.add_argument("source", help="dicomweb+https://host/path | dimse://AET@host:port")
    pull.add_argument("--out", type=Path, required=True)
    pull.add_argument("--study-date", help="FROM-TO as YYYYMMDD-YYYYMMDD (either end open)")
    pull.add_argument("--modality", help="modalities in study, e.g. CR,DX,CT")
    pull.add_argument("--limit", type=int, help="at most N studies")
    pull.add_argument("--aet", default="MEDSSL", help="our AE title (DIMSE)")
    pull.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    pull.add_argument("--demo", action="store_true", help="fixed demo secret (public data only)")
    pull.set_defaults(func=_pull)


def _results(args: argparse.Namespace) -> int:
    from medssl.eval.seeds import headline_text
    from medssl.workspace import WorkspaceError, workspace_path

    try:
        path = workspace_path("seed_summary", args.root)
        report = workspace_path("report", args.root)
    except WorkspaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"error: {path} not found (run dvc repro first)", file=sys.stderr)
        return 1
    print(headline_text(json.loads(path.read_text())), end="")
    if report.exists():
        print(f"report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per entry point."""
    parser = argparse.ArgumentParser(prog="medssl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_ingest_parser(sub)
    demo = sub.add_parser("demo", help="write the synthetic demo data set")
    demo.add_argument("out", type=Path)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--patients", type=int, default=30)
    demo.set_defaults(func=_demo)
    _add_audit_parser(sub)
    _add_pull_parser(sub)
    res = sub.add_parser("results", help="headline AUROC per arm and budget, and the verdict")
    res.add_argument("--root", type=Path, default=Path(), help="workspace root")
    res.set_defaults(func=_results)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
