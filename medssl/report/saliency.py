"""Saliency maps of a single-logit classifier: MONAI Grad-CAM or occlusion sensitivity.

* Grad-CAM (Selvaraju et al., ICCV 2017), :class:`monai.visualize.GradCAM`: gradients of
  the abnormal logit weight the activations of a convolutional layer; needs the layer name.
* Occlusion sensitivity (Zeiler & Fergus, ECCV 2014),
  :class:`monai.visualize.OcclusionSensitivity`: the drop of the abnormal probability when
  a Gaussian-weighted patch is masked; works for any network (ViT included).

Maps are ``(N, 1, *spatial)`` in [0, 1], each image scaled to its own maximum (MONAI's
default CAM normaliser, which maps (min, max) to (1, 0), is not used: it flips the map).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from monai.visualize import GradCAM, OcclusionSensitivity
from numpy.typing import NDArray
from torch import nn

METHODS = ("gradcam", "occlusion")
#: Grad-CAM maps coarser than this many cells per edge say little: use occlusion instead.
MIN_CAM_CELLS = 4

#: Bundle ``network_def`` target -> Grad-CAM layer (last convolutional stage).
GRADCAM_LAYERS: dict[str, str] = {
    "monai.networks.nets.resnet18": "layer4",
    "monai.networks.nets.resnet34": "layer4",
    "monai.networks.nets.resnet50": "layer4",
    "monai.networks.nets.DenseNet121": "class_layers.relu",
}


class LogitColumn(nn.Module):
    """Wrap a classifier so that it returns ``(B, 1)`` logits, as MONAI's CAMs expect."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out.reshape(x.shape[0], -1)


def layer_resolution(net: nn.Module, layer: str, input_shape: tuple[int, ...]) -> int:
    """Smallest spatial edge of a layer's output for an input of ``input_shape``."""
    module = dict(net.named_modules())[layer]
    seen: list[tuple[int, ...]] = []
    hook = module.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[2:])))
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(input_shape))
    finally:
        hook.remove()
    return min(seen[0]) if seen and seen[0] else 1


def choose_method(
    net: nn.Module, layer: str | None, input_shape: tuple[int, ...], requested: str
) -> str:
    """Resolve ``"auto"``: Grad-CAM when a layer is known and its map has at least
    :data:`MIN_CAM_CELLS` cells per edge, else occlusion; other values pass through."""
    if requested != "auto":
        return requested
    if layer is not None and layer_resolution(net, layer, input_shape) >= MIN_CAM_CELLS:
        return "gradcam"
    return "occlusion"


def saliency_maps(
    net: nn.Module,
    images: torch.Tensor,
    method: str,
    target_layer: str | None = None,
    mask_size: int | None = None,
) -> NDArray[np.float32]:
    """Saliency of the abnormal logit for each image.

    Args:
        net: classifier returning one logit per image (``(B,)`` or ``(B, 1)``).
        images: ``(N, 1, *spatial)`` preprocessed inputs.
        method: ``"gradcam"`` (needs ``target_layer``) or ``"occlusion"``.
        target_layer: module name inside ``net`` for Grad-CAM (see :data:`GRADCAM_LAYERS`).
        mask_size: occlusion patch edge in voxels (default: a quarter of the smallest
            image edge, at least 4; patches overlap by half, so about 8 x 8 positions
            in 2D, each one forward pass).

    Returns:
        ``(N, 1, *spatial)`` float32 in [0, 1].
    """
    if method not in METHODS:
        raise ValueError(f"saliency method must be one of {METHODS}, got {method!r}")
    model = LogitColumn(net).eval()
    if method == "gradcam":
        if target_layer is None:
            raise ValueError("Grad-CAM needs a target layer; use method 'occlusion' instead")
        # MONAI's default post-processing maps (min, max) to (1, 0), flipping the map
        cam = GradCAM(
            nn_module=model, target_layers=f"net.{target_layer}", postprocessing=_unchanged
        )
        maps = [cam(images[i : i + 1], class_idx=0) for i in range(len(images))]
        out = torch.cat(maps).detach().float().numpy()
    else:
        out = np.stack(
            [_occlusion(model, images[i : i + 1], mask_size) for i in range(len(images))]
        )
    return _unit_scale(out)


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


def _occlusion(model: nn.Module, image: torch.Tensor, mask_size: int | None) -> NDArray[np.float32]:
    edge = min(image.shape[2:])
    size = min(mask_size or max(4, edge // 4), edge)
    occ = OcclusionSensitivity(model, mask_size=size, n_batch=32, verbose=False, overlap=0.5)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MONAI's indexing deprecation notice
        base = torch.sigmoid(model(image)).item()
        occ_map, _ = occ(image)
    if occ_map.ndim == image.ndim + 1:  # (B, C, *spatial, N): N outputs of the network
        occ_map = occ_map[..., 0]
    drop = base - occ_map[0].float().numpy()  # (1, *spatial)
    return np.clip(drop, 0.0, None).astype(np.float32)


def _unit_scale(maps: NDArray[np.float32]) -> NDArray[np.float32]:
    maps = np.nan_to_num(np.clip(maps, 0.0, None), nan=0.0, posinf=0.0)
    flat = maps.reshape(len(maps), -1)
    top = flat.max(axis=1).reshape((len(maps),) + (1,) * (maps.ndim - 1))
    return np.where(top > 0, maps / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)
