"""Dura mater for templates that lack it: a thin shell inside the skull, the falx and the tentorium.

Dura is painted only over extra-ventricular CSF, so brain structures and vessels (the venous
sinuses included) are never overwritten. Distances are in mm (Euclidean distance transforms).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from synthseg.templates.recipe import Recipe

SKULL, CSF = 15, 3


def synthesize_dura(labels: np.ndarray, recipe: Recipe, spacing, thickness: float = 1.0,
                    max_gap: float = 12.0) -> np.ndarray:
    """Return a copy of ``labels`` with dura painted in (code from the recipe's ``dura`` rule).

    - shell: CSF within ``thickness`` mm of the skull;
    - falx: CSF equidistant (± thickness/2) from the two hemispheres where they are < ``max_gap`` apart;
    - tentorium: CSF equidistant from cerebrum and cerebellum under the same gap limit.
    """
    if recipe.dura is None:
        raise ValueError(f"recipe '{recipe.name}' has no dura rule")
    rule = recipe.dura
    spacing = np.broadcast_to(np.asarray(spacing, float), (3,))
    thickness = max(float(thickness), float(spacing.min()))
    targets = recipe.lookup(labels, "target")
    csf = targets == CSF
    dura = np.zeros_like(csf)
    skull = targets == SKULL
    if skull.any():
        dura |= csf & (ndimage.distance_transform_edt(~skull, sampling=spacing) <= thickness)
    dura |= _midsurface(labels, rule.left_hemisphere, rule.right_hemisphere, csf, spacing, thickness, max_gap)
    cerebrum = rule.left_hemisphere + rule.right_hemisphere
    dura |= _midsurface(labels, cerebrum, rule.cerebellum, csf, spacing, thickness, max_gap)
    out = labels.copy()
    out[dura] = rule.code
    return out


def _midsurface(labels, codes_a, codes_b, allowed, spacing, thickness, max_gap) -> np.ndarray:
    """Voxels of ``allowed`` on the surface equidistant from two label groups."""
    a, b = np.isin(labels, codes_a), np.isin(labels, codes_b)
    if not a.any() or not b.any():
        return np.zeros_like(allowed)
    da = ndimage.distance_transform_edt(~a, sampling=spacing)
    db = ndimage.distance_transform_edt(~b, sampling=spacing)
    return allowed & (np.abs(da - db) <= thickness) & (da + db <= max_gap)
