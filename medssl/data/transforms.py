"""MONAI preprocessing and self-supervised view pipelines, 2D and 3D.

Deterministic preprocessing (load, channel-first, intensity, resize) is cached once per
image; random view transforms run per step. Augmentations suit radiographs and CT: crops,
small affine jitter, gamma, noise and blur; no colour jitter, and no left-right flip by
default (situs: the heart is on the left).
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    RandAdjustContrast,
    RandAffine,
    RandFlip,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandScaleIntensity,
    RandSpatialCrop,
    Resize,
    Resized,
    ScaleIntensityRanged,
)

#: Intensity presets: name -> (a_min, a_max) mapped to [0, 1] with clipping.
INTENSITY_WINDOWS: dict[str, tuple[float, float]] = {
    "xray": (0.0, 1.0),  # ingestion already writes [0, 1] presentation values
    "ct_lung": (-1000.0, 400.0),
    "ct_soft_tissue": (-160.0, 240.0),
    "mr": (0.0, 1.0),
}


def preprocess(image_size: int, spatial_dims: int, intensity: str = "xray") -> Compose:
    """Deterministic load-and-resize pipeline for ``{"image": nifti_path}`` items.

    Args:
        image_size: output edge length in voxels.
        spatial_dims: 2 or 3.
        intensity: key of :data:`INTENSITY_WINDOWS`.

    Returns:
        A MONAI Compose producing ``image`` of shape ``(1, *[image_size] * spatial_dims)``.
    """
    if intensity not in INTENSITY_WINDOWS:
        raise ValueError(f"intensity must be one of {sorted(INTENSITY_WINDOWS)}, got {intensity}")
    a_min, a_max = INTENSITY_WINDOWS[intensity]
    return Compose(
        [
            LoadImaged(keys="image", reader="NibabelReader", image_only=True),
            EnsureChannelFirstd(keys="image", channel_dim="no_channel"),
            ScaleIntensityRanged(
                keys="image", a_min=a_min, a_max=a_max, b_min=0.0, b_max=1.0, clip=True
            ),
            Resized(keys="image", spatial_size=[image_size] * spatial_dims, anti_aliasing=True),
            EnsureTyped(keys="image", track_meta=False, dtype="float32"),
        ]
    )


def ssl_views(
    image_size: int,
    spatial_dims: int,
    *,
    min_crop: float = 0.5,
    flip: bool = False,
    noise_std: float = 0.03,
) -> Compose:
    """One random view for contrastive learning (SimCLR, Chen et al. 2020), on a tensor.

    Args:
        image_size: edge length of input and output.
        spatial_dims: 2 or 3.
        min_crop: smallest crop edge as a fraction of the image.
        flip: allow flips along the first axis (off for chest X-rays).
        noise_std: Gaussian noise standard deviation (intensities in [0, 1]).

    Returns:
        A Compose mapping ``(1, *spatial)`` to a view of the same shape.
    """
    size: Sequence[int] = [image_size] * spatial_dims
    crop = [max(4, int(image_size * min_crop))] * spatial_dims
    steps = [
        RandSpatialCrop(roi_size=crop, max_roi_size=size, random_size=True),
        Resize(spatial_size=size),
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
