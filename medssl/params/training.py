"""What is trained and how: the ``model``, ``pretrain`` and ``finetune`` sections.

Rules that need the library (encoder names, methods, HU window names) or other sections
(``pretrain.epochs: 0`` only with ``model.init``) are checked where the configs are built,
before anything trains.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PlainValidator

from medssl.params.base import PositiveFloat, PositiveInt, Section


def _budget(value: object) -> int | float | str:
    """A label budget: a count, a fraction of the training labels or ``"all"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if value == "all":
        return "all"
    raise ValueError(f"a budget is a label count, a fraction or 'all', got {value!r}")


#: ``finetune.budgets`` entry; sizes are checked against the labels by the split stage.
Budget = Annotated[int | float | str, PlainValidator(_budget)]


class ModelParams(Section):
    """``model``: the encoder both pretraining and fine-tuning build."""

    encoder: str
    spatial_dims: Literal[2, 3]
    image_size: PositiveInt
    small_input: bool
    intensity: str
    init: str | None


class VicregParams(Section):
    """``pretrain.vicreg``: loss weights (invariance, variance, covariance)."""

    sim_weight: float
    var_weight: float
    cov_weight: float


class ByolParams(Section):
    """``pretrain.byol``: base teacher momentum."""

    momentum: float


class MaeParams(Section):
    """``pretrain.mae``: masking and decoder."""

    mask_ratio: PositiveFloat
    decoder_dim: PositiveInt
    decoder_depth: PositiveInt
    norm_pix: bool


class ViewsParams(Section):
    """``pretrain.views``: random views of joint-embedding methods."""

    min_crop: PositiveFloat
    flip: bool
    noise_std: float
    hu_windows: list[str]
    #: batch | sample | auto; a file without the key keeps the per-image views it had
    engine: Literal["auto", "batch", "sample"] = "sample"


class PretrainParams(Section):
    """``pretrain``: the objective, optimisation and execution of self-supervised pretraining."""

    method: str
    seed: int
    epochs: Annotated[int, Field(ge=0)]
    batch_size: PositiveInt
    lr: PositiveFloat
    weight_decay: float
    warmup_epochs: int
    temperature: PositiveFloat
    proj_dim: PositiveInt
    vicreg: VicregParams
    byol: ByolParams
    mae: MaeParams
    views: ViewsParams
    precision: Literal["bf16", "fp32"]
    deterministic: bool
    nproc: PositiveInt
    device: str
    channels_last: bool
    workers: int
    cache: Literal["memory", "disk"]
    max_images: Annotated[int, Field(ge=2)] | None
    checkpoint_every: PositiveInt
    log_every: PositiveInt


class AugmentParams(Section):
    """``finetune.augment``: random views while fine-tuning (the defaults are the old,
    fixed values, so a params file without the key trains as before)."""

    min_crop: Annotated[float, Field(gt=0, le=1)] = 0.8
    noise_std: Annotated[float, Field(ge=0)] = 0.01


class FinetuneParams(Section):
    """``finetune``: arms x budgets x seeds, modes, headline rule and optimisation."""

    arms: list[str]
    budgets: list[Budget]
    seeds: list[int]
    modes: dict[str, list[str]]
    headline: dict[str, str]
    steps: PositiveInt
    eval_every: PositiveInt
    patience: int
    batch_size: PositiveInt
    lr: PositiveFloat
    encoder_lr_scale: PositiveFloat
    weight_decay: float
    probe_c: list[float]
    knn_k: PositiveInt
    knn_bank: int
    pixel_size: PositiveInt
    lp_ft: bool
    augment: AugmentParams = Field(default_factory=AugmentParams)
    precision: Literal["bf16", "fp32"] = "fp32"
    feature_flips: bool = False
