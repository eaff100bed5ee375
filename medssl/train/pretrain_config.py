"""What a pretraining run trains and how it runs.

:class:`PretrainConfig` decides the trained weights (it is hashed into the checkpoint
fingerprint, see :func:`config_record`) and is validated once, on construction;
:class:`RunOptions` does not change the weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medssl.data.batch_views import resolve_engine
from medssl.models.encoders import VIT_SPECS
from medssl.train.methods import METHODS


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
        views_engine: ``sample`` (per-image MONAI views in DataLoader workers) or ``batch``
            (whole-batch Kornia views on the training device, 2D without windows; see
            :mod:`medssl.data.batch_views`). The two draw different random views.
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
    views_engine: str = "sample"

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
        if self.views_engine == "auto":
            raise ValueError("pretrain.views.engine: resolve 'auto' first (resolve_engine)")
        resolve_engine(self.views_engine, self.spatial_dims, self.windows)
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


def config_record(c: PretrainConfig, world_size: int) -> dict[str, Any]:
    """The configuration as plain JSON values, with the world size (fingerprint, checkpoint)."""
    record = dataclasses.asdict(c)
    record["world_size"] = world_size
    return record
