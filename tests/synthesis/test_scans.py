import numpy as np
import pytest
import torch

from synthseg.inference.preprocessing import looks_like_ct
from synthseg.synthesis.config import rendering_config
from synthseg.synthesis.generator import Generator
from synthseg.synthesis.intensity import normalize_ct
from synthseg.synthesis.scans import render_scan


def test_a_render_keeps_the_template_grid_and_is_fixed_by_its_seed(phantom_template):
    (template,), recipe = phantom_template
    image, target = render_scan(template, recipe, "t2", seed=5)
    assert image.shape == target.shape == template.labels.shape
    assert np.allclose(image.affine, template.affine)
    assert set(np.unique(target)) <= set(range(17)) and len(np.unique(target)) > 5
    again, _ = render_scan(template, recipe, "t2", seed=5)
    other, _ = render_scan(template, recipe, "t2", seed=6)
    assert np.array_equal(image.data, again.data) and not np.array_equal(image.data, other.data)


def test_a_thick_slice_render_keeps_one_slice_per_thickness(phantom_template):
    (template,), recipe = phantom_template
    full, full_target = render_scan(template, recipe, "t1", seed=1)
    image, target = render_scan(template, recipe, "t1", seed=1, thick_mm=8.0)  # 4 mm voxels: one slice in 2
    axis = int(np.argmax(np.asarray(full.shape) != np.asarray(image.shape)))
    assert image.shape[axis] == -(-full.shape[axis] // 2) and image.shape == target.shape
    index = [slice(None)] * 3
    index[axis] = slice(None, None, 2)
    assert np.array_equal(target, full_target[tuple(index)])  # same anatomy, sampled on the thick grid
    assert image.spacing[axis] == pytest.approx(2 * full.spacing[axis])
    assert np.allclose(image.affine[:3, 3], full.affine[:3, 3])


def test_a_ct_render_is_stored_in_hounsfield_units_unclipped(phantom_template):
    (template,), recipe = phantom_template
    image, target = render_scan(template, recipe, "ct", seed=2)
    assert np.median(image.data[target == 0]) < -900 and np.median(image.data[target == 15]) > 300  # air, bone
    assert 15 < np.median(image.data[target == 2]) < 40  # white matter
    assert looks_like_ct(image.data)
    # through the inference window it is the image the generator renders in that window
    config = rendering_config(template.labels.shape, 4.0, "ct")
    generator = Generator([template], recipe, config)
    params = generator.sample_params(2)
    params.centre = template.grid_centre
    windowed, _ = generator.render(params)
    assert np.allclose(normalize_ct(torch.from_numpy(image.data)).numpy(), windowed.numpy(), atol=1e-4)
