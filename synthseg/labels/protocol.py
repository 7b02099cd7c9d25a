"""The output label protocol: 16 head structures plus background, ids as in SIAM's "model 2".

This module is pure Python (no NumPy, no torch) so ``synthseg labels`` answers instantly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Structure:
    id: int
    short: str
    name: str
    description: str
    rgb: tuple[int, int, int]


STRUCTURES: tuple[Structure, ...] = (
    Structure(0, "background", "Background", "air outside the head and in sinuses/airways", (0, 0, 0)),
    Structure(1, "GM", "Cerebral cortex", "cerebral grey matter (cortex)", (205, 62, 78)),
    Structure(2, "WM", "White matter", "cerebral and cerebellar white matter, brain stem, ventral DC",
              (245, 245, 245)),
    Structure(3, "CSF", "Extra-ventricular CSF", "CSF in sulci and cisterns", (60, 60, 255)),
    Structure(4, "CSFv", "Ventricles", "lateral, inferior lateral, 3rd and 4th ventricles, choroid plexus",
              (120, 18, 134)),
    Structure(5, "cerGM", "Cerebellar cortex", "cerebellar grey matter", (230, 148, 34)),
    Structure(6, "Thal", "Thalamus", "thalamus", (0, 118, 14)),
    Structure(7, "Pal", "Pallidum", "globus pallidus", (13, 48, 255)),
    Structure(8, "Put", "Putamen", "putamen", (236, 13, 176)),
    Structure(9, "Caud", "Caudate", "caudate nucleus", (122, 186, 220)),
    Structure(10, "Accu", "Accumbens", "nucleus accumbens area", (255, 165, 0)),
    Structure(11, "Amyg", "Amygdala", "amygdala", (103, 255, 255)),
    Structure(12, "Hippo", "Hippocampus", "hippocampus", (220, 216, 20)),
    Structure(13, "Dura", "Dura mater", "dura mater incl. falx cerebri and tentorium", (255, 255, 0)),
    Structure(14, "vascular", "Vessels", "arteries, veins and venous sinuses", (200, 0, 0)),
    Structure(15, "Skull", "Skull", "cortical and cancellous bone", (255, 236, 200)),
    Structure(16, "Head", "Other head tissue", "skin, fat, muscle, eyes, mucosa, optic nerve",
              (180, 140, 110)),
)
NUM_CLASSES = len(STRUCTURES)  # 17 including background
# the brain as a volume (and a skull-stripping tool) sees it: tissue and ventricles, without the
# extra-ventricular CSF, dura, vessels, skull and other head tissue around it
BRAIN_IDS = (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12)
# the 12 brain structures, CSF included: what the mean-12 Dice, the hemisphere split and the coverage check read
BRAIN_STRUCTURE_IDS = tuple(range(1, 13))
INTRACRANIAL = tuple(range(1, 15))  # brain, CSF, dura and vessels: everything inside the skull (ICV)
FORMATS = ("text", "json", "tsv", "fslut", "itksnap")


def structure_table(fmt: str = "text") -> str:
    """The label table in one of ``FORMATS``: a viewer LUT, a BIDS dseg.tsv, JSON or plain text."""
    if fmt == "text":
        return "\n".join(f"{s.id:>3}  {s.short:<11} {s.name:<22} {s.description}" for s in STRUCTURES) + "\n"
    if fmt == "json":
        return json.dumps([asdict(s) for s in STRUCTURES], indent=2) + "\n"
    if fmt == "tsv":  # BIDS dseg.tsv
        rows = ["index\tname\tabbreviation\tcolor"]
        rows += [f"{s.id}\t{s.name}\t{s.short}\t#{s.rgb[0]:02x}{s.rgb[1]:02x}{s.rgb[2]:02x}" for s in STRUCTURES]
        return "\n".join(rows) + "\n"
    if fmt == "fslut":  # FreeSurfer colour LUT: id name R G B A (A = 0 means opaque)
        rows = ["#No. Label Name:                R   G   B   A"]
        rows += [f"{s.id:<4} {s.short:<26} {s.rgb[0]:>3} {s.rgb[1]:>3} {s.rgb[2]:>3}   0" for s in STRUCTURES]
        return "\n".join(rows) + "\n"
    if fmt == "itksnap":  # ITK-SNAP label description file
        rows = ["# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL"]
        for s in STRUCTURES:
            alpha, vis = (0, 0) if s.id == 0 else (1, 1)
            rows.append(f"{s.id:>5} {s.rgb[0]:>5} {s.rgb[1]:>4} {s.rgb[2]:>4} {alpha:>8} {vis:>2} {vis:>2}"
                        f'    "{s.name}"')
        return "\n".join(rows) + "\n"
    raise ValueError(f"unknown label table format {fmt!r}; choose one of {', '.join(FORMATS)}")
