"""Stage pretrain: self-supervised pretraining of the encoder on every pool image.

Label-free: it reads the manifest and the evaluation reserve only, so one encoder serves
every label set (a new ``labels.path`` never re-runs this stage). With ``model.init`` the
encoder starts from weights on disk (continued pretraining; ``pretrain.epochs: 0`` uses
them as they are); their SHA-256 goes into ``encoder.json`` and the resume fingerprint.

Resumes from ``--checkpoints/last.pt`` when the same configuration was interrupted
(SIGTERM saves a checkpoint first; SIGKILL loses at most ``pretrain.checkpoint_every``
steps). With ``pretrain.nproc > 1`` the script re-executes itself under ``torchrun``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medssl.params import Params
from medssl.stage import run_stage
from medssl.train import distributed as dist
from medssl.train.pretrain import Preempted
from medssl.train.pretrain_run import PretrainPaths, prepare_pretrain, run_pretrain


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=Path("models/pretrain_cache"))


def main(args: argparse.Namespace, p: Params) -> None:
    if p.pretrain.nproc > 1 and not dist.under_torchrun():
        dist.relaunch_under_torchrun(p.pretrain.nproc, str(Path(__file__).resolve()), sys.argv[1:])
    paths = PretrainPaths(
        ingested=args.ingested, reserve=args.reserve, weights=args.weights, out=args.out,
        checkpoints=args.checkpoints, cache_dir=args.cache_dir, live=args.live,
    )  # fmt: skip
    job = prepare_pretrain(paths, p.model, p.pretrain)
    info = dist.setup(job.options.device)
    try:
        run_pretrain(job, info)
    except Preempted as exc:
        print(exc, file=sys.stderr)
        sys.exit(143)  # 128 + SIGTERM: DVC sees a failed stage; rerun to resume
    finally:
        dist.teardown()


if __name__ == "__main__":
    paths = ("--ingested", "--reserve", "--weights", "--out", "--checkpoints", "--live")
    errors = (ValueError,)  # ParamsError, InitError, ReserveError and the configs' checks
    run_stage(main, __doc__, paths=paths, arguments=arguments, errors=errors)
