"""Self-supervised pretraining engine: SimCLR, VICReg, BYOL or MAE, 2D or 3D, resumable, DDP.

Model / one-epoch loop / entry point are split by role (as in MAE's reference code):
:mod:`medssl.ssl` holds the objectives, :mod:`medssl.train.loop` one epoch,
:mod:`medssl.train.checkpoint` the resumable state, :mod:`medssl.train.distributed` the
process group; :func:`pretrain` wires them. Reproducible: MONAI ``set_determinism``,
deterministic algorithms, views seeded per ``(seed, epoch, image)``; on CPU two runs with
the same configuration, interrupted or not, end with bit-identical weights.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import set_determinism
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from medssl.data.dataset import ViewDataset
from medssl.data.transforms import mae_view, ssl_views
from medssl.models.encoders import VIT_SPECS, build_encoder, vit_patch_size
from medssl.ssl.byol import BYOL
from medssl.ssl.heads import Gather
from medssl.ssl.knn import knn_metrics, knn_scores
from medssl.ssl.mae import MAE
from medssl.ssl.simclr import SimCLR
from medssl.ssl.vicreg import VICReg
from medssl.train import checkpoint as ckpt
from medssl.train import distributed as dist
from medssl.train.loop import Position, StepOutput, embedding_std, train_one_epoch

#: ``(step, {metric: value})``, called on rank 0 for every logged row (also when a resumed
#: run replays the history stored in its checkpoint).
MetricsCallback = Callable[[int, dict[str, float]], None]


class Preempted(RuntimeError):
    """SIGTERM received: a checkpoint was written and the run stopped early."""


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides the trained weights (hashed into the checkpoint fingerprint).

    Attributes:
        method: ``simclr``, ``vicreg``, ``byol`` or ``mae`` (MAE needs a ``vit_*`` encoder).
        encoder: key of :data:`medssl.models.encoders.ENCODERS`.
        spatial_dims: 2 or 3.
        image_size: edge of the cached images and of the views.
        small_input: small-image stem (CNNs) or 8-voxel patches (ViTs).
        seed: seed of weights, batch order, views and masks.
        epochs: passes over the training images.
        batch_size: global batch (all processes), capped at the number of images.
        lr: peak AdamW learning rate (linear warm-up, then cosine to 0).
        weight_decay: AdamW weight decay.
        warmup_epochs: epochs of linear warm-up.
        precision: ``fp32`` or ``bf16`` (autocast).
        deterministic: deterministic algorithms; off lets cuDNN pick the fastest kernels.
        temperature: SimCLR NT-Xent temperature.
        proj_dim: SimCLR projection / VICReg expander width.
        vicreg_weights: VICReg (invariance, variance, covariance) weights.
        byol_momentum: BYOL base teacher momentum (cosine schedule to 1).
        init_sha256: SHA-256 of the weights the encoder starts from (``model.init``), or
            empty for a random start (the weights themselves come with :func:`pretrain`).
        mask_ratio: MAE fraction of masked patches.
        decoder_dim: MAE decoder width.
        decoder_depth: MAE decoder blocks.
        norm_pix: MAE per-patch normalised targets.
        min_crop: smallest crop edge of a view, as a fraction of the image.
        flip: allow flips along the first axis.
        noise_std: Gaussian noise of SimCLR/VICReg views.
        windows: random intensity windows in cached units (CT; empty for none).
    """

    method: str = "simclr"
    encoder: str = "resnet18"
    spatial_dims: int = 2
    image_size: int = 64
    small_input: bool = False
    seed: int = 0
    epochs: int = 25
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    precision: str = "fp32"
    deterministic: bool = True
    temperature: float = 0.2
    proj_dim: int = 64
    vicreg_weights: tuple[float, float, float] = (25.0, 25.0, 1.0)
    byol_momentum: float = 0.99
    init_sha256: str = ""
    mask_ratio: float = 0.75
    decoder_dim: int = 192
    decoder_depth: int = 2
    norm_pix: bool = True
    min_crop: float = 0.5
    flip: bool = False
    noise_std: float = 0.03
    windows: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"pretrain.method must be one of {sorted(METHODS)}, got {self.method!r}"
            )
        if self.method == "mae" and self.encoder not in VIT_SPECS:
            raise ValueError(
                f"pretrain.method 'mae' needs model.encoder in {sorted(VIT_SPECS)}, "
                f"got {self.encoder!r}"
            )
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"pretrain.precision must be fp32 or bf16, got {self.precision!r}")
        if not 0 < self.min_crop <= 1:
            raise ValueError(f"pretrain.views.min_crop must be in (0, 1], got {self.min_crop}")


@dataclass(frozen=True)
class RunOptions:
    """How a run is executed; none of these changes the trained weights.

    Attributes:
        checkpoint_dir: folder of ``last.pt`` (resume) and ``final.pt``.
        checkpoint_every: optimizer steps between checkpoints.
        log_every: optimizer steps between logged rows (loss averaged over them).
        knn_every: epochs between kNN probes (0: never; the last epoch always when > 0).
        knn_k: neighbours of the kNN probe.
        workers: DataLoader worker processes per rank (0: in the main process).
        channels_last: 2D models in channels-last memory format (faster bf16 kernels on
            CPUs with AVX-512 BF16 and on GPUs; the same arithmetic).
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    checkpoint_dir: Path
    checkpoint_every: int = 50
    log_every: int = 1
    knn_every: int = 5
    knn_k: int = 20
    workers: int = 0
    device: str = "auto"
    channels_last: bool = False


@dataclass(frozen=True)
class ProbeSet:
    """Labelled images for the kNN probe: a training-split bank and validation queries.

    Attributes:
        bank: ``(N, 1, *spatial)`` preprocessed images.
        bank_labels: ``(N,)`` in {0, 1}.
        queries: ``(Q, 1, *spatial)``.
        query_labels: ``(Q,)`` in {0, 1}.
    """

    bank: torch.Tensor
    bank_labels: torch.Tensor
    queries: torch.Tensor
    query_labels: torch.Tensor


StateDict = dict[str, torch.Tensor]


def _encoder(c: PretrainConfig, init: StateDict | None) -> tuple[nn.Module, int]:
    """The configured encoder, random or starting from ``init`` (checked by the caller)."""
    encoder, dim = build_encoder(c.encoder, c.spatial_dims, 1, c.small_input)
    if init is not None:
        encoder.load_state_dict(init)
    return encoder, dim


def _simclr(c: PretrainConfig, gather: Gather, init: StateDict | None) -> nn.Module:
    encoder, dim = _encoder(c, init)
    return SimCLR(encoder, dim, c.proj_dim, c.temperature, gather=gather)


def _vicreg(c: PretrainConfig, gather: Gather, init: StateDict | None) -> nn.Module:
    encoder, dim = _encoder(c, init)
    return VICReg(encoder, dim, c.proj_dim, *c.vicreg_weights, gather=gather)


def _byol(c: PretrainConfig, gather: Gather, init: StateDict | None) -> nn.Module:
    encoder, dim = _encoder(c, init)
    return BYOL(encoder, dim, c.proj_dim, momentum=c.byol_momentum, gather=gather)


def _mae(c: PretrainConfig, gather: Gather, init: StateDict | None) -> nn.Module:
    if init is not None:
        raise ValueError("model.init: continued pretraining is not supported for method mae")
    patch = vit_patch_size(c.small_input)
    spec = VIT_SPECS[c.encoder]
    return MAE(
        spec,
        c.spatial_dims,
        c.image_size,
        patch,
        c.mask_ratio,
        c.decoder_dim,
        c.decoder_depth,
        c.norm_pix,
    )


#: method name -> factory(config, gather, init) -> an :class:`medssl.ssl.method.SSLMethod`.
METHODS: dict[str, Callable[[PretrainConfig, Gather, StateDict | None], nn.Module]] = {
    "simclr": _simclr,
    "vicreg": _vicreg,
    "byol": _byol,
    "mae": _mae,
}


def build_views(c: PretrainConfig) -> Compose:
    """The random view transform of the configured method."""
    if c.method == "mae":
        return mae_view(
            c.image_size, c.spatial_dims, min_crop=c.min_crop, flip=c.flip, windows=c.windows
        )
    return ssl_views(
        c.image_size,
        c.spatial_dims,
        min_crop=c.min_crop,
        flip=c.flip,
        noise_std=c.noise_std,
        windows=c.windows,
    )


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def determinism_flags(c: PretrainConfig, info: dist.DistInfo) -> dict[str, Any]:
    """The settings that decide whether a rerun is bit-identical, for the run record."""
    return {
        "seed": c.seed,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "torch_num_threads": torch.get_num_threads(),
        "world_size": info.world_size,
        "device": str(info.device),
        "precision": c.precision,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed NumPy and ``random`` from the worker's torch seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)  # noqa: NPY002 (the legacy global RNG that libraries use)
    random.seed(s)


def _set_determinism(c: PretrainConfig, device: torch.device) -> None:
    """Seed everything; on GPU, also demand deterministic kernels (cuDNN, cuBLAS, atomics).

    CPU kernels are deterministic at a fixed thread count already (the tests check that
    reruns are bit-identical); ``torch.use_deterministic_algorithms`` would only swap in
    slower ones there (not benchmarked by a script here).
    """
    set_determinism(seed=c.seed)  # torch, numpy, random; cuDNN deterministic, no benchmark
    if device.type != "cuda":
        return
    if c.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


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


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


@torch.no_grad()
def _features(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    device: torch.device,
    bf16: bool,
    batch: int = 64,
) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(embed(images[i : i + batch].to(device)).float().cpu())
    return torch.cat(out)


def run_probe(
    model: nn.Module, probe: ProbeSet, k: int, device: torch.device, bf16: bool
) -> dict[str, float]:
    """kNN AUROC and accuracy of the current encoder on the validation queries."""
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    bank = _features(net.embed, probe.bank, device, bf16)  # type: ignore[arg-type]
    queries = _features(net.embed, probe.queries, device, bf16)  # type: ignore[arg-type]
    net.train(was_training)
    scores = knn_scores(bank, probe.bank_labels, queries, k)
    return {f"val/{name}": v for name, v in knn_metrics(scores, probe.query_labels).items()}


class _Run:
    """State and side effects of one pretraining run (one per process)."""

    def __init__(
        self,
        config: PretrainConfig,
        options: RunOptions,
        info: dist.DistInfo,
        fingerprint: str,
        on_metrics: MetricsCallback | None,
    ) -> None:
        self.c, self.o, self.info, self.fingerprint = config, options, info, fingerprint
        self.on_metrics = on_metrics
        self.history: list[dict[str, float]] = []
        self.loss_sum = torch.zeros((), device=info.device)
        self.loss_count = 0
        self.bar: tqdm[Any] | None = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Record a row (rank 0): history for the checkpoint, callback for dvclive."""
        if not self.info.is_main:
            return
        self.history.append({"step": step, **metrics})
        if self.on_metrics is not None:
            self.on_metrics(step, metrics)

    def replay(self, history: Sequence[Mapping[str, float]]) -> None:
        """Send the rows of a resumed checkpoint to the callback again."""
        for row in history:
            metrics = {k: float(v) for k, v in row.items() if k != "step"}
            self.log(int(row["step"]), metrics)

    def step_metrics(self, out: StepOutput, step: int) -> None:
        """Accumulate the loss; every ``log_every`` steps, log loss, lr and embedding std."""
        self.loss_sum += out.loss.float()
        self.loss_count += 1
        if step % self.o.log_every != 0:
            return
        loss = float(self.loss_sum) / self.loss_count
        self.loss_sum.zero_()
        self.loss_count = 0
        if not math.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss} at step {step} (pretrain.lr?)")
        metrics = {
            "train/loss": loss,
            "train/lr": out.lr,
            "train/embedding_std": embedding_std(out.features),
        }
        self.log(step, metrics)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def save(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        sched: Any,
        pos: Position,
        steps_per_epoch: int,
    ) -> None:
        """Write ``last.pt`` (collective: gathers every rank's RNG state; rank 0 writes)."""
        rng = dist.gather_objects(ckpt.capture_rng(self.info.device))
        if not self.info.is_main:
            return
        epoch, step_in_epoch = pos.epoch, pos.step_in_epoch
        if step_in_epoch == steps_per_epoch:
            epoch, step_in_epoch = epoch + 1, 0
        state = {
            "format": ckpt.FORMAT,
            "fingerprint": self.fingerprint,
            "config": _config_record(self.c, self.info.world_size),
            "model": _unwrap(model).state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": pos.global_step,
            "rng": rng,
            "history": self.history,
            "world_size": self.info.world_size,
        }
        ckpt.save_atomic(state, self.o.checkpoint_dir / ckpt.LAST)


def _config_record(c: PretrainConfig, world_size: int) -> dict[str, Any]:
    record = dataclasses.asdict(c)
    record["world_size"] = world_size
    return record


def _batch_sizes(c: PretrainConfig, n: int, world: int) -> tuple[int, int]:
    """``(per-rank batch, steps per epoch)`` for ``n`` images on ``world`` ranks."""
    per_rank = min(c.batch_size, n) // world
    if per_rank < 1 or (c.method != "mae" and per_rank * world < 2):
        raise ValueError(
            f"pretrain.batch_size {c.batch_size} with {n} images on {world} processes leaves "
            "no batch; use more images or fewer processes"
        )
    return per_rank, (n // world) // per_rank


def make_loader(
    images: torch.Tensor | TorchDataset,
    c: PretrainConfig,
    o: RunOptions,
    info: dist.DistInfo,
    n_views: int,
    per_rank: int,
) -> tuple[DataLoader[torch.Tensor], dist.EpochSampler]:
    """Views of the cached images, ``(per_rank, n_views, 1, *spatial)`` batches, in workers.

    Args:
        images: cached images (see :func:`pretrain`).
        c: configuration (views, seed).
        o: options (workers).
        info: rank and device.
        n_views: views per image of the method.
        per_rank: batch size of this rank.

    Returns:
        The loader and its sampler (call ``set_epoch`` / ``set_start`` before each epoch).
    """
    dataset = ViewDataset(images, build_views(c), n_views, c.seed)
    sampler = dist.EpochSampler(dataset, info.world_size, info.rank, c.seed)
    loader = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=o.workers,
        drop_last=True,
        pin_memory=info.device.type == "cuda",
        persistent_workers=o.workers > 0,
        prefetch_factor=4 if o.workers > 0 else None,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(c.seed),
    )
    return loader, sampler


def build_model(
    c: PretrainConfig,
    info: dist.DistInfo,
    init: StateDict | None = None,
    channels_last: bool = False,
) -> nn.Module:
    """The method's module on this rank's device; DDP-wrapped (SyncBatchNorm on GPU) if needed.

    Args:
        c: configuration.
        info: rank and device.
        init: encoder weights to start from (continued pretraining), or None.
        channels_last: channels-last memory format (2D: NHWC, 3D: NDHWC).
    """
    gather: Gather = dist.gather_with_grad
    model = METHODS[c.method](c, gather, init).to(info.device)
    if channels_last:
        fmt = torch.channels_last if c.spatial_dims == 2 else torch.channels_last_3d
        model = model.to(memory_format=fmt)  # type: ignore[call-overload]  # stubs lack it
    if info.distributed:
        if info.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # global-batch BN
        model = DistributedDataParallel(model)
    return model


def _resume_state(directory: Path, fingerprint: str, info: dist.DistInfo) -> dict[str, Any] | None:
    """Rank 0 reads ``last.pt`` and broadcasts it, so only rank 0 needs the folder."""
    found = [ckpt.find_resumable(directory, fingerprint) if info.is_main else None]
    if info.distributed:
        torch.distributed.broadcast_object_list(found, src=0)
    return found[0]


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


def pretrain(
    images: torch.Tensor | TorchDataset,
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
    n = len(images)  # type: ignore[arg-type]
    if n != len(image_ids) or n < 2:
        raise ValueError(f"need >= 2 images with one id each, got {n} images, {len(image_ids)} ids")
    previous = torch.are_deterministic_algorithms_enabled()
    _set_determinism(config, info.device)
    try:
        return _train(images, image_ids, config, options, info, probe, on_metrics, init)
    finally:
        set_determinism(seed=None)
        torch.use_deterministic_algorithms(previous)


def _train(
    images: torch.Tensor | TorchDataset,
    image_ids: Sequence[str],
    c: PretrainConfig,
    o: RunOptions,
    info: dist.DistInfo,
    probe: ProbeSet | None,
    on_metrics: MetricsCallback | None,
    init: StateDict | None,
) -> PretrainResult:
    per_rank, steps_per_epoch = _batch_sizes(c, len(image_ids), info.world_size)
    fingerprint = ckpt.fingerprint(_config_record(c, info.world_size), image_ids)
    model = build_model(c, info, init, o.channels_last)
    torch.manual_seed(c.seed + 1_000_003 * (info.rank + 1))  # per-rank masks (MAE)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    total = c.epochs * steps_per_epoch
    warmup = c.warmup_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total))
    n_views = int(_unwrap(model).n_views)  # type: ignore[arg-type]
    loader, sampler = make_loader(images, c, o, info, n_views, per_rank)
    run = _Run(c, o, info, fingerprint, on_metrics)
    pos = Position()
    resumed: int | None = None
    state = _resume_state(o.checkpoint_dir, fingerprint, info)
    if state is not None:
        _unwrap(model).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        pos = Position(state["epoch"], state["step_in_epoch"], state["global_step"])
        resumed = pos.global_step
        ckpt.restore_rng(state["rng"][info.rank], info.device)
        run.replay(state["history"])
        if info.is_main:
            print(f"resuming from {o.checkpoint_dir / ckpt.LAST} at step {resumed}")
    bf16 = c.precision == "bf16"
    stop = [False]
    step_end = getattr(_unwrap(model), "on_step_end", None)  # BYOL's teacher update

    def after_update(step: int) -> None:
        if step_end is not None:
            step_end(step, total)

    def after_step(p: Position, out: StepOutput) -> bool:
        run.step_metrics(out, p.global_step)
        if run.bar is not None:
            run.bar.update(1)
        if dist.any_rank(stop[0], info.device):
            run.save(model, opt, sched, p, steps_per_epoch)
            return True
        if p.global_step % o.checkpoint_every == 0:
            run.save(model, opt, sched, p, steps_per_epoch)
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
        run.bar = bar
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
                run.log(pos.global_step, run_probe(model, probe, o.knn_k, info.device, bf16))
    run.save(model, opt, sched, pos, steps_per_epoch)
    if info.is_main:
        (o.checkpoint_dir / ckpt.LAST).replace(o.checkpoint_dir / ckpt.FINAL)
    dist.barrier()
    encoder = _unwrap(model).encoder_state_dict()  # type: ignore[operator]
    return PretrainResult(
        encoder={k: v.detach().cpu().clone() for k, v in encoder.items()},
        determinism=determinism_flags(c, info),
        steps=pos.global_step,
        resumed_from_step=resumed,
    )
