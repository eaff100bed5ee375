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


def _ingest(args: argparse.Namespace) -> int:
    from medssl.burned_in.ocr import OcrUnavailable
    from medssl.ingest import IngestOptions, ingest, invariant_line
    from medssl.io.pseudonym import DeidError, secret_from_env
    from medssl.io.sidecar import SidecarSpec

    try:
        columns = dict(c.split("=", 1) for c in args.sidecar_column)
        options = IngestOptions(
            workers=args.workers,
            engine=args.engine,
            dask_address=args.dask_address,
            drop_flags=tuple(f for f in args.drop_flags.split(",") if f),
            drop_action=args.drop_action,
            quarantine_burned_in=not args.keep_burned_in,
            burned_in_text=args.burned_in_text,
            canonical=not args.no_canonical,
            spacing_2d=tuple(args.spacing_2d) if args.spacing_2d else None,
            spacing_3d=tuple(args.spacing_3d) if args.spacing_3d else None,
            size_2d=tuple(args.size_2d) if args.size_2d else None,
            size_3d=tuple(args.size_3d) if args.size_3d else None,
            compress=not args.no_compress,
            cache_dir=args.cache_dir,
            sidecar=SidecarSpec(str(args.sidecar), args.sidecar_match, columns)
            if args.sidecar
            else None,
            reid_table=args.reid_table,
            parquet=args.parquet,
            timeout_s=args.timeout if args.timeout and args.timeout > 0 else None,
        )
        secret = secret_from_env(demo=args.demo)
        summary = ingest(args.sources, args.out, secret=secret, options=options)
    except (DeidError, FileNotFoundError, ValueError, OcrUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(invariant_line(summary))
    return 0


def _add_ingest_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from medssl.burned_in import POLICIES
    from medssl.ingest import IngestOptions

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
        default=",".join(IngestOptions.drop_flags),
        help="comma-separated QC flags to drop ('' none)",
    )
    ing.add_argument("--drop-action", choices=["skip", "quarantine"], default="skip")
    ing.add_argument("--keep-burned-in", action="store_true", help="flag instead of quarantine")
    ing.add_argument(
        "--burned-in-text",
        choices=list(POLICIES),
        default=IngestOptions.burned_in_text,
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
        default=IngestOptions.timeout_s,
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


def _audit_verify(args: argparse.Namespace) -> int:
    from medssl.audit import AuditError, read_record, verify_record

    try:
        problems = verify_record(read_record(args.record), args.root)
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"MISMATCH {line}")
    print(f"{args.record}: {'OK' if not problems else f'{len(problems)} mismatch(es)'}")
    return 1 if problems else 0


def _audit_reproduce(args: argparse.Namespace) -> int:
    import tempfile

    from medssl.audit import AuditError, on_cpu, read_record, reproduce_in

    try:
        record = read_record(args.record)
    except AuditError as exc:
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
    default = Path("results/audit/run_record.json")
    ver = asub.add_parser("verify", help="re-hash data, models, params and code; list mismatches")
    ver.add_argument("record", type=Path, nargs="?", default=default)
    ver.add_argument("--root", type=Path, default=Path(), help="workspace root")
    ver.set_defaults(func=_audit_verify)
    rep = asub.add_parser("reproduce", help="re-run the pipeline in a scratch folder and compare")
    rep.add_argument("record", type=Path, nargs="?", default=default)
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
    from medssl.io.pseudonym import DeidError, Pseudonymizer, secret_from_env
    from medssl.sources.pull import pull_from
    from medssl.sources.spec import PullError, parse_query

    try:
        query = parse_query(args.study_date, args.modality, args.limit)
        pseudo = Pseudonymizer(secret_from_env(demo=args.demo))
        done = pull_from(
            args.source, args.out, query, pseudo, calling_aet=args.aet, repo=Path.cwd(),
            timeout=args.timeout,
        )  # fmt: skip
    except (PullError, DeidError) as exc:
        print(f"error: {exc}", file=sys.stderr)
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

    path = args.results / "label_efficiency_seeds.json"
    if not path.exists():
        print(f"error: {path} not found (run dvc repro first)", file=sys.stderr)
        return 1
    print(headline_text(json.loads(path.read_text())), end="")
    report = args.results / "report" / "index.html"
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
    res.add_argument("results", type=Path, nargs="?", default=Path("results"))
    res.set_defaults(func=_results)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
