"""Losses in full precision inside a bfloat16 autocast region.

The encoders run under ``torch.autocast(dtype=torch.bfloat16)`` (``pretrain.precision:
bf16``), where matrix products are cast to bfloat16: 8 bits of mantissa, a relative rounding of
2^-8, so a cosine similarity can be off by about 0.004 and a contrastive logit at
temperature 0.2 by about 0.02; covariances and variances are rounded alike.
Each loss therefore runs with autocast off on inputs of at least float32, as mixed-precision
training usually keeps losses and reductions in full precision.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 when it is in a lower-precision float type, else unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def no_autocast(x: torch.Tensor) -> AbstractContextManager[None]:
    """Autocast off on ``x``'s device type, for the body of a loss."""
    return torch.autocast(x.device.type, enabled=False)
