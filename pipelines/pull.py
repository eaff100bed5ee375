"""Stage pull: fetch new instances from a PACS into the folder ingestion reads (off by default).

Incremental: instances already in ``pulled.csv`` are not fetched again; run
``dvc repro -f pull`` to look for new ones. Credentials come from the environment
(``MEDSSL_PACS_*``), never from params.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medssl.io.pseudonym import DeidError, Pseudonymizer, secret_from_env
from medssl.params import ParamsError, get, load_params
from medssl.sources.pull import Ledger, pull_from
from medssl.sources.spec import PullError, parse_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    try:
        p = load_params(args.params)
        if not get(p, "pull.enabled", bool):
            Ledger(args.out)  # the folder and an empty table, so ingestion finds both
            print("pull: off (pull.enabled is false)")
            return
        optional = (str, type(None))
        limit = get(p, "pull.limit", (int, type(None)))
        query = parse_query(get(p, "pull.study_date", optional),
                            get(p, "pull.modalities", optional), limit)  # fmt: skip
        source = get(p, "pull.source", optional)
        if not source:
            raise ParamsError("params.yaml: 'pull.source' is needed when pull.enabled is true")
        done = pull_from(
            source, args.out, query,
            Pseudonymizer(secret_from_env(demo=get(p, "data.demo_mode", bool))),
            calling_aet=get(p, "pull.aet", str), repo=Path.cwd(),
            timeout=get(p, "pull.timeout_s", float),
        )  # fmt: skip
    except (PullError, ParamsError, DeidError) as exc:
        sys.exit(f"error: {exc}")
    print(f"pull: {done.fetched} new, {done.already} already here, {done.studies} studies")


if __name__ == "__main__":
    main()
