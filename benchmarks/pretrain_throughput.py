"""Pretraining throughput: the real data pipeline beside in-memory random tensors.

Both arms train the same model with the same batch size in the same process, in
alternating rounds (the machine is shared and noisy): the *pipeline* arm reads real images
through the production path (ingested NIfTI -> MONAI cache -> seeded random views in
DataLoader workers -> device), the *in-memory* arm feeds pre-made random view batches that
already sit on the device. The ratio pipeline / in-memory says whether loading starves the
model (goal >= 0.9).

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
from medssl.io.deid import DEMO_SECRET
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
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the trainer")
    parser.add_argument("--cache", choices=("memory", "disk"), default="memory")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "pretrain_throughput.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = dist.setup(args.device)
    config = PretrainConfig(
        method=args.method,
        encoder=args.encoder,
        image_size=args.image_size,
        batch_size=args.batch_size,
        precision=args.precision,
        deterministic=False,
        small_input=args.encoder.startswith("vit") and args.image_size < 128,
    )
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        t0 = time.perf_counter()
        paths, source = real_images(args.n_images, scratch)
        t_ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        images: torch.Tensor | DiskCachedImages
        if args.cache == "memory":
            images = load_stack(paths, args.image_size, 2, "xray", workers=2)
        else:
            images = DiskCachedImages(paths, args.image_size, 2, "xray", scratch / "cache")
            images.warm(2)
        t_cache = time.perf_counter() - t0
        options = RunOptions(
            checkpoint_dir=scratch / "ckpt", workers=args.workers, device=args.device
        )
        model = build_model(config, info)
        n_views = int(model.n_views)  # type: ignore[arg-type]
        loader, sampler = make_loader(images, config, options, info, n_views, args.batch_size)
        shape = (args.batch_size, n_views, 1, args.image_size, args.image_size)
        g = torch.Generator().manual_seed(0)
        fake = [torch.rand(shape, generator=g).to(info.device) for _ in range(4)]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        bf16 = args.precision == "bf16"
        rates: dict[str, list[float]] = {"pipeline": [], "in_memory": []}
        for _ in range(args.rounds):
            rates["pipeline"].append(
                timed_steps(
                    model,
                    loader,
                    opt,
                    sched,
                    info.device,
                    args.steps,
                    args.warmup,
                    bf16,
                    on_epoch=sampler.set_epoch,
                )
            )
            rates["in_memory"].append(
                timed_steps(model, fake, opt, sched, info.device, args.steps, args.warmup, bf16)
            )
    pipe, mem = (statistics.median(rates[k]) for k in ("pipeline", "in_memory"))
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
        "config": asdict(config),
        "seconds_ingest": t_ingest,
        "seconds_cache": t_cache,
        "steps_per_s": rates,
        "median_pipeline": pipe,
        "median_in_memory": mem,
        "ratio": pipe / mem,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(
        "| data | device | method / encoder | size | batch | workers | pipeline steps/s "
        "| in-memory steps/s | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {source} | {record['device_name']} ({args.threads} thr) | {args.method} / "
        f"{args.encoder} | {args.image_size} | {args.batch_size} | {args.workers} | {pipe:.2f} "
        f"| {mem:.2f} | {pipe / mem:.2f} |"
    )
    print(f"\ningest {t_ingest:.1f} s, cache fill {t_cache:.1f} s; JSON: {args.json}")


if __name__ == "__main__":
    main()
