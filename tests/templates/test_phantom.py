import numpy as np
import pytest
from scipy import ndimage

from synthseg.templates.phantom import make_phantom


def test_all_targets_present_and_seeded():
    labels, affine = make_phantom(spacing=2.0, seed=3)
    assert set(np.unique(labels)) == set(range(17))
    again, _ = make_phantom(spacing=2.0, seed=3)
    other, _ = make_phantom(spacing=2.0, seed=4)
    assert np.array_equal(labels, again) and not np.array_equal(labels, other)
    assert np.allclose(np.diag(affine)[:3], 2.0)
    labels[:] = 0  # each call returns its own copy of the head drawn once
    assert np.array_equal(make_phantom(spacing=2.0, seed=3)[0], again)


@pytest.mark.parametrize("spacing", [1.5, 3.0])
def test_any_resolution_covers_the_same_field_of_view(spacing):
    labels, affine = make_phantom(spacing=spacing)
    extent = np.asarray(labels.shape) * spacing
    assert np.allclose(extent, [176, 216, 200], atol=spacing)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_anatomical_nesting(seed):
    labels, _ = make_phantom(spacing=2.0, seed=seed)
    head = labels > 0
    skull = labels == 15
    inside_skull = ndimage.binary_fill_holes(skull | np.isin(labels, range(1, 15))) & ~skull
    # head ⊃ skull ⊃ intracranial tissue, and brain never touches the head tissue directly
    assert np.all(head[skull]) and np.all(head[inside_skull])
    brain = np.isin(labels, [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    assert not np.any(ndimage.binary_dilation(brain) & (labels == 16))
    wm_neighbours = labels[ndimage.binary_dilation(labels == 1) & ~(labels == 1)]
    assert 3 in wm_neighbours and 2 in wm_neighbours  # cortex lies between CSF and white matter


def test_a_seed_draws_the_same_head_at_any_voxel_size():
    fine, _ = make_phantom(spacing=1.5, seed=2)
    coarse, _ = make_phantom(spacing=3.0, seed=2)
    for label in (1, 2, 4, 5, 6, 8, 15):  # cortex, white matter, ventricles, cerebellum, thalamus, putamen, skull
        fine_ml, coarse_ml = (fine == label).sum() * 1.5 ** 3, (coarse == label).sum() * 3.0 ** 3
        assert abs(coarse_ml / fine_ml - 1) < 0.1, label
