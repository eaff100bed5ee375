"""Label-efficiency benchmark on a real, labelled image folder, through the DVC pipeline.

The folder holds ``labels.csv`` (columns ``path``, ``label`` in {0, 1}, ``split`` in
{train, val, test}, optional ``patient_id``), ``reserve.csv`` (column ``path``: the
evaluation reserve, i.e. the ``val`` and ``test`` images, never pretrained on) and the
images they name (DICOM or PNG, paths relative to the folder). The script builds a scratch
git + DVC workspace holding this repository's pipeline, copies both CSVs into its
``labels/`` folder, merges a preset of ``benchmarks/label_efficiency.yaml`` into
``params.yaml`` and runs every stage (``dvc repro``), timing each: the realistic protocol
(``split.validation: budget``, every choice made on labels inside the budget) over the
preset's seeds. Then, unless ``--oracle-seeds`` is empty, it re-runs the label-dependent
stages with ``split.validation: oracle`` (the old protocol: choices on the full ``val``
split) for those seeds, reusing the encoder. It writes:

* ``OUT`` (JSON): the records of ``results/label_efficiency.json`` of the budget protocol
  (one per arm x mode x budget x seed, with ``n_val_labels`` and ``val_protocol``);
* ``OUT`` with suffix ``.seeds.json``: mean and spread across seeds
  (``results/label_efficiency_seeds.json``);
* ``OUT`` with suffix ``.oracle.json``: the oracle protocol's records;
* ``OUT`` with suffix ``.md``: the Markdown tables of both protocols;
* ``OUT`` with suffix ``.run.json``: params used, stage timings, command and versions.

Example (PneumoniaMNIST, see ``benchmarks/pneumoniamnist_to_folder.py``):

    python benchmarks/pneumoniamnist_to_folder.py --out /tmp/pmnist
    python benchmarks/label_efficiency.py --data /tmp/pmnist --out /tmp/pmnist_le.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PRESETS = Path(__file__).with_suffix(".yaml")
COPIED = ("dvc.yaml", ".dvcignore", ".gitignore")
QUICK_ROWS = {"train": 400, "val": 150, "test": 200}


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge, anything else in ``over`` replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_preset(
    presets: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Preset ``name`` with its ``extends:`` chain merged in (the named preset first).

    Raises:
        SystemExit: the chain names an unknown preset or comes back to one it passed.
    """
    block = dict(presets[name])
    base = block.pop("extends", None)
    if base is None:
        return block
    chain = (*seen, name)
    if base not in presets:
        raise SystemExit(f"error: preset {name!r} extends unknown preset {base!r}")
    if base in chain:
        raise SystemExit(f"error: presets extend in a cycle: {' -> '.join((*chain, base))}")
    return merge(resolve_preset(presets, base, chain), block)


def dotted_override(item: str) -> dict[str, Any]:
    """``"a.b=VALUE"`` -> ``{"a": {"b": VALUE}}`` (VALUE parsed as YAML), as ``dvc exp run -S``."""
    key, sep, raw = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise SystemExit(f"error: --set {item!r}: expected KEY=VALUE, e.g. pretrain.seed=1")
    value: Any = yaml.safe_load(raw)
    for part in reversed(key.split(".")):
        value = {part: value}
    return dict(value)


def read_labels(data: Path) -> pd.DataFrame:
    """``labels.csv`` of the folder, checked for the benchmark's columns and ``reserve.csv``."""
    table = pd.read_csv(data / "labels.csv", dtype=str, keep_default_na=False)
    missing = {"path", "label", "split"} - set(table.columns)
    if missing:
        raise SystemExit(f"error: {data / 'labels.csv'} lacks column(s) {sorted(missing)}")
    if not (data / "reserve.csv").exists():
        raise SystemExit(f"error: {data / 'reserve.csv'} not found (the evaluation reserve)")
    return table


def quick_subset(data: Path, dest: Path, seed: int = 0) -> Path:
    """Copy a stratified subset (:data:`QUICK_ROWS` per split) of the folder into ``dest``."""
    table = read_labels(data)
    parts = []
    for split, n in QUICK_ROWS.items():
        part = table[table["split"] == split]
        frac = min(1.0, n / max(1, len(part)))
        parts.append(part.groupby("label").sample(frac=frac, random_state=seed))
    subset = pd.concat(parts).sort_values("path")
    for rel in subset["path"]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(data / rel, dest / rel)
    subset.to_csv(dest / "labels.csv", index=False, lineterminator="\n")
    reserve = subset.loc[subset["split"] != "train", ["path"]]
    reserve.to_csv(dest / "reserve.csv", index=False, lineterminator="\n")
    return dest


def make_workspace(ws: Path, data: Path, preset: Mapping[str, Any]) -> dict[str, Any]:
    """A git + DVC repository with this pipeline and params pointing at ``data``."""
    ws.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copy(REPO / name, ws / name)
    for folder in ("pipelines", "medssl", "weights"):
        shutil.copytree(REPO / folder, ws / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), preset)
    (ws / "labels").mkdir()
    for name in ("labels.csv", "reserve.csv"):
        shutil.copy(data / name, ws / "labels" / name)
    params = merge(
        params,
        {
            "data": {"sources": [str(data)], "demo_mode": True},  # public data: demo secret
            "reserve": {"path": "labels/reserve.csv", "key": "path"},
            "labels": {"path": "labels/labels.csv", "key": "path", "column": "label"},
            "split": {"validation": "budget"},
        },
    )
    params["labels"]["positive"], params["labels"]["negative"] = ["1"], ["0"]
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        [
            "git",
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "benchmark workspace",
        ],  # fmt: skip
        ["dvc", "init", "-q"],
    ):
        subprocess.run(cmd, cwd=ws, check=True, env=_env())
    return params


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MEDSSL_DEID_SECRET", None)
    return env


def set_threads(n: int | None) -> None:
    """Pin torch/OpenMP threads of every stage (1 avoids spin-wait stalls on a busy machine)."""
    if n is not None:
        if n < 1:
            raise SystemExit(f"error: --threads must be >= 1, got {n}")
        os.environ["OMP_NUM_THREADS"] = str(n)


def run_stages(ws: Path, log: Path) -> dict[str, float]:
    """Run every stage in order (``dvc repro -s``), returning wall seconds per stage."""
    listing = subprocess.run(
        ["dvc", "stage", "list", "--name-only"],
        cwd=ws, env=_env(), check=True, capture_output=True, text=True,
    )  # fmt: skip
    timings: dict[str, float] = {}
    with log.open("a") as out:
        for stage in listing.stdout.split():
            start = time.perf_counter()
            proc = subprocess.run(
                ["dvc", "repro", "-s", stage], cwd=ws, env=_env(), stdout=out, stderr=out
            )
            timings[stage] = round(time.perf_counter() - start, 1)
            print(f"{stage}: {timings[stage]:.1f} s", flush=True)
            if proc.returncode != 0:
                out.flush()
                tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
                raise SystemExit(f"{tail}\nerror: stage {stage} failed (log above)")
        check = subprocess.run(["dvc", "repro"], cwd=ws, env=_env(), capture_output=True, text=True)
        out.write(check.stdout + check.stderr)
    if check.returncode != 0 or "Running stage" in check.stdout:
        raise SystemExit(f"{check.stdout[-3000:]}\nerror: the pipeline was not up to date")
    return timings


def oracle_pass(ws: Path, log: Path, seeds: list[int]) -> tuple[list[Any], str, float]:
    """Re-run the label-dependent stages under the oracle protocol; the encoder is reused.

    Returns:
        The oracle records, their Markdown table and the wall seconds.
    """
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["split"]["validation"] = "oracle"
    params["finetune"]["seeds"] = seeds
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    start = time.perf_counter()
    with log.open("a") as out:
        proc = subprocess.run(["dvc", "repro"], cwd=ws, env=_env(), stdout=out, stderr=out)
    if proc.returncode != 0:
        raise SystemExit(f"error: the oracle pass failed (see {log})")
    if "Running stage 'pretrain'" in log.read_text().split("oracle pass")[-1]:
        raise SystemExit("error: the oracle pass re-ran pretraining")
    wall = round(time.perf_counter() - start, 1)
    records = json.loads((ws / "results" / "label_efficiency.json").read_text())
    return records, (ws / "results" / "label_efficiency.md").read_text(), wall


def versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    import monai
    import numpy
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "threads": str(torch.get_num_threads()),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with labels.csv")
    parser.add_argument("--out", type=Path, required=True, help="JSON table to write")
    parser.add_argument("--quick", action="store_true", help="smoke run on a small subset")
    parser.add_argument("--preset", default="full", help="block of the presets file (full, long)")
    parser.add_argument("--image-size", type=int, help="override model.image_size")
    parser.add_argument("--presets", type=Path, default=PRESETS)
    parser.add_argument("--workdir", type=Path, help="keep the workspace here (default: temp)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every stage")
    parser.add_argument(
        "--oracle-seeds", default="0", help="comma-separated seeds of the oracle pass ('' : none)"
    )
    parser.add_argument(
        "--seeds", help="comma-separated fine-tuning seeds instead of the preset's (e.g. 0)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params key of the preset, YAML value (e.g. pretrain.seed=1; repeatable)",
    )
    args = parser.parse_args()
    oracle_seeds = [int(v) for v in args.oracle_seeds.split(",") if v.strip()]
    set_threads(args.threads)
    data = args.data.resolve()
    read_labels(data)
    presets = yaml.safe_load(args.presets.read_text())
    name = "quick" if args.quick else args.preset
    if name not in presets:
        raise SystemExit(f"error: --preset {name!r} not in {args.presets} ({sorted(presets)})")
    preset = resolve_preset(presets, name)
    if args.image_size is not None:
        preset = merge(preset, {"model": {"image_size": args.image_size}})
    if args.seeds:
        preset = merge(preset, {"finetune": {"seeds": [int(v) for v in args.seeds.split(",")]}})
    for item in args.set:
        preset = merge(preset, dotted_override(item))
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="medssl-bench-")
        ws = Path(tmp.name) / "ws"
    else:
        ws = args.workdir.resolve()
        if ws.exists():
            raise SystemExit(f"error: --workdir {ws} exists; give a new folder")
    try:
        if args.quick:
            data = quick_subset(data, ws.parent / f"{ws.name}-data")
        params = make_workspace(ws, data, preset)
        start = time.perf_counter()
        log = ws.parent / f"{ws.name}-repro.log"
        timings = run_stages(ws, log)
        records = json.loads((ws / "results" / "label_efficiency.json").read_text())
        seeds = json.loads((ws / "results" / "label_efficiency_seeds.json").read_text())
        table = (ws / "results" / "label_efficiency.md").read_text()
        ingest = json.loads((ws / "results" / "ingest.json").read_text())
        oracle: list[Any] = []
        if oracle_seeds:
            with log.open("a") as out:
                out.write("\n--- oracle pass ---\n")
            oracle, oracle_table, timings["oracle_pass"] = oracle_pass(ws, log, oracle_seeds)
            table += f"\n## Oracle protocol (full validation split), seeds {oracle_seeds}\n\n"
            table += oracle_table
        total = round(time.perf_counter() - start, 1)
    finally:
        if tmp is not None:
            tmp.cleanup()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    args.out.with_suffix(".seeds.json").write_text(json.dumps(seeds, indent=2) + "\n")
    if oracle:
        args.out.with_suffix(".oracle.json").write_text(json.dumps(oracle, indent=2) + "\n")
    command = " ".join(["python", *sys.argv])
    header = f"<!-- {command}; {total:.0f} s wall on {os.cpu_count()} CPU cores -->\n"
    args.out.with_suffix(".md").write_text(header + table)
    meta = {
        "command": command,
        "preset": name,
        "data": str(args.data),
        "wall_s": total,
        "stage_s": timings,
        "ingest": ingest,
        "params": params,
        "versions": versions(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    args.out.with_suffix(".run.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(table)
    print(f"total {total:.0f} s; wrote {args.out} and its .md / .run.json")


if __name__ == "__main__":
    main()
