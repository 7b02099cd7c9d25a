"""Contrast experts: copies of the general model fine-tuned on one contrast family, chosen per scan.

The general model segments every scan first. The mean normalised intensity of each brain structure
under that segmentation is the scan's *contrast signature*. A scan whose signature correlates at least
``MIN_CORRELATION`` with some MR expert's reference signature (measured at export on clean synthetic
renders of its contrast) is segmented again by an MR expert: the one the model's
:class:`ContrastClassifier` picks when the model has been calibrated (``synthseg calibrate``), else the
best-correlated one. CT scans go to the CT expert. Anything else — an unusual contrast, too little brain
in view — keeps the general model's result, which covers any contrast.

The classifier exists because clean references and real passes disagree: at 2 mm the general pass
labels partial-volume voxels as sulcal CSF, which pulls a T2 scan's CSF mean towards PD's (benchmarks/
RESULTS.md, "Routing on other draws"). It is a linear discriminant fitted on the signatures the general
pass itself reads on jittered renders of the training templates, so it must be refitted whenever the
general network changes (exporting a new one drops it).
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
# Shrinkage of the classes' pooled covariance towards its mean variance: 0.001-0.03 scored alike offline
# on 80 held-out MR renders (benchmarks/RESULTS.md), 0.1 and more lost renders.
SHRINKAGE = 0.01


@dataclass
class FineGrid:
    """A network of an expert's contrast trained on a working grid finer than the model's: with test-time
    augmentation it segments fine scans on that grid too, averaged with the expert's own grids."""

    network: torch.nn.Module
    spacing_mm: float


@dataclass
class Expert:
    contrast: str  # t1 / t2 / flair / pd (MR, chosen by signature) or ct (chosen by modality)
    network: torch.nn.Module
    signature: list[float | None] | None  # per SIGNATURE_IDS (None: not measured); None for CT
    fine: FineGrid | None = None


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


def standardised(signature: np.ndarray) -> np.ndarray:
    """A signature as the classifier reads it: zero mean and unit spread over the measured structures
    (brightness and contrast of the scan removed), 0 where a structure was not measured."""
    signature = np.asarray(signature, dtype=np.float64)
    known = ~np.isnan(signature)
    out = np.zeros_like(signature)
    spread = signature[known].std() if known.sum() > 1 else 0.0
    if spread > 0:
        out[known] = (signature[known] - signature[known].mean()) / spread
    return out


@dataclass
class ContrastClassifier:
    """Linear discriminant analysis of :func:`standardised` signatures: one linear score per contrast,
    the highest wins (equal priors)."""

    contrasts: tuple[str, ...]
    weights: np.ndarray  # (contrasts, len(SIGNATURE_IDS))
    offsets: np.ndarray  # (contrasts,)

    @classmethod
    def fit(cls, signatures: np.ndarray, contrasts: list[str], shrinkage: float = SHRINKAGE
            ) -> "ContrastClassifier":
        """Fit on raw signatures (one row per scan) and each scan's contrast; at least two contrasts."""
        names = tuple(dict.fromkeys(contrasts))
        if len(names) < 2:
            raise ValueError(f"a contrast classifier needs scans of at least two contrasts, got {names}")
        if not 0 <= shrinkage <= 1:
            raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
        x = np.stack([standardised(s) for s in signatures])
        y = np.array([names.index(c) for c in contrasts])
        means = np.stack([x[y == k].mean(0) for k in range(len(names))])
        residuals = x - means[y]
        covariance = residuals.T @ residuals / max(1, len(x) - len(names))
        dims = covariance.shape[0]
        covariance = (1 - shrinkage) * covariance + shrinkage * np.trace(covariance) / dims * np.eye(dims)
        # standardising removes two degrees of freedom: a pseudo-inverse keeps the fit defined at no shrinkage
        weights = means @ np.linalg.pinv(covariance)
        return cls(names, weights, -0.5 * (weights * means).sum(1))

    def scores(self, signature: np.ndarray) -> dict[str, float]:
        """Each contrast's discriminant score for a raw signature (higher: more likely that contrast)."""
        values = self.weights @ standardised(signature) + self.offsets
        return {c: float(v) for c, v in zip(self.contrasts, values)}

    def to_card(self) -> dict:
        return {"method": "lda", "contrasts": list(self.contrasts),
                "weights": np.round(self.weights, 6).tolist(), "offsets": np.round(self.offsets, 6).tolist()}

    @classmethod
    def from_card(cls, entry: dict) -> "ContrastClassifier":
        weights, offsets = np.asarray(entry["weights"], float), np.asarray(entry["offsets"], float)
        contrasts = tuple(entry["contrasts"])
        if weights.shape != (len(contrasts), len(SIGNATURE_IDS)) or offsets.shape != (len(contrasts),):
            raise ValueError(f"weights {weights.shape} / offsets {offsets.shape} do not fit "
                             f"{len(contrasts)} contrasts x {len(SIGNATURE_IDS)} structures")
        return cls(contrasts, weights, offsets)


def choose_expert(experts: list[Expert], modality: str, signature: np.ndarray | None,
                  classifier: ContrastClassifier | None = None) -> tuple[Expert | None, float]:
    """The expert for a scan and the best correlation with an MR expert's reference signature, which
    lets the scan reach an MR expert (1.0 for CT, which needs no signature; ``None`` = keep the general
    model). Among the MR experts, ``classifier`` picks when given, else the best correlation does."""
    if modality == "ct":
        ct = [e for e in experts if e.contrast == "ct"]
        return (ct[0], 1.0) if ct else (None, 0.0)
    correlations: dict[str, float] = {}
    for expert in experts if signature is not None else []:
        if expert.signature is None:
            continue
        reference = np.asarray(expert.signature, dtype=np.float64)
        known = ~np.isnan(signature) & ~np.isnan(reference)
        if known.sum() < 4 or np.ptp(signature[known]) == 0:
            continue
        correlations[expert.contrast] = float(np.corrcoef(signature[known], reference[known])[0, 1])
    best_r = max(correlations.values(), default=-1.0)
    if best_r < MIN_CORRELATION:
        return None, best_r
    if classifier is not None:
        scores = classifier.scores(signature)
        pick = max((c for c in correlations if c in scores), key=scores.get)
    else:
        pick = max(correlations, key=correlations.get)
    return next(e for e in experts if e.contrast == pick), best_r
