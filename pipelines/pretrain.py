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
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from dvclive import Live

from medssl.data.dataset import DiskCachedImages, load_stack
from medssl.data.manifest import MANIFEST_NAME, read_manifest
from medssl.data.reserve import ReserveError, pool_images, read_reserve
from medssl.data.transforms import CT_WINDOWS_HU, windows_in_unit_range
from medssl.models.init import load_init
from medssl.params import ParamsError, get, get_positive, load_params, tracked_file
from medssl.train import distributed as dist
from medssl.train.pretrain import (
    Preempted,
    PretrainConfig,
    RunOptions,
    pretrain,
)

CACHES = ("memory", "disk")


def config_from_params(p: dict[str, Any], init_sha256: str = "") -> PretrainConfig:
    """The ``model`` and ``pretrain`` sections as a :class:`PretrainConfig`."""
    epochs = get(p, "pretrain.epochs", int)
    if epochs < 0 or (epochs == 0 and not init_sha256):
        raise ParamsError("params.yaml: 'pretrain.epochs' must be > 0 (0 only with model.init)")
    intensity = get(p, "model.intensity", str)
    names = get(p, "pretrain.views.hu_windows", list)
    unknown = [n for n in names if n not in CT_WINDOWS_HU]
    if unknown:
        raise ParamsError(
            f"params.yaml: 'pretrain.views.hu_windows' has unknown {unknown}; "
            f"choose from {sorted(CT_WINDOWS_HU)}"
        )
    if names and not intensity.startswith("ct"):
        raise ParamsError("params.yaml: 'pretrain.views.hu_windows' needs a CT model.intensity")
    windows = windows_in_unit_range(intensity, [CT_WINDOWS_HU[n] for n in names])
    return PretrainConfig(
        method=get(p, "pretrain.method", str),
        encoder=get(p, "model.encoder", str),
        spatial_dims=get(p, "model.spatial_dims", int),
        image_size=get_positive(p, "model.image_size", int),
        small_input=get(p, "model.small_input", bool),
        seed=get(p, "pretrain.seed", int),
        epochs=epochs,
        batch_size=get_positive(p, "pretrain.batch_size", int),
        lr=get_positive(p, "pretrain.lr", float),
        weight_decay=get(p, "pretrain.weight_decay", float),
        warmup_epochs=get(p, "pretrain.warmup_epochs", int),
        precision=get(p, "pretrain.precision", str),
        deterministic=get(p, "pretrain.deterministic", bool),
        temperature=get_positive(p, "pretrain.temperature", float),
        proj_dim=get_positive(p, "pretrain.proj_dim", int),
        vicreg_weights=(
            get(p, "pretrain.vicreg.sim_weight", float),
            get(p, "pretrain.vicreg.var_weight", float),
            get(p, "pretrain.vicreg.cov_weight", float),
        ),
        byol_momentum=get(p, "pretrain.byol.momentum", float),
        init_sha256=init_sha256,
        mask_ratio=get_positive(p, "pretrain.mae.mask_ratio", float),
        decoder_dim=get_positive(p, "pretrain.mae.decoder_dim", int),
        decoder_depth=get_positive(p, "pretrain.mae.decoder_depth", int),
        norm_pix=get(p, "pretrain.mae.norm_pix", bool),
        min_crop=get_positive(p, "pretrain.views.min_crop", float),
        flip=get(p, "pretrain.views.flip", bool),
        noise_std=get(p, "pretrain.views.noise_std", float),
        windows=tuple(windows),
    )


def options_from_params(p: dict[str, Any], checkpoints: Path) -> RunOptions:
    """The execution settings of the ``pretrain`` section."""
    return RunOptions(
        checkpoint_dir=checkpoints,
        checkpoint_every=get_positive(p, "pretrain.checkpoint_every", int),
        log_every=get_positive(p, "pretrain.log_every", int),
        knn_every=0,  # the kNN probe needs labels; the stage is label-free
        workers=get(p, "pretrain.workers", int),
        device=get(p, "pretrain.device", str),
        channels_last=get(p, "pretrain.channels_last", bool),
    )


def cached_images(
    paths: list[str],
    c: PretrainConfig,
    intensity: str,
    cache: str,
    cache_dir: Path,
    info: dist.DistInfo,
    workers: int,
) -> torch.Tensor | DiskCachedImages:
    """Decoded, preprocessed training images: in memory, or on disk shared by local ranks."""
    if cache == "memory":
        return load_stack(paths, c.image_size, c.spatial_dims, intensity, workers)
    images = DiskCachedImages(paths, c.image_size, c.spatial_dims, intensity, cache_dir)
    if info.local_rank == 0:
        images.warm(workers or 4)
    dist.barrier()
    return images


def write_encoder(out: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """``encoder.pt`` (state_dict) and ``encoder.json`` (run record)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / "encoder.pt")
    (out / "encoder.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--reserve", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path("models/pretrain_cache"))
    parser.add_argument("--live", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True, help="folder of model.init files")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    try:
        p = load_params(args.params)
        nproc = get_positive(p, "pretrain.nproc", int)
        if nproc > 1 and not dist.under_torchrun():
            dist.relaunch_under_torchrun(nproc, str(Path(__file__).resolve()), sys.argv[1:])
        init, init_sha256 = None, ""
        init_path = tracked_file(p, "model.init", args.weights)
        if init_path is not None:
            init, init_sha256 = load_init(
                init_path,
                get(p, "model.encoder", str),
                get(p, "model.spatial_dims", int),
                get(p, "model.small_input", bool),
            )
        config = config_from_params(p, init_sha256)
        options = options_from_params(p, args.checkpoints)
        intensity = get(p, "model.intensity", str)
        cache = get(p, "pretrain.cache", str)
        max_images = get(p, "pretrain.max_images", (int, type(None)))
        if max_images is not None and max_images < 2:
            raise ParamsError("params.yaml: 'pretrain.max_images' must be null or >= 2")
        if cache not in CACHES:
            raise ParamsError(f"params.yaml: 'pretrain.cache' must be in {CACHES}, got {cache!r}")
        info = dist.setup(options.device)
    except ValueError as exc:  # ParamsError, InitError and PretrainConfig's checks name the key
        sys.exit(f"error: {exc}")
    try:
        run(args, config, options, intensity, cache, info, init, max_images)
    except ReserveError as exc:
        sys.exit(f"error: {exc}")
    except Preempted as exc:
        print(exc, file=sys.stderr)
        sys.exit(143)  # 128 + SIGTERM: DVC sees a failed stage; rerun to resume
    finally:
        dist.teardown()


def run(
    args: argparse.Namespace,
    config: PretrainConfig,
    options: RunOptions,
    intensity: str,
    cache: str,
    info: dist.DistInfo,
    init: dict[str, torch.Tensor] | None,
    max_images: int | None,
) -> None:
    """Load data, train, and (rank 0) write the encoder and its record."""
    manifest = read_manifest(args.ingested / MANIFEST_NAME)
    train = pool_images(
        manifest, read_reserve(args.reserve), config.spatial_dims, max_images, config.seed
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
    if config.epochs == 0 and init is not None:
        if info.is_main:
            print("pretrain.epochs is 0: the encoder is model.init as it is")
            args.checkpoints.mkdir(parents=True, exist_ok=True)
            with Live(str(args.live), dvcyaml=None, save_dvc_exp=False) as live:
                live.log_metric("train/steps", 0)  # the stage's curves and summary exist
            write_encoder(args.out, init, {**base, "steps": 0, "resumed_from_step": None})
        return
    paths = train["nifti"].tolist()
    images = cached_images(paths, config, intensity, cache, args.cache_dir, info, options.workers)
    if info.is_main:
        print(
            f"pretraining {config.method} on {len(train)} pool images of {config.image_size}^"
            f"{config.spatial_dims} voxels, {info.world_size} process(es) on {info.device}"
        )
    live = Live(str(args.live), dvcyaml=None, save_dvc_exp=False) if info.is_main else None

    def log(step: int, metrics: dict[str, float]) -> None:
        assert live is not None
        live.step = step
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.make_summary()

    with live if live is not None else nullcontext():
        result = pretrain(
            images,
            train["image_id"].tolist(),
            config,
            options,
            info,
            None,
            on_metrics=log if live is not None else None,
            init=init,
        )
    if not info.is_main:
        return
    meta = {
        **base,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "determinism": result.determinism,
    }
    write_encoder(args.out, result.encoder, meta)


if __name__ == "__main__":
    main()
