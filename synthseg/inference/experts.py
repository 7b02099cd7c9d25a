"""Contrast experts: copies of the general model fine-tuned on one contrast family, chosen per scan.

The general model segments every scan first. The mean normalised intensity of each brain structure
under that segmentation is the scan's *contrast signature*; the MR expert whose signature (measured at
export on clean synthetic renders of its contrast) correlates best with it, if at least
``MIN_CORRELATION``, segments the scan again. CT scans go to the CT expert. Anything else — an unusual
contrast, too little brain in view — keeps the general model's result, which covers any contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# GM, WM, CSF, ventricles, cerebellar cortex, thalamus, pallidum, putamen, caudate, hippocampus:
# large enough to be found at 2 mm in any head scan, and together they order every MR contrast.
SIGNATURE_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12)
# Real scans correlate less than renders: the 21 IXI T1 scans reach 0.72-0.90 (central brightening lifts
# the deep nuclei over white matter), the jittered held-out renders 0.18-0.95 (best expert). At 0.5,
# routing picks an expert for every real MR scan in the dev set and scores 0.723 on the 16 MR held-out
# renders, against 0.720 at 0.7 and 0.728 with each render sent to its own contrast's expert
# (python benchmarks/routing.py). Rank correlation (0.723 at best, stroke T2 sent to PD) and distances
# between min-max scaled or raw signatures (<= 0.717) did worse.
MIN_CORRELATION = 0.5
MIN_VOXELS = 20


@dataclass
class Expert:
    contrast: str  # t1 / t2 / flair / pd (MR, chosen by signature) or ct (chosen by modality)
    network: torch.nn.Module
    signature: list[float | None] | None  # per SIGNATURE_IDS (None: not measured); None for CT


def contrast_signature(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean intensity per structure of ``SIGNATURE_IDS`` (NaN where a structure has < MIN_VOXELS)."""
    flat_labels, flat_image = labels.reshape(-1), image.reshape(-1).astype(np.float64)
    counts = np.bincount(flat_labels, minlength=max(SIGNATURE_IDS) + 1)
    sums = np.bincount(flat_labels, weights=flat_image, minlength=max(SIGNATURE_IDS) + 1)
    ids = list(SIGNATURE_IDS)
    return np.where(counts[ids] >= MIN_VOXELS, sums[ids] / np.maximum(counts[ids], 1), np.nan)


def signature_as_list(signature: np.ndarray) -> list[float | None]:
    """A signature as stored in model cards and ``_qc.json``: rounded, ``None`` where not measured."""
    return [None if np.isnan(v) else round(float(v), 4) for v in signature]


def choose_expert(experts: list[Expert], modality: str, signature: np.ndarray | None
                  ) -> tuple[Expert | None, float]:
    """The expert for a scan and the correlation that chose it (1.0 for CT, which needs no signature;
    ``None`` = keep the general model)."""
    if modality == "ct":
        ct = [e for e in experts if e.contrast == "ct"]
        return (ct[0], 1.0) if ct else (None, 0.0)
    best, best_r = None, -1.0
    for expert in experts if signature is not None else []:
        if expert.signature is None:
            continue
        reference = np.asarray(expert.signature, dtype=np.float64)
        known = ~np.isnan(signature) & ~np.isnan(reference)
        if known.sum() < 4 or np.ptp(signature[known]) == 0:
            continue
        r = float(np.corrcoef(signature[known], reference[known])[0, 1])
        if r > best_r:
            best, best_r = expert, r
    return (best, best_r) if best is not None and best_r >= MIN_CORRELATION else (None, best_r)
