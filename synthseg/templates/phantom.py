"""A procedural head label map in the 16 output ids, at any resolution, seeded.

Nested ellipsoids give the anatomical order head ⊃ skull ⊃ dura ⊃ CSF ⊃ cortex ⊃ white matter,
with ventricles, deep nuclei, hippocampus/amygdala, a cerebellum, a falx and a sagittal sinus.
It is a test object and the built-in demo's input, never anatomy.
"""

from __future__ import annotations

import numpy as np

FIELD_OF_VIEW_MM = (176.0, 216.0, 200.0)


def make_phantom(spacing: float = 1.0, seed: int = 0, field_of_view=FIELD_OF_VIEW_MM
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(labels uint8, affine)`` on an RAS grid with the head centred on the origin."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(round(f / spacing)) for f in field_of_view)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * spacing
    x, y, z = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * spacing for n in shape], indexing="ij",
                          sparse=True)
    jitter = lambda: 1 + 0.04 * rng.standard_normal()  # noqa: E731 - per-structure size jitter

    def ellipsoid(centre, radii):
        c = np.asarray(centre, float)
        r = np.asarray(radii, float) * jitter()
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1

    # cortical folding: a smooth angular modulation of the brain surface
    theta = np.arctan2(y, x + 1e-6)
    phi = np.arctan2(z, np.sqrt(x ** 2 + y ** 2) + 1e-6)
    k1, k2 = rng.integers(6, 11, size=2)
    folds = 1 + 0.05 * np.sin(k1 * theta + rng.uniform(0, 6.3)) * np.cos(k2 * phi + rng.uniform(0, 6.3))

    labels = np.zeros(shape, dtype=np.uint8)
    labels[ellipsoid((0, 0, -5), (78, 100, 92))] = 16  # head
    labels[ellipsoid((0, 0, 5), (70, 90, 78))] = 15  # skull
    labels[ellipsoid((0, 0, 5), (64, 84, 72))] = 13  # dura
    labels[ellipsoid((0, 0, 5), (63, 83, 71))] = 3  # CSF
    brain_r = np.array([58, 78, 64])
    brain = (x / brain_r[0]) ** 2 + (y / brain_r[1]) ** 2 + ((z - 8) / brain_r[2]) ** 2 <= folds ** -2
    labels[brain] = 1  # cortex
    labels[(x / (brain_r[0] - 4)) ** 2 + (y / (brain_r[1] - 4)) ** 2 + ((z - 8) / (brain_r[2] - 4)) ** 2
           <= (folds ** -2) * 0.97] = 2  # white matter
    labels[ellipsoid((0, -42, -24), (38, 24, 18))] = 5  # cerebellar cortex
    labels[ellipsoid((0, -40, -24), (18, 10, 8))] = 2  # cerebellar white matter
    labels[ellipsoid((0, -14, -34), (10, 12, 22))] = 2  # brain stem
    for side in (-1, 1):
        labels[ellipsoid((side * 9, 4, 18), (5, 26, 9))] = 4  # lateral ventricles
        labels[ellipsoid((side * 10, -10, 6), (8, 14, 8))] = 6  # thalamus
        labels[ellipsoid((side * 14, 16, 16), (4, 10, 6))] = 9  # caudate
        labels[ellipsoid((side * 26, 4, 4), (5, 14, 8))] = 8  # putamen
        labels[ellipsoid((side * 19, 2, 2), (3, 8, 5))] = 7  # pallidum
        labels[ellipsoid((side * 10, 20, -4), (4, 4, 4))] = 10  # accumbens
        labels[ellipsoid((side * 24, 0, -20), (5, 6, 5))] = 11  # amygdala
        labels[ellipsoid((side * 28, -18, -16), (5, 16, 5))] = 12  # hippocampus
        labels[ellipsoid((side * 32, 80, -24), (10, 10, 9))] = 16  # eyes (inside head tissue)
    labels[ellipsoid((0, -8, 8), (2, 6, 3))] = 4  # third ventricle
    # falx: a midline sheet of dura above the ventricles, the interhemispheric fissure around it
    top = (np.abs(x) <= 2.5 * max(spacing, 1.0)) & (z > 32) & brain
    labels[top & np.isin(labels, (1, 2))] = 3
    labels[(np.abs(x) <= max(spacing, 0.6) / 2 + 0.01) & (z > 34) & (labels == 3)] = 13
    # superior sagittal sinus: a tube at the top of the falx
    sinus = (x ** 2 + (z - (5 + 70)) ** 2 <= 3.5 ** 2) & (np.abs(y) < 70)
    labels[sinus & np.isin(labels, (3, 13, 1))] = 14
    return labels, affine
