"""The ``medssl`` command: the library's entry points outside DVC.

``medssl ingest SOURCE... --out DIR [--workers N]`` runs the same code as the ingest stage;
``medssl demo OUT`` writes the synthetic demo data set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _ingest(args: argparse.Namespace) -> int:
    from medssl.ingest import ingest
    from medssl.io.deid import DeidError, secret_from_env

    try:
        secret = secret_from_env(demo=args.demo)
        summary = ingest(args.sources, args.out, secret=secret, workers=args.workers)
    except (DeidError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from medssl.demo import write_demo_dataset

    summary = write_demo_dataset(args.out, seed=args.seed, n_patients=args.patients)
    print(f"wrote {summary.n_xray_files} radiographs and {summary.n_ct_series} CT series")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per entry point."""
    parser = argparse.ArgumentParser(prog="medssl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="DICOM/NIfTI/PNG folders -> NIfTI + manifest")
    ing.add_argument("sources", nargs="+", type=Path, help="folders or files to ingest")
    ing.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    ing.add_argument("--workers", type=int, default=1, help="worker processes")
    ing.add_argument(
        "--demo", action="store_true", help="use the built-in demo secret (synthetic data only)"
    )
    ing.set_defaults(func=_ingest)
    demo = sub.add_parser("demo", help="write the synthetic demo data set")
    demo.add_argument("out", type=Path)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--patients", type=int, default=30)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
