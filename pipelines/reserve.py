"""Stage reserve: the label-independent evaluation reserve (pool vs reserved patients).

Runs before, and without, any label set: pretraining uses the pool, test patients come
from the reserve. Writes ``reserve.csv`` (``image_id, patient_key, part``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medssl.data.manifest import MANIFEST_NAME, read_manifest, unusable_sources
from medssl.data.reserve import POOL, ReserveError, hashed_reserve, listed_reserve, partition
from medssl.io.pseudonym import DeidError, Pseudonymizer, secret_from_env
from medssl.params import ParamsError, get, load_params, tracked_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--lists", type=Path, required=True, help="folder of tracked lists")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    try:
        p = load_params(args.params)
        manifest = read_manifest(args.ingested / MANIFEST_NAME)
        pseudo = Pseudonymizer(secret_from_env(demo=get(p, "data.demo_mode", bool)))
        listed = tracked_file(p, "reserve.path", args.lists)
        if listed is None:
            reserved = hashed_reserve(
                manifest["patient_key"].tolist(),
                get(p, "reserve.fraction", float),
                get(p, "reserve.seed", int),
                pseudo,
            )
        else:
            key = get(p, "reserve.key", str)
            reserved = listed_reserve(
                listed, manifest, unusable_sources(args.ingested), pseudo, key
            )
    except (ReserveError, ParamsError, DeidError) as exc:
        sys.exit(f"error: {exc}")
    table = partition(manifest, reserved)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, lineterminator="\n")
    for part, rows in table.groupby("part"):
        role = "pretraining + training labels" if part == POOL else "test (never pretrained on)"
        print(f"{part}: {rows['patient_key'].nunique()} patients, {len(rows)} images ({role})")


if __name__ == "__main__":
    main()
