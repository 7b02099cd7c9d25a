"""Whether the scan holds the whole brain: a brain cut by the field of view (a slab, a scan stopped short of the
vertex or of the cerebellum) has its structures cut too, and their volumes cover only the part in view.

Read from the labels: the area of the brain structures (ids 1-12) on each face of the field of view — the label map's
grid, or, where the scan holds voxels beyond what was scanned (NaN, a reslicing tool's fill), the box its scanned
voxels fill, so a partial-coverage scan resliced into a larger grid along its axes is read as cut too (onto a grid
turned against it, by 5° already, its cut goes unseen: the scanned voxels' box then spans the grid). A whole
head leaves them at most a few cm² — the brainstem where a scan stops at the medulla (chris_t1 3.2 cm², the 21 IXI
scans ≤ 1.8 cm², the skull-stripped scans 0); a cut through the cerebrum or the cerebellum leaves tens to hundreds (20
or 40 mm into the cerebellum 25–106 cm², below the vertex 68–166 cm², axial and coronal slabs of 30–90 mm 81–208 cm²
on their larger side; `python benchmarks/coverage.py`, benchmarks/RESULTS.md, "A field of view that cuts the brain").
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from synthseg.io.geometry import BoundingBox, voxel_sizes
from synthseg.labels.protocol import BRAIN_STRUCTURE_IDS

BRAIN_AT_EDGE_CM2 = 10.0  # brain on a face of the grid from this area on: the field of view cuts it there
_TOWARDS = {"R": "right", "L": "left", "A": "anterior", "P": "posterior", "S": "superior", "I": "inferior"}
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def brain_at_edges(labels: np.ndarray, affine: np.ndarray, min_cm2: float = BRAIN_AT_EDGE_CM2,
                   outside: np.ndarray | None = None) -> dict[str, float]:
    """``{side: cm²}`` for each face of the field of view holding at least ``min_cm2`` of brain structures, the side
    named by where that face lies in the head (``"superior"``, ``"left"``, …, from the affine's axis directions);
    empty when the brain lies inside the field of view. The field of view is the grid, or, given ``outside`` (voxels
    beyond what was scanned: a resliced scan's NaN or fill), the box the rest fills: a scan resliced into a larger
    grid is cut at that box's faces. (Not the border of ``outside`` itself: around a skull-stripped brain on a NaN
    background that border is the brain's surface.)"""
    if outside is not None:
        box = BoundingBox.around(~outside)
        labels, affine = labels[box.slices], box.cropped_affine(affine)
    codes = nib.aff2axcodes(affine)  # the direction each voxel axis grows towards
    spacing = voxel_sizes(affine)
    found = {}
    for axis, code in enumerate(codes):
        face_cm2 = float(np.prod(np.delete(spacing, axis))) / 100.0
        for end, towards in ((0, _OPPOSITE[code]), (-1, code)):
            face = np.take(labels, end, axis=axis)
            area = np.count_nonzero(np.isin(face, BRAIN_STRUCTURE_IDS)) * face_cm2
            if area >= min_cm2:
                found[_TOWARDS[towards]] = round(float(area), 1)
    return found


def coverage_warning(edges: dict[str, float]) -> str | None:
    """The warning for :func:`brain_at_edges`' result, or None when the brain is whole."""
    if not edges:
        return None
    sides = ", ".join(f"{side} {area:g} cm²" for side, area in edges.items())
    return (f"the field of view cuts the brain ({sides} of brain at its edge): the structures there are cut, and "
            "their volumes cover only the part in view")


def cut_on_opposite_sides(edges: dict[str, float]) -> bool:
    """Whether :func:`brain_at_edges`' result is a slab: the brain cut on two opposite sides of the head."""
    return any({_TOWARDS[code], _TOWARDS[_OPPOSITE[code]]} <= edges.keys() for code in "RAS")
