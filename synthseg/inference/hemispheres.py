"""Left and right from a segmentation that joins them: the mid-sagittal plane, and volumes per hemisphere.

The 16 output structures do not separate left from right (label protocol), yet a left hippocampus is what
many studies measure. The brain is nearly mirror-symmetric about its mid-sagittal plane, and the centroid of
each merged structure lies close to that plane: a plane fitted through the centroids starts the search, and
it is then turned and shifted to maximise the probability, under the network's own class probabilities, that
each brain voxel's mirror image carries its label. Against the lateralised references of the dev scans
(FreeSurfer's bert, 21 IXI scans against DLMUSE) the plane puts 99.4 % of the cortex's reference voxels and all of
the deep nuclei's on their own side, turned heads too (`python benchmarks/hemispheres.py`, `benchmarks/RESULTS.md`).

:func:`hemisphere_map` marks each brain voxel of a label map with its side (``_hemi.nii.gz``), which with the
labels reads as a lateralised segmentation.

Which side is left comes from the header: world coordinates are RAS, +x the subject's right. A header whose
left and right are swapped swaps them here too, as it does in every viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage, optimize

from synthseg.inference.pose import MIN_STRUCTURES, structure_centroids
from synthseg.io.geometry import voxel_volume_ml
from synthseg.labels.protocol import BRAIN_STRUCTURE_IDS, STRUCTURES

LATERALISED_IDS = BRAIN_STRUCTURE_IDS  # cortex … hippocampus: the structures split by hemisphere
LEFT, RIGHT = 1, 2  # the values of a hemisphere map (:func:`hemisphere_map`); 0 is every voxel outside LATERALISED_IDS
SYMMETRY_POINTS = 40_000  # brain voxels sampled for the symmetry score (seeded: the same plane every run)
# a plane turned further than this from the header's left-right axis is no mid-sagittal plane to trust
# (not a head, or a header whose axes are mislabelled)
MAX_TILT_DEGREES = 45.0
# the search: turns of the starting normal (radians) and a shift (mm) as the first simplex steps
SEARCH_STEPS = (0.05, 0.05, 2.0)


class NoMidsagittalPlane(Exception):
    """No plane to trust: why, in a few words (the segmenter's warning)."""


@dataclass(frozen=True)
class MidsagittalPlane:
    """The plane ``normal · x = offset_mm`` in world (RAS) mm, ``normal`` a unit vector towards the subject's
    right; ``symmetry`` is the mean probability that a brain voxel's mirror image has its label (0.59-0.65 on
    the dev scans)."""

    normal: tuple[float, float, float]
    offset_mm: float
    symmetry: float

    def right_of(self, shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
        """Boolean mask over a grid (``shape``, ``affine``): True where a voxel's centre lies right of the plane."""
        weights, constant = self.distance_terms(affine)
        distance = np.full(tuple(shape), constant, dtype=np.float32)
        for axis, (n, weight) in enumerate(zip(shape, weights)):
            distance += (np.arange(n, dtype=np.float32) * weight).reshape([-1 if a == axis else 1 for a in range(3)])
        return distance > 0

    def distance_terms(self, affine: np.ndarray) -> tuple[np.ndarray, np.float32]:
        """``(weights, constant)``: a voxel's signed distance (mm, positive to the right) from the plane is
        ``Σ weights[axis] · index[axis] + constant`` on the grid of ``affine`` (float32, as the masks use it)."""
        affine = np.asarray(affine, dtype=np.float64)
        normal = np.asarray(self.normal)
        return (normal @ affine[:3, :3]).astype(np.float32), np.float32(normal @ affine[:3, 3] - self.offset_mm)

    def tilt_degrees(self) -> float:
        """Angle between the plane's normal and the header's left-right axis."""
        return float(np.degrees(np.arccos(np.clip(abs(self.normal[0]), 0.0, 1.0))))

    @classmethod
    def from_dict(cls, plane: dict) -> "MidsagittalPlane":
        """The plane back from :meth:`as_dict` (``result.hemispheres["plane"]``, ``_qc.json``)."""
        return cls(tuple(float(v) for v in plane["normal_ras"]), float(plane["offset_mm"]), float(plane["symmetry"]))

    def as_dict(self) -> dict:
        return {"normal_ras": [round(v, 5) for v in self.normal], "offset_mm": round(self.offset_mm, 3),
                "symmetry": round(self.symmetry, 4), "tilt_degrees": round(self.tilt_degrees(), 2)}


def _world(indices: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return indices @ affine[:3, :3].T + affine[:3, 3]


def centroid_plane(labels: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, float]:
    """``(normal, offset)`` of the plane fitted (least squares) through the world centroids of the merged
    brain structures, the normal turned towards +x (:class:`NoMidsagittalPlane` with fewer than
    ``MIN_STRUCTURES`` of them)."""
    centroids = structure_centroids(labels, 1.0)  # voxel indices
    if len(centroids) < MIN_STRUCTURES:
        raise NoMidsagittalPlane(f"{len(centroids)} brain structures found, fewer than {MIN_STRUCTURES}")
    world = _world(np.array(list(centroids.values())), np.asarray(affine, dtype=np.float64))
    centre = world.mean(0)
    normal = np.linalg.svd(world - centre)[2][-1]
    normal = normal if normal[0] >= 0 else -normal
    return normal, float(normal @ centre)


def midsagittal_plane(probs: np.ndarray, affine: np.ndarray, points: int = SYMMETRY_POINTS) -> MidsagittalPlane:
    """The mid-sagittal plane of a head from class probabilities ``probs`` (classes, X, Y, Z) on a grid
    (``affine``): the centroid plane (:func:`centroid_plane`) refined for mirror symmetry (Nelder-Mead over two
    turns and a shift). :class:`NoMidsagittalPlane` when too few brain structures are found or the plane is
    tilted more than ``MAX_TILT_DEGREES`` from the header's left-right axis."""
    affine = np.asarray(affine, dtype=np.float64)
    labels = np.asarray(probs).argmax(0)
    normal0, offset0 = centroid_plane(labels, affine)
    indices = np.argwhere((labels >= LATERALISED_IDS[0]) & (labels <= LATERALISED_IDS[-1]))
    if len(indices) > points:
        indices = indices[np.random.default_rng(0).choice(len(indices), points, replace=False)]
    own = labels[tuple(indices.T)]
    by_structure = np.argsort(own, kind="stable")  # each structure's points one slice, in their sampled order
    indices, own = indices[by_structure], own[by_structure]
    positions = _world(indices.astype(np.float64), affine)
    to_voxels = np.linalg.inv(affine)
    groups = [(s, slice(*np.searchsorted(own, [s, s + 1]))) for s in LATERALISED_IDS if np.any(own == s)]
    helper = np.array([0.0, 0.0, 1.0]) if abs(normal0[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    turn_a = np.cross(normal0, helper)
    turn_a /= np.linalg.norm(turn_a)
    turn_b = np.cross(normal0, turn_a)

    def plane(x: np.ndarray) -> tuple[np.ndarray, float]:
        normal = normal0 + x[0] * turn_a + x[1] * turn_b
        return normal / np.linalg.norm(normal), offset0 + x[2]

    def asymmetry(x: np.ndarray) -> float:
        normal, offset = plane(x)
        mirrored = positions - 2.0 * (positions @ normal - offset)[:, None] * normal
        voxels = _world(mirrored, to_voxels).T
        kept = sum(float(ndimage.map_coordinates(probs[s], voxels[:, group], order=1, mode="constant").sum())
                   for s, group in groups)
        return -kept / len(positions)

    simplex = np.vstack([np.zeros(3), np.diag(SEARCH_STEPS)])
    fit = optimize.minimize(asymmetry, np.zeros(3), method="Nelder-Mead",
                            options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-5, "maxiter": 400})
    normal, offset = plane(fit.x)
    if normal[0] < 0:  # turned past the header's anterior-posterior axis: keep the normal towards +x
        normal, offset = -normal, -offset
    found = MidsagittalPlane(tuple(float(v) for v in normal), float(offset), float(-fit.fun))
    if found.tilt_degrees() > MAX_TILT_DEGREES:
        raise NoMidsagittalPlane(f"the plane found is {found.tilt_degrees():.0f} degrees from the header's "
                                 f"left-right axis (more than {MAX_TILT_DEGREES:g})")
    return found


def hemisphere_volumes(sources: Sequence[tuple[np.ndarray, np.ndarray]], plane: MidsagittalPlane
                       ) -> dict[str, dict[str, float]]:
    """``{"left": {structure: ml}, "right": {...}}`` for the brain structures: the expected volumes of
    :func:`synthseg.inference.segmenter.soft_volumes` (each working grid's probabilities ``(probs, affine)``
    summed on either side of the plane, averaged over the grids), so left + right is the structure's volume."""
    sides = np.zeros((2, len(LATERALISED_IDS)))
    for probs, affine in sources:
        voxel_ml = voxel_volume_ml(affine)
        right = plane.right_of(probs.shape[1:], affine)
        for row, mask in enumerate((~right, right)):
            sides[row] += [float(probs[s][mask].sum(dtype=np.float64)) * voxel_ml for s in LATERALISED_IDS]
    sides /= len(sources)
    return {side: {STRUCTURES[s].short: round(float(v), 3) for s, v in zip(LATERALISED_IDS, row)}
            for side, row in zip(("left", "right"), sides)}


def hemisphere_map(labels: np.ndarray, affine: np.ndarray, plane: MidsagittalPlane) -> np.ndarray:
    """A uint8 map on the labels' grid: ``LEFT`` (1) or ``RIGHT`` (2) where ``labels`` holds a brain structure
    (``LATERALISED_IDS``), 0 elsewhere; with the labels, it reads as a lateralised segmentation (``_hemi.nii.gz``)."""
    # only these voxels: a fine grid stays cheap
    brain = np.nonzero((labels >= LATERALISED_IDS[0]) & (labels <= LATERALISED_IDS[-1]))
    weights, constant = plane.distance_terms(affine)
    distance = np.full(len(brain[0]), constant, dtype=np.float32)
    for index, weight in zip(brain, weights):  # the sums of right_of, in its order: the same side on its edge
        distance += index.astype(np.float32) * weight
    sides = np.zeros(labels.shape, dtype=np.uint8)
    sides[brain] = np.where(distance > 0, RIGHT, LEFT)
    return sides
