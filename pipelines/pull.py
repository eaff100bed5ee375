"""Stage pull: fetch new instances from a PACS into the folder ingestion reads (off by default).

Incremental: instances already in ``pulled.csv`` are not fetched again; run
``dvc repro -f pull`` to look for new ones. Credentials come from the environment
(``MEDSSL_PACS_*``), never from params.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medssl.io.pseudonym import DeidError
from medssl.params import Params
from medssl.sources.pull import pull_configured
from medssl.sources.spec import PullError
from medssl.stage import run_stage


def main(args: argparse.Namespace, p: Params) -> None:
    done = pull_configured(p.pull, args.out, demo=p.data.demo_mode, repo=Path.cwd())
    if done is None:
        print("pull: off (pull.enabled is false)")
        return
    print(f"pull: {done.fetched} new, {done.already} already here, {done.studies} studies")


if __name__ == "__main__":
    run_stage(main, __doc__, paths=("--out",), errors=(PullError, DeidError))
