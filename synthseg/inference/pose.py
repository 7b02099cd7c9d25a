"""Head pose from a segmentation, and a working grid turned to undo it.

The network reads a scan in voxel space, where a head tilted in the scanner — or acquired on oblique
slices — appears turned. Training covers the templates' own poses plus the generator's rotations
(±15° by default); beyond that the labels degrade (`benchmarks/real_robustness.py`). The centroids of the
brain structures (left and right together, so each lies near the mid-sagittal plane) form a rigid
constellation: the rotation that best maps the model's reference constellation (the training templates',
stored in ``model.json`` as ``"pose"``) onto a scan's is the head's pose in the network's frame (Kabsch).
A scan turned further than a threshold is segmented again on a working grid turned with its head.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

POSE_IDS = (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12)  # cortex … hippocampus: brain structures, CSF left out
MIN_STRUCTURES = 6  # fewer centroids than this do not pin a rotation down
MIN_VOXELS = 8
# a head read as turned further is segmented again on a turned grid: above every real dev scan as acquired (IXI
# 1.6-11.3°, bert 8°, stroke 8-10°) and below the ±15° the generator rotates by, since the network under-reads a
# tilt (IXI pitched by 30°: reads from 6.8°)
POSE_TURN_DEGREES = 12.0
# the first pass reads a tilted head toward the training pose: the turned grid's labels are read again, and a
# read this far from the turn applied turns the grid anew, up to POSE_READS reads in all
POSE_REREAD_DEGREES = 5.0
POSE_READS = 3
# a constellation further than this from the reference (RMS, after the fit) is no head pose to trust: real
# heads fit within 1.3-2.9 mm as acquired and 1.5-5 mm turned by 30° (IXI, bert), up to 9.4 mm where a 30° pitch
# spoils the first pass's labels (two IXI scans, not turned); the demo phantom 5-7 mm (the cruder phantom before
# session 44: 9-22 mm), IXI reference labels with two thirds of the brain cut away 3-9 mm
MAX_RESIDUAL_MM = 7.0


def structure_centroids(labels: np.ndarray, spacing: float | np.ndarray, ids: Iterable[int] = POSE_IDS
                        ) -> dict[int, np.ndarray]:
    """Centroid (mm, in the voxel frame scaled by ``spacing``) of each structure with enough voxels."""
    flat = np.asarray(labels).reshape(-1).astype(np.int64)
    size = max(int(flat.max(initial=0)), max(ids)) + 1
    counts = np.bincount(flat, minlength=size)
    sums = [np.bincount(flat, weights=np.broadcast_to(
        np.arange(n, dtype=float).reshape([-1 if a == axis else 1 for a in range(3)]), labels.shape).reshape(-1),
        minlength=size) for axis, n in enumerate(labels.shape)]
    scale = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    return {int(s): np.array([total[s] for total in sums]) / counts[s] * scale
            for s in ids if counts[s] >= MIN_VOXELS}


def reference_pose(templates, recipe) -> dict:
    """The card's ``"pose"``: the mean constellation of the training templates, each in its voxel frame
    (the frame the generator renders in, before its random rotations)."""
    constellations = [structure_centroids(recipe.lookup(t.labels, "target"), np.sqrt((t.affine[:3, :3] ** 2).sum(0)))
                      for t in templates]
    reference = reference_constellation(constellations)
    return {"ids": list(reference), "centroids_mm": list(reference.values()), "templates": [t.name for t in templates]}


def reference_constellation(constellations: Iterable[dict[int, np.ndarray]]) -> dict[int, list[float]]:
    """The mean of several heads' centred constellations (structures every head has)."""
    constellations = list(constellations)
    common = set.intersection(*(set(c) for c in constellations)) if constellations else set()
    centred = [{k: c[k] - np.mean([c[j] for j in common], axis=0) for k in common} for c in constellations]
    return {k: np.round(np.mean([c[k] for c in centred], axis=0), 3).tolist() for k in sorted(common)}


def head_rotation(reference: dict, observed: dict[int, np.ndarray]) -> tuple[np.ndarray, float] | None:
    """The rotation ``R`` (3×3) with ``observed ≈ R · reference`` (both centred) and the fit's RMS residual
    (mm), or ``None`` when fewer than :data:`MIN_STRUCTURES` structures are shared."""
    common = sorted(set(int(k) for k in reference) & set(observed))
    if len(common) < MIN_STRUCTURES:
        return None
    ref = np.array([reference[k] if k in reference else reference[str(k)] for k in common], dtype=float)
    obs = np.array([observed[k] for k in common], dtype=float)
    ref, obs = ref - ref.mean(0), obs - obs.mean(0)
    u, _, vt = np.linalg.svd(obs.T @ ref)
    flip = np.sign(np.linalg.det(u @ vt))  # a proper rotation, never a reflection
    rotation = u @ np.diag([1.0, 1.0, flip]) @ vt
    return rotation, float(np.sqrt(((obs - ref @ rotation.T) ** 2).sum(1).mean()))


def rotation_degrees(rotation: np.ndarray) -> float:
    """The angle of a rotation about its axis."""
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0))))


def turned_grid(shape: tuple[int, ...], affine: np.ndarray, rotation: np.ndarray, centre_vox: np.ndarray
                ) -> tuple[tuple[int, ...], np.ndarray]:
    """An isotropic grid (``shape``, ``affine``) turned by ``rotation`` (in its voxel frame) about
    ``centre_vox``, grown to hold the whole original field of view: a head turned by ``rotation`` in the
    original grid sits in the reference pose in the new one."""
    turn = np.eye(4)
    turn[:3, :3] = rotation
    turn[:3, 3] = np.asarray(centre_vox, float) - rotation @ np.asarray(centre_vox, float)
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)])
    inside = (np.linalg.inv(turn) @ corners.T)[:3]  # the original corners in the turned grid's voxels
    low, high = np.floor(inside.min(axis=1)), np.ceil(inside.max(axis=1))
    shift = np.eye(4)
    shift[:3, 3] = low
    return tuple(int(n) for n in high - low + 1), np.asarray(affine, float) @ turn @ shift
