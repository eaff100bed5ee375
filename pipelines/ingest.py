"""Stage ingest: DICOM/NIfTI/PNG sources -> de-identified NIfTI, manifest, quarantine.

Reads ``data`` (sources, demo mode, sidecar) and ``ingest`` (workers, engine, cache, QC
drop rules, geometry) from params; the same code runs as ``medssl ingest``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medssl.burned_in.ocr import OcrUnavailable
from medssl.ingest import ingest, ingest_options, invariant_line, stable_summary
from medssl.io.pseudonym import DeidError, secret_from_env
from medssl.io.sidecar import SidecarError
from medssl.params import Params
from medssl.stage import run_stage


def main(args: argparse.Namespace, p: Params) -> None:
    options = ingest_options(p.ingest, p.data)
    secret = secret_from_env(demo=p.data.demo_mode)
    summary = ingest([Path(s) for s in p.data.sources], args.out, secret=secret, options=options)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    stable = stable_summary(summary)
    args.summary.write_text(json.dumps(stable, indent=2, sort_keys=True) + "\n")
    print(invariant_line(summary))
    print(f"units decoded {summary['units_decoded']}, reused from cache {summary['units_reused']}")


if __name__ == "__main__":
    errors = (DeidError, SidecarError, FileNotFoundError, ValueError, OcrUnavailable)
    run_stage(main, __doc__, paths=("--out", "--summary"), errors=errors)
