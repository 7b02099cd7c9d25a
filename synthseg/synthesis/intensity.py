"""Appearance: per-class Gaussian intensities through a lookup table, MR contrast priors, CT in
Hounsfield units with windowing, intra-class texture, and the intensity normalisation shared with
inference (so training and inference see images on the same scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synthseg.synthesis.tissues import TISSUES

# The window inference applies to CT (HU) and the generator's CT mode reproduces most of the time.
CT_INFERENCE_WINDOW = (-20.0, 120.0)
MR_PERCENTILES = (0.5, 99.5)


def prior_means(tissues: list[str], contrast: str) -> torch.Tensor:
    """Per-class MR means of a contrast (``t1``/``t2``/``flair``/``pd``) from the tissue table."""
    return torch.tensor([getattr(TISSUES[t], contrast) for t in tissues], dtype=torch.float32)


def ct_ranges(tissues: list[str]) -> torch.Tensor:
    """``(C, 2)`` Hounsfield range per class."""
    return torch.tensor([TISSUES[t].ct for t in tissues], dtype=torch.float32)


def render_gmm(class_map: torch.Tensor, means: torch.Tensor, stds: torch.Tensor,
               noise: torch.Tensor) -> torch.Tensor:
    """``means[c] + stds[c] * noise`` for every voxel of class ``c``: one gather, no per-label loop."""
    return means[class_map] + stds[class_map] * noise


def smooth_field(noise: torch.Tensor, shape) -> torch.Tensor:
    """Upsample a coarse ``(X', Y', Z')`` noise grid to ``shape`` (trilinear): bias and texture fields."""
    return F.interpolate(noise[None, None], size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]


def robust_quantiles(image: torch.Tensor, qs=MR_PERCENTILES, max_samples: int = 250_000) -> torch.Tensor:
    flat = image.reshape(-1)
    stride = max(1, flat.numel() // max_samples)
    return torch.quantile(flat[::stride].float(), torch.tensor(qs, device=image.device) / 100)


def normalize_mr(image: torch.Tensor) -> torch.Tensor:
    """Map the 0.5th–99.5th percentiles to [0, 1] and clip (used by generator and inference)."""
    lo, hi = robust_quantiles(image)
    return ((image - lo) / torch.clamp(hi - lo, min=1e-6)).clamp(0, 1)


def window(image_hu: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Clip Hounsfield units to a window and scale it to [0, 1] (CT as stored and viewed)."""
    return ((image_hu - low) / max(high - low, 1e-6)).clamp(0, 1)


def normalize_ct(image_hu: torch.Tensor) -> torch.Tensor:
    return window(image_hu, *CT_INFERENCE_WINDOW)
