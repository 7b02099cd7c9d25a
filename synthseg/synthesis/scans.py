"""Whole templates rendered as a scanner would store them: the cases that measure a model on held-out
templates and the scans that calibrate its expert routing.

A render keeps the template's grid and position (no spatial randomisation) and draws its appearance
from one seed; a thick-slice render keeps one slice in ``thick_mm / voxel`` along its thick axis, the
grid a thick-slice scanner writes, and a CT render is stored in Hounsfield units.
"""

from __future__ import annotations

import numpy as np

from synthseg.io.image import Image
from synthseg.synthesis.config import rendering_config
from synthseg.synthesis.generator import Generator
from synthseg.templates.library import Template
from synthseg.templates.recipe import Recipe

CT_STORED_RANGE_HU = (-1024.0, 3071.0)  # what a 12-bit CT stores: air to dense bone, none of it clipped


def render_scan(template: Template, recipe: Recipe, contrast: str, seed: int,
                thick_mm: float | None = None) -> tuple[Image, np.ndarray]:
    """The whole ``template`` rendered in ``contrast`` (t1/t2/flair/pd/ct) from ``seed``, at the
    template's voxel size or with ``thick_mm`` slices: the scan and its target labels on the scan's grid."""
    voxel = float(np.sqrt((template.affine[:3, :3] ** 2).sum(0)).mean())
    config = rendering_config(template.labels.shape, voxel, contrast, thick_axis_mm=thick_mm)
    generator = Generator([template], recipe, config, seed=0)
    params = generator.sample_params(seed)
    params.centre = template.grid_centre
    if contrast == "ct":  # rendered through a window that clips nothing, then back to HU as a scanner stores it
        params.ct_window = list(CT_STORED_RANGE_HU)
    image, target = generator.render(params)
    image, target = image.numpy(), target.numpy()
    affine = generator.output_affine(params)
    if contrast == "ct":
        lo, hi = CT_STORED_RANGE_HU
        image = image * (hi - lo) + lo
    if thick_mm:
        axis, step = int(np.argmax(params.low_res)), max(1, round(thick_mm / voxel))
        index = [slice(None)] * 3
        index[axis] = slice(None, None, step)
        image, target = image[tuple(index)], target[tuple(index)]
        affine = affine.copy()
        affine[:3, axis] *= step
    return Image(image.astype(np.float32), affine), target
