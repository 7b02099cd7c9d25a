"""Overlap, distance and volume metrics per structure, on label arrays in one grid."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, ref: np.ndarray, label: int, valid: np.ndarray | None = None) -> float:
    """Dice of one label; NaN when the label is absent from both maps."""
    p, r = pred == label, ref == label
    if valid is not None:
        p, r = p & valid, r & valid
    total = int(p.sum()) + int(r.sum())
    return float("nan") if total == 0 else 2.0 * int((p & r).sum()) / total


def dice_per_label(pred: np.ndarray, ref: np.ndarray, labels: Iterable[int],
                   valid: np.ndarray | None = None) -> dict[int, float]:
    return {int(k): dice(pred, ref, int(k), valid) for k in labels}


def hausdorff95(pred: np.ndarray, ref: np.ndarray, label: int, spacing=(1.0, 1.0, 1.0),
                valid: np.ndarray | None = None) -> float:
    """95th percentile of the symmetric surface distance (mm); NaN if either map lacks the label."""
    p, r = pred == label, ref == label
    if valid is not None:
        p, r = p & valid, r & valid
    if not p.any() or not r.any():
        return float("nan")
    box = _box(p | r, margin=2)
    p, r = p[box], r[box]
    sp, sr = _surface(p), _surface(r)
    dist_to_r = ndimage.distance_transform_edt(~sr, sampling=spacing)
    dist_to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    distances = np.concatenate([dist_to_r[sp], dist_to_p[sr]])
    return float(np.percentile(distances, 95))


def volume_ml(labels: np.ndarray, label: int, spacing) -> float:
    return float((labels == label).sum()) * float(np.prod(spacing)) / 1000.0


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))
