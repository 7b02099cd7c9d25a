"""Tissue types: plausible MR intensities per contrast and CT Hounsfield ranges.

MR values are on a 0-255 scale (the generator jitters them, they mainly fix orderings); CT ranges
are in HU. Every intensity class of a recipe names one tissue type.

The T1 values of the deep grey nuclei and the limbic grey matter follow real scans put on this scale
(ventricles at 30, the white matter next to each structure at 185): the 21 IXI T1 scans with their
MUSE labels and FreeSurfer's bert (norm.mgz, aseg) gave thalamus 178 / 167, pallidum 189 / 181,
putamen 176 / 153, caudate 170 / 139, hippocampus 145 / 130, amygdala 147 / 139, cortex 103 / 131
(``python benchmarks/t1_contrast.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tissue:
    t1: float
    t2: float
    flair: float
    pd: float
    ct: tuple[float, float]


TISSUES: dict[str, Tissue] = {
    "air": Tissue(0, 0, 0, 0, (-1000, -950)),
    "white_matter": Tissue(185, 75, 115, 150, (22, 32)),
    "grey_matter": Tissue(115, 115, 140, 190, (33, 45)),
    "limbic_grey": Tissue(140, 115, 140, 190, (33, 45)),  # hippocampus, amygdala: brighter than cortex in T1
    "deep_grey": Tissue(150, 95, 125, 175, (30, 42)),
    "thalamus": Tissue(170, 90, 120, 165, (28, 38)),
    "pallidum": Tissue(180, 60, 105, 155, (32, 45)),
    "csf": Tissue(30, 235, 20, 215, (0, 15)),
    "choroid": Tissue(70, 170, 90, 190, (20, 60)),
    "wm_lesion": Tissue(120, 170, 200, 185, (10, 25)),
    "blood": Tissue(70, 50, 90, 150, (40, 300)),
    "eye": Tissue(35, 230, 40, 200, (0, 20)),
    "fat": Tissue(230, 170, 190, 200, (-120, -60)),
    "muscle": Tissue(90, 55, 80, 120, (35, 60)),
    "mucosa": Tissue(100, 200, 150, 190, (20, 50)),
    "skin": Tissue(130, 100, 120, 160, (20, 60)),
    "dura": Tissue(60, 45, 60, 90, (40, 80)),
    "cortical_bone": Tissue(12, 10, 12, 18, (700, 1900)),
    "cancellous_bone": Tissue(160, 110, 130, 130, (200, 700)),
}
MR_CONTRASTS = ("t1", "t2", "flair", "pd")
CONTRASTS = (*MR_CONTRASTS, "ct")  # every contrast family a sample, a render or an expert can have
