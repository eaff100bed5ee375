"""Stage ingest: DICOM/NIfTI/PNG sources -> de-identified NIfTI, manifest, quarantine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medssl.ingest import ingest
from medssl.io.deid import secret_from_env
from medssl.params import get, get_positive, load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    p = load_params(args.params)
    sources = [Path(s) for s in get(p, "data.sources", list)]
    secret = secret_from_env(demo=get(p, "data.demo_mode", bool))
    summary = ingest(
        sources, args.out, secret=secret, workers=get_positive(p, "ingest.workers", int)
    )
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(
        f"files seen {summary['files_seen']} = ingested {summary['files_ingested']} "
        f"+ quarantined {summary['files_quarantined']} + skipped {summary['files_skipped']}; "
        f"{summary['images_ingested']} images"
    )


if __name__ == "__main__":
    main()
