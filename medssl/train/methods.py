"""The self-supervised method a configuration selects, built on this rank's device.

:data:`METHODS` is the explicit map from ``pretrain.method`` to a factory of the method's
class; each factory is typed to return a :class:`medssl.ssl.method.SSLMethod`, so mypy
checks that SimCLR, VICReg, BYOL and MAE satisfy the protocol. :func:`build_method` moves the
method to the device and wraps it for DDP when several processes train.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from medssl.models.encoders import VIT_SPECS, build_encoder, vit_patch_size
from medssl.ssl.byol import BYOL
from medssl.ssl.heads import Gather
from medssl.ssl.mae import MAE
from medssl.ssl.method import SSLMethod
from medssl.ssl.simclr import SimCLR
from medssl.ssl.vicreg import VICReg
from medssl.train import distributed as dist

if TYPE_CHECKING:  # the configuration validates its method name against METHODS
    from medssl.train.pretrain_config import PretrainConfig

StateDict = dict[str, torch.Tensor]

_convert_sync_batchnorm: Callable[[nn.Module], nn.Module] = (
    nn.SyncBatchNorm.convert_sync_batchnorm  # torch: untyped
)


def _encoder(c: PretrainConfig, init: StateDict | None) -> tuple[nn.Module, int]:
    """The configured encoder, random or starting from ``init`` (checked by the caller)."""
    encoder, dim = build_encoder(c.encoder, c.spatial_dims, 1, c.small_input)
    if init is not None:
        encoder.load_state_dict(init)
    return encoder, dim


def _simclr(c: PretrainConfig, gather: Gather, init: StateDict | None) -> SSLMethod:
    encoder, dim = _encoder(c, init)
    return SimCLR(encoder, dim, c.proj_dim, c.temperature, gather=gather)


def _vicreg(c: PretrainConfig, gather: Gather, init: StateDict | None) -> SSLMethod:
    encoder, dim = _encoder(c, init)
    return VICReg(encoder, dim, c.proj_dim, *c.vicreg_weights, gather=gather)


def _byol(c: PretrainConfig, gather: Gather, init: StateDict | None) -> SSLMethod:
    encoder, dim = _encoder(c, init)
    return BYOL(encoder, dim, c.proj_dim, momentum=c.byol_momentum, gather=gather)


def _mae(c: PretrainConfig, gather: Gather, init: StateDict | None) -> SSLMethod:
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


#: method name -> factory(config, gather, init) -> the method (an :class:`SSLMethod`).
METHODS: dict[str, Callable[[PretrainConfig, Gather, StateDict | None], SSLMethod]] = {
    "simclr": _simclr,
    "vicreg": _vicreg,
    "byol": _byol,
    "mae": _mae,
}


def build_method(
    c: PretrainConfig,
    info: dist.DistInfo,
    init: StateDict | None = None,
    channels_last: bool = False,
) -> tuple[SSLMethod, nn.Module]:
    """The configured method on this rank's device, and the module to train.

    Args:
        c: configuration.
        info: rank and device.
        init: encoder weights to start from (continued pretraining), or None.
        channels_last: channels-last memory format (2D: NHWC, 3D: NDHWC).

    Returns:
        ``(method, module)``: the method itself (hooks, probe features, checkpoint state,
        export) and what the loop calls on views: the method, or its DDP wrapper (with
        SyncBatchNorm on GPU) when several processes train.
    """
    method = METHODS[c.method](c, dist.gather_with_grad, init)
    if not isinstance(method, nn.Module):
        raise TypeError(f"method {c.method!r} is not a torch.nn.Module")
    method = method.to(info.device)
    if channels_last:
        fmt = torch.channels_last if c.spatial_dims == 2 else torch.channels_last_3d
        method.to(memory_format=fmt)  # type: ignore[call-overload]  # stubs lack it
    module: nn.Module = method
    if info.distributed:
        if info.device.type == "cuda":
            # global-batch BN; replaces the BatchNorm layers inside ``method`` in place
            module = _convert_sync_batchnorm(method)
        module = DistributedDataParallel(module)
    return method, module


def build_model(
    c: PretrainConfig,
    info: dist.DistInfo,
    init: StateDict | None = None,
    channels_last: bool = False,
) -> nn.Module:
    """The module to train (see :func:`build_method`), DDP-wrapped when needed."""
    return build_method(c, info, init, channels_last)[1]
