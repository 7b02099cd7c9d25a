"""Label-map clean-up after the argmax: stray islands of a structure go to the structure around them.

A voxelwise argmax leaves small detached islands (specks of cortex or white matter outside the brain, of
caudate in white matter); on real T1 scans they cost cortex, white matter and cerebellar cortex Dice. Each
structure listed in :data:`ISLAND_STRUCTURES` keeps the connected components (26-connectivity) of at least
``min_fraction`` of its largest one; every smaller island takes the label most frequent among its voxels'
neighbours. Left and right are one label, so both hemispheres' bodies stay.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from synthseg.io.geometry import BoundingBox

# Compact or sheet-like structures. Left alone: CSF (sulci and cisterns are fragmented by nature), ventricles
# (the 4th can sit apart from the others at this resolution), dura, vessels, skull and head.
ISLAND_STRUCTURES: tuple[int, ...] = (1, 2, 5, 6, 7, 8, 9, 10, 11, 12)
MIN_FRACTION = 0.05

_CONNECTIVITY = np.ones((3, 3, 3), bool)


def remove_islands(labels: np.ndarray, structures: Sequence[int] = ISLAND_STRUCTURES,
                   min_fraction: float = MIN_FRACTION) -> np.ndarray:
    """A copy of the 3-D integer ``labels`` whose islands of each listed structure smaller than
    ``min_fraction`` × that structure's largest component carry the other label most frequent around them."""
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
    out = labels.copy()
    num_labels = int(out.max()) + 1
    for structure in structures:
        mask = out == structure
        if not mask.any():
            continue
        box = BoundingBox.around(mask, margin=1).slices  # the margin holds the islands' neighbours
        components, count = ndimage.label(mask[box], structure=_CONNECTIVITY)
        if count < 2:
            continue
        sizes = np.bincount(components.ravel())[1:]
        is_island = sizes < min_fraction * sizes.max()
        if not is_island.any():
            continue
        island_of = np.where(np.concatenate([[False], is_island]), np.arange(count + 1), 0)
        islands = island_of[components]  # island id per voxel, 0 elsewhere
        region = out[box]
        coords = np.nonzero(islands)
        votes = _neighbour_votes(region, coords, islands[coords], count + 1, num_labels)
        votes[:, structure] = -1
        region[coords] = votes.argmax(1)[islands[coords]]
    return out


def _neighbour_votes(labels: np.ndarray, coords: tuple[np.ndarray, ...], ids: np.ndarray, num_ids: int,
                     num_labels: int) -> np.ndarray:
    """``(num_ids, num_labels)`` counts of the labels found among the 26 neighbours of each island's voxels
    (by island id). Counted over all offsets alike, so the votes do not depend on the array's orientation."""
    votes = np.zeros(num_ids * num_labels, np.int64)
    points = np.stack(coords, axis=1)
    for offset in np.argwhere(_CONNECTIVITY) - 1:
        if not offset.any():
            continue
        neighbours = points + offset
        valid = ((neighbours >= 0) & (neighbours < labels.shape)).all(axis=1)
        found = labels[tuple(neighbours[valid].T)]
        votes += np.bincount(ids[valid] * num_labels + found, minlength=num_ids * num_labels)
    return votes.reshape(num_ids, num_labels)
