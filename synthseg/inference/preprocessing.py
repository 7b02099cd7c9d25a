"""Intensity preparation that matches training: CT recognised from its Hounsfield range and
windowed like the generator's CT mode; everything else normalised by robust percentiles (MR)."""

from __future__ import annotations

import numpy as np
import torch

from synthseg.errors import check_choice
from synthseg.synthesis.intensity import normalize_ct, normalize_mr

MODALITIES = ("auto", "mr", "ct")


# A skull-stripped CT with its background set to 0: the brain's Hounsfield range (CSF 0-15, WM 20-30,
# GM 35-45) and some values below 0 (CSF and noise). Measured (session 27): two real stripped CTs of
# ../shared/data/dev/ct_template median 28 / 29.5 HU, 2.5 % / 1.8 % negative; stripped CT renders of the
# held-out templates median 23-30 HU, 0.7-14 % negative; no MR scan of dev/ nor any MR render has a single
# negative voxel (foreground medians 0.4-1 for renders, 77-674 for real scans).
STRIPPED_CT_MEDIAN_HU = (10.0, 60.0)
STRIPPED_CT_MIN_NEGATIVE = 0.001
STRIPPED_CT_MIN_ZERO = 0.2


def looks_like_ct(data: np.ndarray) -> bool:
    """CT in HU: air near -1000 occupies a visible share of the field of view; or the head was masked
    to a zero background and the rest sits in the brain's HU range with some values below 0, which
    MR magnitude images never have."""
    sample = np.asarray(data).reshape(-1)[:: max(1, data.size // 2_000_000)]
    if sample.min() <= -500:
        return bool(np.mean((sample > -1100) & (sample < -850)) > 0.05)
    foreground = sample[sample != 0]
    if np.mean(sample == 0) < STRIPPED_CT_MIN_ZERO or foreground.size < 1000:
        return False
    low, high = STRIPPED_CT_MEDIAN_HU
    return bool(low <= np.median(foreground) <= high and np.mean(foreground < 0) >= STRIPPED_CT_MIN_NEGATIVE)


def detect_modality(data: np.ndarray, requested: str = "auto") -> str:
    check_choice("modality", requested, MODALITIES)
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
