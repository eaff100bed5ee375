"""Stage finetune@ARM-BUDGET-SEED: every mode of one arm on one label budget.

Under the ``budget`` validation protocol the seed's nested label draw is split by patient
into labels to fit on and labels to choose with (early stopping, probe ``C``, Platt
scaling, thresholds), all counted in the budget; under ``oracle`` the choices use the
validation split. Writes ``scores.csv`` (one row per scored val/test image and mode:
probability and raw score), ``run.json`` (budget, label counts, ``n_val_labels``,
``val_protocol``, what each mode chose) and, for full fine-tuning, ``model.pt``.
"""

from __future__ import annotations

import argparse

from medssl.params import Params
from medssl.stage import run_stage
from medssl.train.finetune import ARM_MODES
from medssl.train.finetune_run import FinetuneInputs, finetune_run


def parse_budget_arg(text: str) -> int | float | str:
    """``"8"`` -> 8, ``"0.1"`` -> 0.1, ``"all"`` -> ``"all"``."""
    if text == "all":
        return text
    return float(text) if "." in text else int(text)


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arm", choices=sorted(ARM_MODES), required=True)
    parser.add_argument("--budget", type=parse_budget_arg, required=True)
    parser.add_argument("--seed", type=int, required=True)


def main(args: argparse.Namespace, p: Params) -> None:
    inputs = FinetuneInputs(
        ingested=args.ingested, splits=args.splits, labels=args.labels, encoder=args.encoder
    )
    finetune_run(
        args.arm, args.budget, args.seed, inputs, args.out,
        model=p.model, finetune=p.finetune, split=p.split,
    )  # fmt: skip


if __name__ == "__main__":
    paths = ("--ingested", "--splits", "--labels", "--encoder", "--out")
    errors = (ValueError,)  # SplitError, ParamsError and the configs' checks name the key
    run_stage(main, __doc__, paths=paths, arguments=arguments, errors=errors)
