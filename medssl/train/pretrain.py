"""Self-supervised pretraining engine: SimCLR, VICReg, BYOL or MAE, 2D or 3D, resumable, DDP.

Model / one-epoch loop / entry point are split by role (as in MAE's reference code):
:mod:`medssl.ssl` holds the objectives (each an :class:`medssl.ssl.method.SSLMethod`),
:mod:`medssl.train.pretrain_config` what to train, :mod:`medssl.train.methods` the method a
configuration selects, :mod:`medssl.train.pretrain_data` the views and loader,
:mod:`medssl.train.loop` one epoch, :mod:`medssl.train.monitor` the logged rows and kNN
probe, :mod:`medssl.train.checkpoint` the resumable state, :mod:`medssl.train.determinism`
the seeding and :mod:`medssl.train.distributed` the process group; :func:`pretrain` wires
them. Reproducible: MONAI ``set_determinism``, deterministic algorithms, views seeded per
``(seed, epoch, image)``; on CPU two runs with the same configuration, interrupted or not,
end with bit-identical weights.
"""

from __future__ import annotations

import math
import signal
import sys
import types
from collections.abc import Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from medssl.ssl.method import SSLMethod
from medssl.train import checkpoint as ckpt
from medssl.train import distributed as dist
from medssl.train.determinism import determinism_flags, seed_worker, seeded
from medssl.train.loop import Position, StepOutput, train_one_epoch
from medssl.train.methods import METHODS, StateDict, build_method, build_model
from medssl.train.monitor import MetricsCallback, ProbeSet, RunLog, run_probe
from medssl.train.pretrain_config import PretrainConfig, RunOptions, config_record
from medssl.train.pretrain_data import Images, batch_sizes, build_views, make_loader

__all__ = [
    "METHODS",
    "Images",
    "MetricsCallback",
    "Preempted",
    "PretrainConfig",
    "PretrainResult",
    "ProbeSet",
    "RunOptions",
    "SSLMethod",
    "StateDict",
    "build_model",
    "build_views",
    "determinism_flags",
    "make_loader",
    "pretrain",
    "run_probe",
    "seed_worker",
    "warmup_cosine",
]


class Preempted(RuntimeError):
    """SIGTERM received: a checkpoint was written and the run stopped early."""


@dataclass(frozen=True)
class PretrainResult:
    """What a finished run returns.

    Attributes:
        encoder: the encoder's ``state_dict`` on CPU.
        determinism: the flags in force (see :func:`determinism_flags`).
        steps: optimizer steps of the whole run.
        resumed_from_step: global step of the checkpoint this process resumed from, or None.
    """

    encoder: dict[str, torch.Tensor]
    determinism: dict[str, Any]
    steps: int
    resumed_from_step: int | None


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@contextmanager
def _sigterm_flag(flag: list[bool]) -> Iterator[None]:
    """Catch SIGTERM while training: ``flag[0]`` turns true; the loop checkpoints and stops."""

    def handler(signum: int, frame: types.FrameType | None) -> None:
        flag[0] = True

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def pretrain(
    images: Images,
    image_ids: Sequence[str],
    config: PretrainConfig,
    options: RunOptions,
    info: dist.DistInfo,
    probe: ProbeSet | None = None,
    on_metrics: MetricsCallback | None = None,
    init: StateDict | None = None,
) -> PretrainResult:
    """Train an encoder self-supervised; resume from ``options.checkpoint_dir`` if possible.

    Args:
        images: ``(N, 1, *spatial)`` cached images, or a dataset of ``(1, *spatial)`` ones.
        image_ids: N identifiers (hashed into the checkpoint fingerprint).
        config: what to train.
        options: how to run it.
        info: this process's rank and device (:func:`medssl.train.distributed.setup`).
        probe: labelled images for the kNN probe (rank 0), or None.
        on_metrics: rank-0 callback for every logged row.
        init: encoder weights to continue from (``model.init``; its hash belongs in
            ``config.init_sha256``), or None for a random start.

    Returns:
        The encoder weights (every rank) and the run record.

    Raises:
        Preempted: after SIGTERM, once ``last.pt`` is written.
    """
    if not isinstance(images, Sized):
        raise TypeError(f"images must have a length, got {type(images).__name__}")
    n = len(images)
    if n != len(image_ids) or n < 2:
        raise ValueError(f"need >= 2 images with one id each, got {n} images, {len(image_ids)} ids")
    with seeded(config, info.device):
        return _train(images, image_ids, config, options, info, probe, on_metrics, init)


def _train(
    images: Images,
    image_ids: Sequence[str],
    c: PretrainConfig,
    o: RunOptions,
    info: dist.DistInfo,
    probe: ProbeSet | None,
    on_metrics: MetricsCallback | None,
    init: StateDict | None,
) -> PretrainResult:
    per_rank, steps_per_epoch = batch_sizes(c, len(image_ids), info.world_size)
    record = config_record(c, info.world_size)
    fingerprint = ckpt.fingerprint(record, image_ids)
    method, model = build_method(c, info, init, o.channels_last)
    torch.manual_seed(c.seed + 1_000_003 * (info.rank + 1))  # per-rank masks (MAE)
    opt = torch.optim.AdamW(method.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    total = c.epochs * steps_per_epoch
    warmup = c.warmup_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total))
    loader, sampler = make_loader(images, c, o, info, method.n_views, per_rank)
    log = RunLog(info, o.log_every, on_metrics)
    pos = Position()
    resumed: int | None = None
    state = dist.broadcast_from_main(
        ckpt.find_resumable(o.checkpoint_dir, fingerprint) if info.is_main else None
    )  # only rank 0 needs the checkpoint folder
    if state is not None:
        pos = ckpt.restore_training_state(state, method, opt, sched, info.rank, info.device)
        resumed = pos.global_step
        log.replay(state["history"])
        if info.is_main:
            print(f"resuming from {o.checkpoint_dir / ckpt.LAST} at step {resumed}")
    bf16 = c.precision == "bf16"
    stop = [False]

    def save(p: Position) -> None:
        """Write ``last.pt`` (collective: gathers every rank's RNG state; rank 0 writes)."""
        rng = dist.gather_objects(ckpt.capture_rng(info.device))
        if not info.is_main:
            return
        state = ckpt.training_state(
            fingerprint=fingerprint,
            config=record,
            method=method,
            optimizer=opt,
            scheduler=sched,
            position=p,
            steps_per_epoch=steps_per_epoch,
            rng=rng,
            history=log.history,
            world_size=info.world_size,
        )
        ckpt.save_atomic(state, o.checkpoint_dir / ckpt.LAST)

    def after_update(step: int) -> None:
        method.on_step_end(step, total)  # BYOL's teacher update

    def after_step(p: Position, out: StepOutput) -> bool:
        log.step_metrics(out, p.global_step)
        if log.bar is not None:
            log.bar.update(1)
        if dist.any_rank(stop[0], info.device):
            save(p)
            return True
        if p.global_step % o.checkpoint_every == 0:
            save(p)
        return False

    bar_file = sys.stderr if sys.stderr.isatty() else sys.stdout
    with (
        _sigterm_flag(stop),
        tqdm(
            total=total,
            initial=pos.global_step,
            unit="step",
            desc=f"pretrain {c.method}",
            disable=not info.is_main,
            file=bar_file,
            mininterval=1 if bar_file.isatty() else 30,
        ) as bar,
    ):
        log.bar = bar
        while pos.epoch < c.epochs:
            sampler.set_epoch(pos.epoch)
            sampler.set_start(pos.step_in_epoch * per_rank)
            stopped = train_one_epoch(
                model,
                loader,
                opt,
                sched,
                pos,
                device=info.device,
                bf16=bf16,
                after_step=after_step,
                after_update=after_update,
            )
            if stopped:
                raise Preempted(f"stopped by SIGTERM at step {pos.global_step}; checkpoint saved")
            pos.epoch, pos.step_in_epoch = pos.epoch + 1, 0
            due = o.knn_every > 0 and (pos.epoch % o.knn_every == 0 or pos.epoch == c.epochs)
            if probe is not None and due and info.is_main:
                log.log(pos.global_step, run_probe(method, probe, o.knn_k, info.device, bf16))
    save(pos)
    if info.is_main:
        (o.checkpoint_dir / ckpt.LAST).replace(o.checkpoint_dir / ckpt.FINAL)
    dist.barrier()
    encoder = method.encoder_state_dict()
    return PretrainResult(
        encoder={k: v.detach().cpu().clone() for k, v in encoder.items()},
        determinism=determinism_flags(c, info),
        steps=pos.global_step,
        resumed_from_step=resumed,
    )
