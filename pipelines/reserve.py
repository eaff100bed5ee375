"""Stage reserve: the label-independent evaluation reserve (pool vs reserved patients).

Runs before, and without, any label set: pretraining uses the pool, test patients come
from the reserve. Writes ``reserve.csv`` (``image_id, patient_key, part``).
"""

from __future__ import annotations

import argparse

from medssl.data.reserve import POOL, ReserveError
from medssl.data.reserve_draw import draw_reserve
from medssl.io.pseudonym import DeidError
from medssl.params import Params
from medssl.stage import run_stage


def main(args: argparse.Namespace, p: Params) -> None:
    table = draw_reserve(args.ingested, args.lists, p.reserve, demo=p.data.demo_mode)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, lineterminator="\n")
    for part, rows in table.groupby("part"):
        role = "pretraining + training labels" if part == POOL else "test (never pretrained on)"
        print(f"{part}: {rows['patient_key'].nunique()} patients, {len(rows)} images ({role})")


if __name__ == "__main__":
    paths = ("--ingested", "--lists", "--out")
    run_stage(main, __doc__, paths=paths, errors=(ReserveError, DeidError))
