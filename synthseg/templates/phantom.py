"""A procedural head label map in the 16 output ids, at any resolution, seeded.

Shapes are placed in millimetres, roughly where an adult brain has them in MNI space, so the same seed
draws the same head at any voxel size: a cerebrum of two hemispheres with temporal lobes, folded by
sulci whose banks are lined with a cortical ribbon; a cerebellum with folia, a brain stem running into
the spinal cord; lateral, third and fourth ventricles; the deep nuclei, amygdala and hippocampus. The
cranial cavity follows the brain (subarachnoid CSF, dura with falx and tentorium, sagittal and transverse
sinuses) inside a skull and scalp, with a face, airways and a neck. It is a test object and the
built-in demo's input, not anyone's anatomy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FIELD_OF_VIEW_MM = (176.0, 216.0, 200.0)
GRID_CENTRE_MNI = np.array([0.0, -15.0, 0.0])  # MNI-like millimetres at the centre of the field of view
CEREBRUM_CENTRE, CEREBRUM_RADII = (0, -17, 14), (64, 86, 62)
TEMPORAL_LOBE = ((38, -14, -16), (21, 38, 21))  # right lobe's centre and radii; mirrored
CISTERN_MM = 8.0  # gaps between parts of the brain up to twice this wide hold CSF, not bone
SPHERE_MM = 70.0  # radius on which the sulcal pattern is drawn before it is carried along the radii
FASTIGIUM = (-44, -28)  # (y, z) of the fourth ventricle's roof, where the cerebellar fissures converge

GM, WM, CSF, CSFV, CER_GM, THAL, PAL, PUT, CAUD, ACCU, AMYG, HIPPO, DURA, VESSEL, SKULL, HEAD = range(1, 17)

# (label, centre, radii) per side (x mirrored), in MNI-like millimetres; painted in this order
DEEP_STRUCTURES = (
    (THAL, (12, -19, 6), (8.5, 14, 9.5)),
    (CAUD, (15, 13, 9), (5.5, 10, 9)),  # head of the caudate
    (CAUD, (18, -8, 19), (3, 16, 4)),  # body, lateral to the ventricle
    (PUT, (25, 2, 1), (6, 16, 11)),
    (PAL, (18, 0, -2), (4, 9, 6)),
    (ACCU, (10, 11, -7), (5, 5, 4)),
    (AMYG, (23, -4, -19), (7, 7, 7)),
    (HIPPO, (29, -16, -18), (6, 9, 5)),
    (HIPPO, (29, -28, -11), (5, 9, 5)),
    (HIPPO, (23, -37, -3), (4, 7, 5)),
)
LATERAL_VENTRICLE = (  # frontal horn, body, atrium, occipital and temporal horns
    ((9, 17, 12), (5, 12, 8)),
    ((11, -10, 20), (6, 22, 5)),
    ((23, -37, 13), (7, 9, 8)),
    ((21, -55, 8), (4, 12, 5)),
    ((30, -31, 1), (4, 6, 9)),
    ((34, -20, -10), (3, 14, 3)),
)


def make_phantom(spacing: float = 1.0, seed: int = 0, field_of_view=FIELD_OF_VIEW_MM
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(labels uint8, affine)`` on an RAS grid with the head centred on the origin. A head is drawn once
    per process for each voxel size, seed and field of view (seconds at 1 mm); callers get their own copies."""
    labels, affine = _drawn_phantom(float(spacing), int(seed), tuple(float(f) for f in field_of_view))
    return labels.copy(), affine.copy()


@dataclass
class _Grid:
    """The phantom's voxel grid: millimetre coordinates (sparse ramps), voxel size, the head's size and the draw's
    random numbers, with the shapes every part is made of."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    spacing: float
    size: float  # the head's size, around 1
    rng: np.random.Generator

    def ellipsoid(self, centre, radii, scale: float | None = None) -> np.ndarray:
        """Voxels inside an ellipsoid (mm), its radii times ``scale`` or by default a per-structure size drawn
        around the head's."""
        if scale is None:
            scale = self.size * (1 + 0.05 * self.rng.standard_normal())
        r = np.asarray(radii, np.float32) * scale
        return (((self.x - centre[0]) / r[0]) ** 2 + ((self.y - centre[1]) / r[1]) ** 2
                + ((self.z - centre[2]) / r[2]) ** 2 <= 1)

    def distance_inside(self, mask: np.ndarray) -> np.ndarray:
        """Millimetres from each voxel of ``mask`` to the nearest voxel outside it (0 outside); the same as
        scipy's ``distance_transform_edt``, an order of magnitude faster."""
        import SimpleITK as sitk

        outside = sitk.GetImageFromArray((~mask).astype(np.uint8))
        outside.SetSpacing((self.spacing,) * 3)
        distance = sitk.SignedMaurerDistanceMap(outside, insideIsPositive=False, squaredDistance=False,
                                                useImageSpacing=True)
        return np.maximum(sitk.GetArrayViewFromImage(distance), 0)

    def points(self, where: np.ndarray) -> np.ndarray:
        """Millimetre coordinates ``(N, 3)`` of the voxels in ``where``."""
        return np.stack([np.broadcast_to(a, where.shape)[where] for a in (self.x, self.y, self.z)], axis=1)


@functools.lru_cache(maxsize=8)
def _drawn_phantom(spacing: float, seed: int, field_of_view: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = tuple(int(round(f / spacing)) for f in field_of_view)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * spacing
    axes = [((np.arange(n) - (n - 1) / 2) * spacing + c).astype(np.float32) for n, c in zip(shape, GRID_CENTRE_MNI)]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    grid = _Grid(x, y, z, spacing, 1 + 0.04 * rng.standard_normal(), rng)
    size, ellipsoid, distance_inside = grid.size, grid.ellipsoid, grid.distance_inside

    # brain tissue: hemispheres, temporal lobes, cerebellum, brain stem and cord
    base = np.where((np.abs(x) < 22) & (y < 12), -12.0, -22 + 0.12 * np.maximum(y - 30, 0))  # cisterns, orbits
    cerebrum = ellipsoid(CEREBRUM_CENTRE, CEREBRUM_RADII, size) & (z > base)
    (tx, ty, tz), temporal_radii = TEMPORAL_LOBE
    for side in (-1, 1):
        cerebrum |= ellipsoid((side * tx, ty, tz), temporal_radii, size)
    cerebrum &= ~((y < -38) & (z < -8 - 0.006 * x ** 2))  # the tentorium's slope over the posterior fossa
    stem = ellipsoid((0, -25, -28), (15, 13, 15), size) | ellipsoid((0, -22, -6), (13, 12, 10), size)
    stem |= ((x / 10.5) ** 2 + ((y + 34 - 0.15 * (z + 40)) / 10) ** 2 <= size ** 2) & (z < -20)
    cerebellum = ellipsoid((0, -63, -31), (11, 24, 20), size)  # vermis
    for side in (-1, 1):
        cerebellum |= ellipsoid((side * 24, -65, -35), (28, 28, 21), size)
    cerebellum &= ~ndimage.binary_dilation(stem, iterations=max(1, round(2 / spacing)))
    cerebrum &= ~ndimage.binary_dilation(cerebellum, iterations=max(1, round(3 / spacing))) & ~stem
    # interhemispheric fissure, closed over the corpus callosum and diencephalon; it bends a little, as a real
    # one does, so no sagittal slice lies in it everywhere
    phases = rng.uniform(0, 2 * np.pi, 2)
    from_midline = x - 2 * np.sin(2 * np.pi * y / 150 + phases[0]) - 1.2 * np.sin(2 * np.pi * z / 120 + phases[1])
    fissure = np.abs(from_midline) <= max(1.2, spacing / 2 + 0.01)
    cerebrum &= ~(fissure & ~ellipsoid((0, -6, 8), (20, 40, 20), size))

    labels = np.zeros(shape, np.uint8)
    _paint_head(labels, grid, from_midline, cerebrum, cerebellum, stem)

    # cortex: a ribbon lining the outer surface and the banks of the sulci
    depth = distance_inside(cerebrum | stem)
    sulci = _sulci(grid, cerebrum & (depth < 22), depth)
    for side in (-1, 1):  # the lateral (Sylvian) fissure above each temporal lobe
        q = np.sqrt(((x - side * tx) / temporal_radii[0]) ** 2 + ((y - ty) / temporal_radii[1]) ** 2
                    + ((z - tz) / temporal_radii[2]) ** 2)
        sulci |= cerebrum & (np.abs(q - 1) * temporal_radii[2] <= 1.0) & (side * x > 26) & (y > -45) & (z > -30)
    tissue = cerebrum & ~sulci
    labels[cerebrum] = CSF
    labels[tissue] = WM
    labels[tissue & (distance_inside(tissue | stem) <= max(rng.uniform(2.3, 3.0), spacing))] = GM
    labels[stem] = WM
    folia = _folia(grid, cerebellum & (distance_inside(cerebellum) < 8))
    labels[cerebellum] = CSF
    labels[cerebellum & ~folia] = CER_GM
    for side in (-1, 1):  # cerebellar white matter
        labels[ellipsoid((side * 17, -58, -30), (10, 14, 8)) & cerebellum] = WM

    # deep structures and ventricles, mirrored, inside the brain; ventricles grow with a head's age
    brain = cerebrum | stem | cerebellum
    ventricle_scale = size * rng.uniform(0.8, 1.25)
    for side in (-1, 1):
        for label, (cx, cy, cz), radii in DEEP_STRUCTURES:
            labels[ellipsoid((side * cx, cy, cz), radii) & brain] = label
        for (cx, cy, cz), radii in LATERAL_VENTRICLE:
            labels[ellipsoid((side * cx, cy, cz), radii, ventricle_scale) & brain] = CSFV
    third = ellipsoid((0, -15, 2), (max(2.0, spacing / 2 + 0.5), 14, 9), ventricle_scale)
    labels[(third | ellipsoid((0, -44, -30), (6, 4, 8), ventricle_scale)) & brain] = CSFV  # third, fourth
    return labels, affine


def _paint_head(labels: np.ndarray, grid: _Grid, from_midline: np.ndarray, cerebrum: np.ndarray,
                cerebellum: np.ndarray, stem: np.ndarray) -> None:
    """Cranial cavity (CSF), dura with falx and tentorium, sinuses, skull, scalp, face and neck."""
    x, y, z, spacing, rng = grid.x, grid.y, grid.z, grid.spacing, grid.rng
    ellipsoid, distance_inside = grid.ellipsoid, grid.distance_inside
    csf_mm, skull_mm, scalp_mm = (max(mm, spacing) for mm in (  # at least a voxel each
        rng.uniform(2.5, 4.0), rng.uniform(5.0, 7.5), rng.uniform(5.0, 8.0)))
    dura_mm = 1.0  # on grids coarser than 1 mm the shell shows in patches; the falx and tentorium stay whole
    brain = cerebrum | cerebellum | stem
    # the cavity holds the brain closed over its gaps (cisterns, the tentorial notch), then a rim of CSF
    closed = distance_inside(distance_inside(~brain) <= CISTERN_MM) > CISTERN_MM
    outside = distance_inside(~closed)
    head = outside <= csf_mm + dura_mm + skull_mm + scalp_mm
    head |= ellipsoid((0, 60, -42), (46, 42, 44))  # face
    head |= ((x / 52) ** 2 + ((y + 22) / 58) ** 2 <= 1) & (z < -40)  # neck
    labels[head] = HEAD
    for side in (-1, 1):
        labels[ellipsoid((side * 20, 52, -55), (10, 13, 12)) & head] = 0  # maxillary sinuses
    labels[ellipsoid((0, 62, -52), (7, 22, 16)) & head] = 0  # nasal airway
    labels[outside <= csf_mm + dura_mm + skull_mm] = SKULL
    labels[outside <= csf_mm + dura_mm] = DURA
    cavity = outside <= csf_mm
    labels[cavity] = CSF

    # dural folds: the falx between the hemispheres, the tentorium between cerebrum and cerebellum
    gap = cavity & ~brain
    labels[gap & (np.abs(from_midline) <= spacing / 2) & (z > 10 - 0.25 * np.abs(y + 20))] = DURA
    from_cerebrum, from_cerebellum = distance_inside(~cerebrum), distance_inside(~cerebellum)
    tentorium = gap & (np.abs(from_cerebrum - from_cerebellum) <= spacing / 2 + 0.3)
    labels[tentorium & (from_cerebrum + from_cerebellum <= 10) & (y < -30)] = DURA
    # superior sagittal sinus (triangular, along the vault) and transverse sinuses (along the tentorium)
    depth = distance_inside(cavity)
    labels[gap & (np.abs(from_midline) <= 4) & (depth <= 5) & (z > 0) & (y > -100) & (y < 55)] = VESSEL
    labels[gap & (np.abs(z + 14) <= 3) & (depth <= 4) & (y < -60)] = VESSEL


def _sulci(grid: _Grid, where: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Sulci: CSF walls cut radially into the cerebrum from its surface, 1.6 mm wide and 8-20 mm deep.

    The walls follow the zero set of a random wave field on a sphere around the cerebrum's centre, carried
    inward along the radii, so they open onto the surface; fields in millimetres draw the same folding at any
    voxel size.
    """
    rng = grid.rng
    points = grid.points(where)
    points += np.stack([4 * _random_waves(points, 30.0, rng) for _ in range(3)], axis=1)  # walls bend
    points -= np.asarray(CEREBRUM_CENTRE, np.float32)
    radius = np.linalg.norm(points, axis=1, keepdims=True) + 1e-3
    on_sphere = points * (SPHERE_MM / radius)
    wavelength, width = 24.0, 1.6
    field = _random_waves(on_sphere, wavelength, rng)
    deepest = np.clip(14 + 3.5 * _random_waves(on_sphere, 60.0, rng), 8, 20)
    slope = 2 * np.pi / wavelength * SPHERE_MM / radius[:, 0]  # root-mean-square |gradient| per mm here
    mantle = np.linalg.norm(points / np.asarray(CEREBRUM_RADII, np.float32), axis=1) > 0.6  # not the core
    sheet = np.zeros(where.shape, bool)
    sheet[where] = (np.abs(field) < slope * width / 2) & (depth[where] < deepest) & mantle
    return sheet


def _folia(grid: _Grid, where: np.ndarray) -> np.ndarray:
    """Cerebellar fissures: transverse sheets fanning out from the fastigium, about 1 mm wide, every ~8 mm at
    5 cm from it, gently curved from side to side."""
    rng = grid.rng
    points = grid.points(where)
    angle = np.arctan2(points[:, 2] - FASTIGIUM[1], points[:, 1] - FASTIGIUM[0])
    radius = np.hypot(points[:, 2] - FASTIGIUM[1], points[:, 1] - FASTIGIUM[0]) + 1e-3
    arc = angle * 50 + 3 * np.sin(points[:, 0] / 12 + rng.uniform(0, 2 * np.pi)) * 50 / radius
    phase = (arc / 8.0 + rng.uniform()) % 1
    sheet = np.zeros(where.shape, bool)
    sheet[where] = np.minimum(phase, 1 - phase) * 8.0 * radius / 50 < 0.5
    return sheet


def _random_waves(points: np.ndarray, wavelength: float, rng, waves: int = 32) -> np.ndarray:
    """A smooth random field of unit variance at ``points`` (mm): plane waves of about one wavelength."""
    directions = rng.standard_normal((waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    k = 2 * np.pi / (wavelength * rng.uniform(0.85, 1.15, size=(waves, 1)))
    phases = rng.uniform(0, 2 * np.pi, waves).astype(np.float32)
    return np.cos(points @ (directions * k).T.astype(np.float32) + phases).sum(axis=1) / np.sqrt(waves / 2)
