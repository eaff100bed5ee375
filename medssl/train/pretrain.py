"""Self-supervised pretraining loop (SimCLR) on an in-memory stack of images.

Deterministic on CPU: MONAI ``set_determinism``, a seeded ``torch.Generator`` for batch
order and seeded random-state for every MONAI random transform.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.transforms import Compose
from monai.utils import set_determinism
from tqdm import tqdm

from medssl.models.encoders import build_encoder
from medssl.ssl.simclr import SimCLR, loss_fn

EpochCallback = Callable[[int, dict[str, float]], None]


def make_views(batch: torch.Tensor, views: Compose) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent random views of every image.

    Args:
        batch: ``(B, 1, *spatial)``.
        views: random MONAI transform on one ``(1, *spatial)`` image.

    Returns:
        Two ``(B, 1, *spatial)`` tensors.
    """
    a = torch.stack([torch.as_tensor(views(x)) for x in batch])
    b = torch.stack([torch.as_tensor(views(x)) for x in batch])
    return a.float(), b.float()


def pretrain_simclr(
    images: torch.Tensor,
    views: Compose,
    *,
    encoder_name: str,
    small_input: bool,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    temperature: float,
    proj_dim: int,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> dict[str, torch.Tensor]:
    """Train an encoder with SimCLR.

    Args:
        images: ``(N, 1, *spatial)`` preprocessed images, N >= 2.
        views: random view transform (see :func:`medssl.data.transforms.ssl_views`).
        encoder_name: key of :data:`medssl.models.encoders.ENCODERS`.
        small_input: small-image stem.
        epochs: passes over the data.
        batch_size: images per step (two views each); capped at N.
        lr: AdamW learning rate (cosine-annealed to 0).
        weight_decay: AdamW weight decay.
        temperature: NT-Xent temperature.
        proj_dim: projection width.
        seed: seed for weights, batch order and augmentations.
        on_epoch: called with ``(epoch, {"loss", "lr", "embedding_std"})``.

    Returns:
        The encoder's ``state_dict``.
    """
    if images.shape[0] < 2:
        raise ValueError(f"SimCLR needs at least 2 images, got {images.shape[0]}")
    set_determinism(seed=seed)
    views.set_random_state(seed=seed)
    spatial_dims = images.ndim - 2
    encoder, dim = build_encoder(encoder_name, spatial_dims, images.shape[1], small_input)
    model = SimCLR(encoder, dim, proj_dim=proj_dim)
    criterion = loss_fn(temperature)
    bs = min(batch_size, images.shape[0])
    steps_per_epoch = images.shape[0] // bs
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    gen = torch.Generator().manual_seed(seed)
    for epoch in tqdm(range(epochs), desc="pretrain", unit="epoch", disable=None):
        model.train()
        order = torch.randperm(images.shape[0], generator=gen)
        losses, stds = [], []
        for step in range(steps_per_epoch):
            batch = images[order[step * bs : (step + 1) * bs]]
            a, b = make_views(batch, views)
            h, za = model(a)
            _, zb = model(b)
            loss = criterion(za, zb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            # collapse detector: std of L2-normalised features (Jing et al. 2022)
            stds.append(torch.nn.functional.normalize(h.detach(), dim=1).std(0).mean().item())
        if on_epoch is not None:
            metrics = {
                "loss": sum(losses) / len(losses),
                "lr": opt.param_groups[0]["lr"],
                "embedding_std": sum(stds) / len(stds),
            }
            on_epoch(epoch, metrics)
    set_determinism(seed=None)
    return model.encoder.state_dict()
