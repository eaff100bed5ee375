"""Patient-level bootstrap CI cost (a script, not a timed test).

Times :func:`medssl.eval.bootstrap.bootstrap_ci` of AUROC for ``--images`` test images in
groups of 3 per patient and ``--resamples`` resamples, best of ``--repeats``; evaluate runs
one such CI per metric, arm, mode, budget and seed.

    python benchmarks/bootstrap_speed.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medssl.eval import bootstrap, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, args.images)
    s = y * 0.5 + rng.normal(0, 0.5, args.images)
    groups = np.arange(args.images) // 3
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        bootstrap.bootstrap_ci(metrics.auroc, y, s, groups, n_boot=args.resamples)
        best = min(best, time.perf_counter() - start)
    print(f"bootstrap CI, {args.images} images, {args.resamples} resamples: {best:.3f} s")


if __name__ == "__main__":
    main()
