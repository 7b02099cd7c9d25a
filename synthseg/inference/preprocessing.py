"""Intensity preparation that matches training: CT recognised from its Hounsfield range and
windowed like the generator's CT mode; everything else normalised by robust percentiles (MR)."""

from __future__ import annotations

import numpy as np
import torch

from synthseg.errors import SynthSegError
from synthseg.synthesis.intensity import normalize_ct, normalize_mr

MODALITIES = ("auto", "mr", "ct")


def looks_like_ct(data: np.ndarray) -> bool:
    """CT in HU: air near -1000 occupies a visible share of the field of view."""
    sample = np.asarray(data).reshape(-1)[:: max(1, data.size // 2_000_000)]
    if sample.min() > -500:
        return False
    air = np.mean((sample > -1100) & (sample < -850))
    return bool(air > 0.05)


def detect_modality(data: np.ndarray, requested: str = "auto") -> str:
    if requested not in MODALITIES:
        raise SynthSegError(f"modality must be one of {', '.join(MODALITIES)}, got {requested!r}")
    if requested != "auto":
        return requested
    return "ct" if looks_like_ct(data) else "mr"


def normalize(data: np.ndarray, modality: str) -> np.ndarray:
    tensor = torch.from_numpy(np.asarray(data, dtype=np.float32))
    out = normalize_ct(tensor) if modality == "ct" else normalize_mr(tensor)
    return out.numpy()


def head_box_mask(normalized: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Voxels bright enough to belong to the head (used only to crop empty borders away)."""
    mask = normalized > threshold
    if mask.sum() < 0.001 * mask.size:
        return np.ones_like(mask)
    return mask
