"""The pretrain stage's work: from the ``model`` and ``pretrain`` params to an encoder on disk.

Label-free: it reads the manifest and the evaluation reserve only, so one encoder serves
every label set. With ``model.init`` the encoder starts from weights on disk (continued
pretraining; ``pretrain.epochs: 0`` uses them as they are); their SHA-256 goes into
``encoder.json`` and the resume fingerprint. :func:`prepare_pretrain` checks everything
before a process group or a data loader exists; :func:`run_pretrain` trains and, on
rank 0, writes ``encoder.pt``, ``encoder.json`` and the dvclive curves.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from dvclive.live import Live

from medssl.data.batch_views import resolve_engine
from medssl.data.dataset import DiskCachedImages, load_stack
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.data.reserve import ReserveError, pool_images, read_reserve
from medssl.data.transforms import CT_WINDOWS_HU, windows_in_unit_range
from medssl.models.init import load_init
from medssl.params import ModelParams, ParamsError, PretrainParams, tracked_path
from medssl.train import distributed as dist
from medssl.train.pretrain import pretrain
from medssl.train.pretrain_config import PretrainConfig, RunOptions


@dataclass(frozen=True)
class PretrainPaths:
    """Where the stage reads and writes.

    Attributes:
        ingested: the ingest stage's folder.
        reserve: ``reserve.csv`` (pretraining never sees a reserved patient).
        weights: the tracked folder ``model.init`` must lie in.
        out: the encoder folder (``encoder.pt``, ``encoder.json``).
        checkpoints: ``last.pt`` (resume) and ``final.pt``; persists across runs.
        cache_dir: decoded images for ``pretrain.cache: disk``.
        live: dvclive folder (curves and summary).
    """

    ingested: Path
    reserve: Path
    weights: Path
    out: Path
    checkpoints: Path
    cache_dir: Path
    live: Path


@dataclass(frozen=True)
class PretrainJob:
    """A checked run: what to train, how, on what, from which weights."""

    paths: PretrainPaths
    config: PretrainConfig
    options: RunOptions
    intensity: str
    cache: str
    max_images: int | None
    init: dict[str, torch.Tensor] | None


def pretrain_config(
    model: ModelParams, params: PretrainParams, init_sha256: str = ""
) -> PretrainConfig:
    """The ``model`` and ``pretrain`` sections as a :class:`PretrainConfig`.

    Raises:
        ParamsError: ``pretrain.epochs`` 0 without ``model.init``; unknown HU windows, or
            windows without a CT intensity.
        ValueError: other inconsistent values (see :class:`PretrainConfig`).
    """
    if params.epochs == 0 and not init_sha256:
        raise ParamsError("params.yaml: pretrain.epochs: must be > 0 (0 only with model.init)")
    names = params.views.hu_windows
    unknown = [n for n in names if n not in CT_WINDOWS_HU]
    if unknown:
        raise ParamsError(
            f"params.yaml: pretrain.views.hu_windows: unknown {unknown}; "
            f"choose from {sorted(CT_WINDOWS_HU)}"
        )
    if names and not model.intensity.startswith("ct"):
        raise ParamsError("params.yaml: pretrain.views.hu_windows: needs a CT model.intensity")
    windows = windows_in_unit_range(model.intensity, [CT_WINDOWS_HU[n] for n in names])
    return PretrainConfig(
        method=params.method,
        encoder=model.encoder,
        spatial_dims=model.spatial_dims,
        image_size=model.image_size,
        small_input=model.small_input,
        seed=params.seed,
        epochs=params.epochs,
        batch_size=params.batch_size,
        lr=params.lr,
        weight_decay=params.weight_decay,
        warmup_epochs=params.warmup_epochs,
        precision=params.precision,
        deterministic=params.deterministic,
        temperature=params.temperature,
        proj_dim=params.proj_dim,
        vicreg_weights=(
            params.vicreg.sim_weight,
            params.vicreg.var_weight,
            params.vicreg.cov_weight,
        ),
        byol_momentum=params.byol.momentum,
        init_sha256=init_sha256,
        mask_ratio=params.mae.mask_ratio,
        decoder_dim=params.mae.decoder_dim,
        decoder_depth=params.mae.decoder_depth,
        norm_pix=params.mae.norm_pix,
        min_crop=params.views.min_crop,
        flip=params.views.flip,
        noise_std=params.views.noise_std,
        windows=tuple(windows),
        views_engine=resolve_engine(params.views.engine, model.spatial_dims, windows),
    )


def run_options(params: PretrainParams, checkpoints: Path) -> RunOptions:
    """The execution settings of the ``pretrain`` section (they do not change the weights)."""
    return RunOptions(
        checkpoint_dir=checkpoints,
        checkpoint_every=params.checkpoint_every,
        log_every=params.log_every,
        knn_every=0,  # the kNN probe needs labels; the stage is label-free
        workers=params.workers,
        device=params.device,
        channels_last=params.channels_last,
    )


def prepare_pretrain(
    paths: PretrainPaths, model: ModelParams, params: PretrainParams
) -> PretrainJob:
    """Check the configuration and load ``model.init``, before anything starts.

    Raises:
        ParamsError: see :func:`pretrain_config`; ``model.init`` outside ``paths.weights``.
        medssl.models.init.InitError: ``model.init`` weights that do not fit the encoder.
        ValueError: other inconsistent values.
    """
    init, init_sha256 = None, ""
    init_path = tracked_path(model.init, "model.init", paths.weights)
    if init_path is not None:
        init, init_sha256 = load_init(
            init_path, model.encoder, model.spatial_dims, model.small_input
        )
    return PretrainJob(
        paths,
        pretrain_config(model, params, init_sha256),
        run_options(params, paths.checkpoints),
        model.intensity,
        params.cache,
        params.max_images,
        init,
    )


def cached_images(
    paths: list[str], job: PretrainJob, info: dist.DistInfo
) -> torch.Tensor | DiskCachedImages:
    """Decoded, preprocessed training images: in memory, or on disk shared by local ranks."""
    c, workers = job.config, job.options.workers
    if job.cache == "memory":
        return load_stack(paths, c.image_size, c.spatial_dims, job.intensity, workers)
    images = DiskCachedImages(
        paths, c.image_size, c.spatial_dims, job.intensity, job.paths.cache_dir
    )
    if info.local_rank == 0:
        images.warm(workers or 4)
    dist.barrier()
    return images


def write_encoder(out: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """``encoder.pt`` (state_dict) and ``encoder.json`` (run record)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "encoder.pt")
    (out / "encoder.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def run_pretrain(job: PretrainJob, info: dist.DistInfo) -> None:
    """Load the pool images, train, and (rank 0) write the encoder and its record.

    Raises:
        ReserveError: no pool image of the model's dimensionality.
        medssl.train.pretrain.Preempted: after SIGTERM, once ``last.pt`` is written.
    """
    config, paths = job.config, job.paths
    manifest = read_manifest(paths.ingested / MANIFEST_NAME)
    train = pool_images(
        manifest, read_reserve(paths.reserve), config.spatial_dims, job.max_images, config.seed
    )
    if train.empty:
        raise ReserveError(
            f"no {config.spatial_dims}D images outside the evaluation reserve to pretrain on"
        )
    base = {
        "method": config.method,
        "encoder": config.encoder,
        "spatial_dims": config.spatial_dims,
        "image_size": config.image_size,
        "small_input": config.small_input,
        "n_images": len(train),
        "init_sha256": config.init_sha256 or None,
    }
    if config.epochs == 0 and job.init is not None:
        if info.is_main:
            print("pretrain.epochs is 0: the encoder is model.init as it is")
            paths.checkpoints.mkdir(parents=True, exist_ok=True)
            with Live(str(paths.live), dvcyaml=None, save_dvc_exp=False) as live:
                live.log_metric("train/steps", 0)  # the stage's curves and summary exist
            write_encoder(paths.out, job.init, {**base, "steps": 0, "resumed_from_step": None})
        return
    images = cached_images(train["nifti"].tolist(), job, info)
    if info.is_main:
        print(
            f"pretraining {config.method} on {len(train)} pool images of {config.image_size}^"
            f"{config.spatial_dims} voxels, {info.world_size} process(es) on {info.device}"
        )
    live = Live(str(paths.live), dvcyaml=None, save_dvc_exp=False) if info.is_main else None

    def log(step: int, metrics: dict[str, float]) -> None:
        if live is None:  # only rank 0 logs
            return
        live.step = step
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.make_summary()  # type: ignore[no-untyped-call]

    with live if live is not None else nullcontext():
        result = pretrain(
            images,
            train["image_id"].tolist(),
            config,
            job.options,
            info,
            None,
            on_metrics=log if live is not None else None,
            init=job.init,
        )
    if info.is_main:
        meta = {
            **base,
            "steps": result.steps,
            "resumed_from_step": result.resumed_from_step,
            "determinism": result.determinism,
        }
        write_encoder(paths.out, result.encoder, meta)
