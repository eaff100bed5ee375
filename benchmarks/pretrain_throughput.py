"""Pretraining throughput: numeric modes side by side, and the data pipeline vs in-memory.

Every *mode* trains the same model with the same batch size in the same process, in
alternating rounds (the machine is shared and noisy):

- ``fp32``: float32 NCHW, per-image MONAI views in ``--workers`` loader processes (the
  former default);
- ``bf16``: bfloat16 autocast, channels-last weights, the same per-image views;
- ``bf16-batch``: bf16 + channels-last with whole-batch Kornia views drawn on the training
  device, ``--batch-workers`` loader processes (the default now: ``pretrain.views.engine:
  auto`` picks it for 2D X-rays).

For each mode, the *pipeline* arm reads real images through the production path (ingested
NIfTI -> MONAI cache -> seeded random views -> device) and the *in-memory* arm feeds
pre-made random view batches that already sit on the device. Reported: images/s
of the pipeline per mode, the speed-up of each mode over ``fp32``, and pipeline /
in-memory (whether loading starves the model; goal >= 0.9).

    .venv/bin/python benchmarks/pretrain_throughput.py                 # defaults below
    .venv/bin/python benchmarks/pretrain_throughput.py --device cuda --workers 8 \\
        --image-size 224 --batch-size 256 --encoder resnet50

Real images: ``../shared/data/hannover_cxr/png`` (640 px chest radiographs) when present,
else the built-in demo data set. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from medssl.data.dataset import DiskCachedImages, load_stack
from medssl.data.manifest import MANIFEST_NAME
from medssl.ingest import ingest
from medssl.io.pseudonym import DEMO_SECRET
from medssl.train import distributed as dist
from medssl.train.loop import Position, StepOutput, train_one_epoch
from medssl.train.pretrain import PretrainConfig, RunOptions, build_model, make_loader

REPO = Path(__file__).resolve().parents[1]
HANNOVER = REPO.parent / "shared" / "data" / "hannover_cxr" / "png"


def real_images(n: int, scratch: Path) -> tuple[list[str], str]:
    """Ingest ``n`` real radiographs (or demo images) into ``scratch``; NIfTI paths and source."""
    export = scratch / "export"
    export.mkdir()
    if HANNOVER.is_dir():
        for png in sorted(HANNOVER.glob("*.png"))[:n]:
            shutil.copy(png, export / png.name)
        source = f"hannover_cxr ({n} PNG, 640 px)"
    else:
        from medssl.demo import write_demo_dataset

        write_demo_dataset(export, seed=0, n_patients=max(4, n // 3), image_size=256, n_ct=0)
        source = "demo radiographs (256 px)"
    out = scratch / "ingested"
    ingest([export], out, secret=DEMO_SECRET, workers=2)
    manifest = pd.read_csv(out / MANIFEST_NAME)
    rows = manifest[manifest["spatial_dims"] == 2].head(n)
    return [str(out / p) for p in rows["nifti"]], source


def timed_steps(
    model: torch.nn.Module,
    batches: Iterable[torch.Tensor],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    steps: int,
    warmup: int,
    bf16: bool,
    on_epoch: Any = None,
) -> float:
    """Steps per second over ``steps`` optimizer steps after ``warmup`` untimed ones."""
    marks: dict[str, float] = {}
    count = [0]

    def hook(pos: Position, out: StepOutput) -> bool:
        count[0] += 1
        if count[0] == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            marks["start"] = time.perf_counter()
        if count[0] == warmup + steps:
            float(out.loss)  # wait for the device
            marks["end"] = time.perf_counter()
            return True
        return False

    epoch = 0
    while "end" not in marks:
        if on_epoch is not None:
            on_epoch(epoch)
        train_one_epoch(
            model, batches, opt, sched, Position(), device=device, bf16=bf16, after_step=hook
        )
        epoch += 1
    return steps / (marks["end"] - marks["start"])


#: mode -> (precision, channels_last, views engine).
MODES: dict[str, tuple[str, bool, str]] = {
    "fp32": ("fp32", False, "sample"),
    "bf16": ("bf16", True, "sample"),
    "bf16-batch": ("bf16", True, "batch"),
}


class _Arm:
    """One numeric mode: its own model, optimizer, loader and fake batches."""

    def __init__(
        self,
        mode: str,
        args: argparse.Namespace,
        images: torch.Tensor | DiskCachedImages,
        info: dist.DistInfo,
        scratch: Path,
    ) -> None:
        precision, channels_last, engine = MODES[mode]
        self.workers = args.batch_workers if engine == "batch" else args.workers
        self.config = PretrainConfig(
            method=args.method,
            encoder=args.encoder,
            image_size=args.image_size,
            batch_size=args.batch_size,
            precision=precision,
            deterministic=False,
            small_input=args.encoder.startswith("vit") and args.image_size < 128,
            views_engine=engine,
        )
        options = RunOptions(
            checkpoint_dir=scratch / "ckpt", workers=self.workers, device=args.device
        )
        torch.manual_seed(0)
        self.model = build_model(self.config, info, channels_last=channels_last)
        n_views = int(self.model.n_views)  # type: ignore[arg-type]
        self.loader, self.sampler = make_loader(
            images, self.config, options, info, n_views, args.batch_size
        )
        shape = (args.batch_size, n_views, 1, args.image_size, args.image_size)
        g = torch.Generator().manual_seed(0)
        self.fake = [torch.rand(shape, generator=g).to(info.device) for _ in range(4)]
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: 1.0)
        self.bf16 = precision == "bf16"
        self.device = info.device
        self.rates: dict[str, list[float]] = {"pipeline": [], "in_memory": []}

    def round(self, args: argparse.Namespace) -> None:
        """One timed pipeline run and one timed in-memory run."""
        common = (self.opt, self.sched, self.device, args.steps, args.warmup, self.bf16)
        self.rates["pipeline"].append(
            timed_steps(self.model, self.loader, *common, on_epoch=self.sampler.set_epoch)
        )
        self.rates["in_memory"].append(timed_steps(self.model, self.fake, *common))

    def summary(self, base: float, batch: int) -> dict[str, Any]:
        """Medians, images/s, speed-up over ``base`` steps/s, pipeline / in-memory."""
        pipe, mem = (statistics.median(self.rates[k]) for k in ("pipeline", "in_memory"))
        return {
            "config": asdict(self.config),
            "steps_per_s": self.rates,
            "median_pipeline": pipe,
            "median_in_memory": mem,
            "pipeline_images_per_s": pipe * batch,
            "speedup": pipe / base,
            "ratio": pipe / mem,
            "workers": self.workers,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-images", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--batch-workers", type=int, default=0, help="loader processes of bf16-batch"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads of the trainer (0: torch's default)"
    )
    parser.add_argument("--cache", choices=("memory", "disk"), default="memory")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--modes",
        default="fp32,bf16,bf16-batch",
        help="comma-separated: fp32 (NCHW), bf16 (+channels-last), bf16-batch (+batch views)",
    )
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "pretrain_throughput.json"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    info = dist.setup(args.device)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"error: --modes: unknown {sorted(unknown)}; choose from {list(MODES)}")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        t0 = time.perf_counter()
        paths, source = real_images(args.n_images, scratch)
        t_ingest = time.perf_counter() - t0
        images: torch.Tensor | DiskCachedImages
        if args.cache == "memory":
            images = load_stack(paths, args.image_size, 2, "xray", workers=2)
        else:
            images = DiskCachedImages(paths, args.image_size, 2, "xray", scratch / "cache")
            images.warm(2)
        arms = {m: _Arm(m, args, images, info, scratch) for m in modes}
        for _ in range(args.rounds):
            for arm in arms.values():
                arm.round(args)
    base = statistics.median(arms[modes[0]].rates["pipeline"])
    rows = {m: a.summary(base, args.batch_size) for m, a in arms.items()}
    record = {
        "source": source,
        "n_images": len(paths),
        "device": str(info.device),
        "device_name": torch.cuda.get_device_name(info.device)
        if info.device.type == "cuda"
        else "cpu",
        "threads": args.threads,
        "workers": args.workers,
        "cache": args.cache,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "method": args.method,
        "encoder": args.encoder,
        "seconds_ingest": t_ingest,
        "modes": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(
        "| mode | device | method / encoder | size | batch | workers | pipeline images/s "
        f"| speed-up vs {modes[0]} | pipeline / in-memory |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, row in rows.items():
        print(
            f"| {mode} | {record['device_name']} ({args.threads} thr) | {args.method} / "
            f"{args.encoder} | {args.image_size} | {args.batch_size} | {row['workers']} "
            f"| {row['pipeline_images_per_s']:.1f} | {row['speedup']:.2f} | {row['ratio']:.2f} |"
        )
    print(f"\nsource: {source}; ingest {t_ingest:.1f} s; JSON: {args.json}")


if __name__ == "__main__":
    main()
