"""Stage ingest: DICOM/NIfTI/PNG sources -> de-identified NIfTI, manifest, quarantine.

Reads ``data`` (sources, demo mode, sidecar) and ``ingest`` (workers, engine, cache, QC
drop rules, geometry) from params; the same code runs as ``medssl ingest``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medssl.burned_in.ocr import OcrUnavailable
from medssl.ingest import ingest, invariant_line, options_from_params, stable_summary
from medssl.io.pseudonym import DeidError, secret_from_env
from medssl.io.sidecar import SidecarError
from medssl.params import ParamsError, get, load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    try:
        p = load_params(args.params)
        sources = [Path(s) for s in get(p, "data.sources", list)]
        secret = secret_from_env(demo=get(p, "data.demo_mode", bool))
        options = options_from_params(p)
        summary = ingest(sources, args.out, secret=secret, options=options)
    except (
        ParamsError,
        DeidError,
        SidecarError,
        FileNotFoundError,
        ValueError,
        OcrUnavailable,
    ) as exc:
        sys.exit(f"error: {exc}")
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    stable = stable_summary(summary)
    args.summary.write_text(json.dumps(stable, indent=2, sort_keys=True) + "\n")
    print(invariant_line(summary))
    print(f"units decoded {summary['units_decoded']}, reused from cache {summary['units_reused']}")


if __name__ == "__main__":
    main()
