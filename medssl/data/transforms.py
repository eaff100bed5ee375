"""MONAI preprocessing and self-supervised view pipelines, 2D and 3D.

Deterministic preprocessing (load, channel-first, intensity, resize) is cached once per
image; random view transforms run per step. Augmentations suit radiographs and CT: crops,
small affine jitter, gamma, noise and blur; no colour jitter, and no left-right flip by
default (situs: the heart is on the left). CT cached over the full HU range can be seen
through random clinical windows (lung, soft tissue, bone) as an augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.transforms.compose import Compose
from monai.transforms.croppad.array import RandSpatialCrop
from monai.transforms.intensity.array import (
    RandAdjustContrast,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandScaleIntensity,
    ScaleIntensityRange,
)
from monai.transforms.intensity.dictionary import ScaleIntensityRanged
from monai.transforms.io.dictionary import LoadImaged
from monai.transforms.spatial.array import RandAffine, RandFlip, Resize
from monai.transforms.spatial.dictionary import Resized
from monai.transforms.transform import MapTransform, RandomizableTransform, Transform
from monai.transforms.utility.dictionary import EnsureChannelFirstd, EnsureTyped

#: Intensity presets: name -> (a_min, a_max) mapped to [0, 1] with clipping.
INTENSITY_WINDOWS: dict[str, tuple[float, float]] = {
    "xray": (0.0, 1.0),  # ingestion already writes [0, 1] presentation values
    "ct_lung": (-1000.0, 400.0),
    "ct_soft_tissue": (-160.0, 240.0),
    "ct_full": (-1024.0, 3071.0),  # whole 12-bit HU range: pair with random HU windows
    "mr": (0.0, 1.0),
}

#: Clinical CT windows as (lower, upper) HU: lung W1500/L-600, soft tissue W400/L40,
#: bone W1800/L400 (common radiology presets).
CT_WINDOWS_HU: dict[str, tuple[float, float]] = {
    "lung": (-1350.0, 150.0),
    "soft_tissue": (-160.0, 240.0),
    "bone": (-500.0, 1300.0),
}


def windows_in_unit_range(
    intensity: str, windows_hu: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Express HU windows on the [0, 1] scale that :func:`preprocess` produced.

    Args:
        intensity: the preprocessing preset (key of :data:`INTENSITY_WINDOWS`).
        windows_hu: ``(lower, upper)`` HU pairs.

    Returns:
        The same windows in cached units.
    """
    if intensity not in INTENSITY_WINDOWS:
        raise ValueError(f"intensity must be one of {sorted(INTENSITY_WINDOWS)}, got {intensity}")
    a_min, a_max = INTENSITY_WINDOWS[intensity]
    out = []
    for lo, hi in windows_hu:
        if not lo < hi:
            raise ValueError(f"HU window must have lower < upper, got ({lo}, {hi})")
        out.append(((lo - a_min) / (a_max - a_min), (hi - a_min) / (a_max - a_min)))
    return out


class RandIntensityWindow(RandomizableTransform, Transform):
    """With probability ``prob``, show the image through one of several intensity windows.

    The chosen ``(lower, upper)`` window is mapped to [0, 1] with clipping (MONAI
    :class:`~monai.transforms.ScaleIntensityRange`), like a radiologist switching between
    lung, soft-tissue and bone windows on the same CT.

    Args:
        windows: ``(lower, upper)`` pairs in the image's units.
        prob: probability of windowing.
    """

    def __init__(self, windows: Sequence[tuple[float, float]], prob: float = 0.8) -> None:
        RandomizableTransform.__init__(self, prob)
        if not windows:
            raise ValueError("RandIntensityWindow needs at least one window")
        self.windows = [(float(lo), float(hi)) for lo, hi in windows]
        self._index = 0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self._index = int(self.R.randint(len(self.windows)))

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """``(C, *spatial)`` -> same shape, windowed and clipped to [0, 1] (or unchanged)."""
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        lo, hi = self.windows[self._index]
        window = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
        return torch.as_tensor(window(img))


#: One deterministic preprocessing step: a MONAI dictionary transform and its keyword
#: arguments. The arguments are JSON values, so the same step is also bundle config.
PreprocessStep = tuple[type[MapTransform], dict[str, Any]]


def preprocessing_steps(image_size: int, spatial_dims: int, intensity: str) -> list[PreprocessStep]:
    """The deterministic load-and-resize steps: the single definition of preprocessing.

    Training and evaluation instantiate them (:func:`preprocess`); the exported MONAI
    bundle writes them as config (:func:`preprocessing_config`). Steps: load the NIfTI
    (nibabel), add a channel axis, map the intensity window of ``intensity`` to [0, 1] with
    clipping, resize to ``image_size`` per spatial axis (anti-aliased), float32 tensor.

    Args:
        image_size: output edge length in voxels.
        spatial_dims: 2 or 3.
        intensity: key of :data:`INTENSITY_WINDOWS`.

    Returns:
        ``(transform class, kwargs)`` pairs, in order; kwargs hold JSON values only.

    Raises:
        ValueError: on an unknown ``intensity``, ``spatial_dims`` not 2 or 3, or
            ``image_size < 1``.
    """
    if intensity not in INTENSITY_WINDOWS:
        raise ValueError(f"intensity must be one of {sorted(INTENSITY_WINDOWS)}, got {intensity}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    a_min, a_max = INTENSITY_WINDOWS[intensity]
    return [
        (LoadImaged, {"keys": "image", "reader": "NibabelReader", "image_only": True}),
        (EnsureChannelFirstd, {"keys": "image", "channel_dim": "no_channel"}),
        (
            ScaleIntensityRanged,
            {
                "keys": "image",
                "a_min": a_min,
                "a_max": a_max,
                "b_min": 0.0,
                "b_max": 1.0,
                "clip": True,
            },
        ),
        (
            Resized,
            {"keys": "image", "spatial_size": [image_size] * spatial_dims, "anti_aliasing": True},
        ),
        (EnsureTyped, {"keys": "image", "track_meta": False, "dtype": "float32"}),
    ]


def preprocess(image_size: int, spatial_dims: int, intensity: str = "xray") -> Compose:
    """Deterministic load-and-resize pipeline for ``{"image": nifti_path}`` items.

    Instantiates :func:`preprocessing_steps`, the steps the exported bundle runs too.

    Args:
        image_size: output edge length in voxels.
        spatial_dims: 2 or 3.
        intensity: key of :data:`INTENSITY_WINDOWS`.

    Returns:
        A MONAI Compose producing ``image`` of shape ``(1, *[image_size] * spatial_dims)``.
    """
    steps = preprocessing_steps(image_size, spatial_dims, intensity)
    return Compose([cls(**kwargs) for cls, kwargs in steps])


def _config_target(cls: type) -> str:
    """Config ``_target_``: a bare name for MONAI classes (found by its locator), else a path."""
    if cls.__module__.split(".")[0] == "monai":
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def preprocessing_config(image_size: int, spatial_dims: int, intensity: str) -> dict[str, Any]:
    """:func:`preprocessing_steps` as a MONAI bundle config component.

    ``monai.bundle.ConfigParser(...).get_parsed_content`` of the result builds the same
    Compose as :func:`preprocess`; the export stage writes it into ``inference.json``.

    Args:
        image_size: edge length in voxels.
        spatial_dims: 2 or 3.
        intensity: key of :data:`INTENSITY_WINDOWS`.

    Returns:
        A ``{"_target_": "Compose", "transforms": [...]}`` component.
    """
    steps = preprocessing_steps(image_size, spatial_dims, intensity)
    return {
        "_target_": "Compose",
        "transforms": [{"_target_": _config_target(cls), **kwargs} for cls, kwargs in steps],
    }


def _window_and_crop(
    image_size: int, spatial_dims: int, min_crop: float, windows: Sequence[tuple[float, float]]
) -> list[Transform]:
    """Optional random intensity window, then a random-size crop resized back to full size."""
    size: Sequence[int] = [image_size] * spatial_dims
    crop = [max(4, int(image_size * min_crop))] * spatial_dims
    steps: list[Transform] = [RandIntensityWindow(windows)] if windows else []
    return [
        *steps,
        RandSpatialCrop(roi_size=crop, max_roi_size=size, random_size=True),
        Resize(spatial_size=size),
    ]


def ssl_views(
    image_size: int,
    spatial_dims: int,
    *,
    min_crop: float = 0.5,
    flip: bool = False,
    noise_std: float = 0.03,
    windows: Sequence[tuple[float, float]] = (),
) -> Compose:
    """One random view for joint-embedding methods (SimCLR, Chen et al. 2020), on a tensor.

    Args:
        image_size: edge length of input and output.
        spatial_dims: 2 or 3.
        min_crop: smallest crop edge as a fraction of the image.
        flip: allow flips along the first axis (off for chest X-rays).
        noise_std: Gaussian noise standard deviation (intensities in [0, 1]).
        windows: optional intensity windows in cached units (see
            :func:`windows_in_unit_range`), one drawn per view with probability 0.8.

    Returns:
        A Compose mapping ``(1, *spatial)`` to a view of the same shape.
    """
    steps = _window_and_crop(image_size, spatial_dims, min_crop, windows)
    steps += [
        RandAffine(
            prob=0.8,
            rotate_range=[0.17] * (1 if spatial_dims == 2 else 3),
            scale_range=[0.1] * spatial_dims,
            padding_mode="border",
        ),
        RandAdjustContrast(prob=0.8, gamma=(0.6, 1.6)),
        RandScaleIntensity(factors=0.2, prob=0.8),
        RandGaussianSmooth(prob=0.3, sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0)),
        RandGaussianNoise(prob=0.5, std=noise_std),
    ]
    if flip:
        steps.append(RandFlip(prob=0.5, spatial_axis=0))
    return Compose(steps)


def mae_view(
    image_size: int,
    spatial_dims: int,
    *,
    min_crop: float = 0.5,
    flip: bool = False,
    windows: Sequence[tuple[float, float]] = (),
) -> Compose:
    """The light augmentation of masked-image modelling (MAE, He et al. 2022): crop and resize.

    Args:
        image_size: edge length of input and output.
        spatial_dims: 2 or 3.
        min_crop: smallest crop edge as a fraction of the image.
        flip: allow flips along the first axis.
        windows: optional intensity windows in cached units.

    Returns:
        A Compose mapping ``(1, *spatial)`` to a view of the same shape.
    """
    steps = _window_and_crop(image_size, spatial_dims, min_crop, windows)
    if flip:
        steps.append(RandFlip(prob=0.5, spatial_axis=0))
    return Compose(steps)
