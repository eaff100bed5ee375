"""Stage evaluate: every arm x mode x budget x seed on the test split, with patient CIs.

Writes ``label_efficiency.json`` (one record per seed), ``label_efficiency_seeds.json``
(mean and spread across seeds per arm x mode x budget), ``label_efficiency.md`` (both
tables), DVC metrics and plot data (ROC, PR, calibration of each arm's headline mode at the
last budget; AUROC vs labels).
"""

from __future__ import annotations

import argparse

from medssl.eval.outputs import evaluate_folder
from medssl.params import Params
from medssl.stage import run_stage


def main(args: argparse.Namespace, p: Params) -> None:
    done = evaluate_folder(args.runs, args.out, p.finetune, p.evaluate)
    if done.n_single_class:
        print(
            f"note: {done.n_single_class} bootstrap intervals skipped >10% single-class "
            "resamples (few cases)"
        )
    print(done.text)


if __name__ == "__main__":
    run_stage(main, __doc__, paths=("--runs", "--out"), errors=(ValueError,))
