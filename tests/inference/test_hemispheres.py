"""The mid-sagittal plane and the volumes per hemisphere, on the built-in phantom (mirror-symmetric about world
x = 0 but for its sulci)."""

from __future__ import annotations

import numpy as np
import pytest

from synthseg.inference.hemispheres import (LATERALISED_IDS, LEFT, RIGHT, MidsagittalPlane, NoMidsagittalPlane,
                                            hemisphere_map, hemisphere_volumes, midsagittal_plane)
from synthseg.io.geometry import resample_to_grid
from synthseg.labels.protocol import NUM_CLASSES, STRUCTURES


def one_hot(labels: np.ndarray) -> np.ndarray:
    return (labels[None] == np.arange(NUM_CLASSES)[:, None, None, None]).astype(np.float32)


def turned(affine: np.ndarray, degrees: float, axis: int) -> np.ndarray:
    """``affine`` turned by ``degrees`` about a world axis through the origin."""
    angle = np.deg2rad(degrees)
    a, b = [i for i in range(3) if i != axis]
    rotation = np.eye(4)
    rotation[[a, a, b, b], [a, b, a, b]] = [np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)]
    return rotation @ affine


@pytest.mark.parametrize("degrees, axis", [(0, 2), (20, 2), (15, 1), (-25, 2)])
def test_the_plane_of_the_phantom_is_its_midline_however_the_grid_is_turned(phantom_small, degrees, axis):
    labels, affine = phantom_small
    grid = turned(affine, degrees, axis)  # the head stays where it is in the world; its midline turns in voxel space
    on_grid = resample_to_grid(labels, affine, labels.shape, grid, order=0).astype(np.int64)
    plane = midsagittal_plane(one_hot(on_grid), grid)
    assert plane.tilt_degrees() < 1.5 and abs(plane.offset_mm) < 1.0  # world x = 0, on 4 mm voxels
    assert plane.normal[0] > 0 and plane.symmetry > 0.6
    again = MidsagittalPlane.from_dict(plane.as_dict())  # as _qc.json stores it, rounded
    assert np.mean(again.right_of(on_grid.shape, grid) == plane.right_of(on_grid.shape, grid)) > 0.999


def test_right_of_follows_the_world_not_the_voxel_axes():
    plane = MidsagittalPlane((1.0, 0.0, 0.0), 2.0, 1.0)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # voxel x grows towards the subject's left
    lps[:3, 3] = [4.0, 0.0, 0.0]
    right = plane.right_of((8, 2, 2), lps)
    assert right[:, 0, 0].tolist() == [True, True, False, False, False, False, False, False]  # world x 4, 3 > 2
    assert plane.right_of((8, 2, 2), np.eye(4))[:, 1, 1].tolist() == [False] * 3 + [True] * 5


@pytest.mark.parametrize("degrees", [0, 20])
def test_the_hemisphere_map_sides_the_brain_and_nothing_else(phantom_small, degrees):
    labels, affine = phantom_small
    grid = turned(affine, degrees, 2)
    on_grid = resample_to_grid(labels, affine, labels.shape, grid, order=0).astype(np.int64)
    plane = MidsagittalPlane((0.96, 0.28, 0.0), 1.5, 1.0)  # oblique to every voxel axis once the grid is turned
    sides = hemisphere_map(on_grid, grid, plane)
    brain = np.isin(on_grid, LATERALISED_IDS)
    assert sides.dtype == np.uint8 and sides.shape == on_grid.shape and set(np.unique(sides)) == {0, LEFT, RIGHT}
    assert np.array_equal(sides == 0, ~brain)
    assert np.array_equal(sides == RIGHT, brain & plane.right_of(on_grid.shape, grid))  # the very mask, edge too
    world_x = (np.argwhere(sides == RIGHT) @ grid[:3, :3].T + grid[:3, 3]) @ np.asarray(plane.normal)
    assert world_x.min() > plane.offset_mm
    assert 0.4 < (sides == RIGHT).sum() / brain.sum() < 0.6


def test_volumes_per_hemisphere_add_up_and_mirror_a_symmetric_head(phantom_small):
    labels, affine = phantom_small
    half = labels.shape[0] // 2  # world x = 0 lies between voxels half - 1 and half
    mirrored = np.concatenate([labels[:half], np.flip(labels[:half], 0)]).astype(np.int64)
    probs = one_hot(mirrored)
    plane = MidsagittalPlane((1.0, 0.0, 0.0), 0.0, 1.0)
    shifted = affine.copy()
    shifted[:3, 3] += [0.0, 1.0, 1.0]  # a second grid: volumes are averaged over the grids
    split = hemisphere_volumes([(probs, affine), (probs, shifted)], plane)
    voxel_ml = 4.0 ** 3 / 1000
    for s in STRUCTURES[1:13]:
        total = float((mirrored == s.id).sum()) * voxel_ml
        assert split["left"][s.short] == split["right"][s.short] == pytest.approx(total / 2, abs=1e-3)
    one_sided = probs.copy()
    one_sided[12, :half] = 0  # the left hippocampus removed
    split = hemisphere_volumes([(one_sided, affine)], plane)
    assert split["left"]["Hippo"] == 0 and split["right"]["Hippo"] > 1.0


def test_no_plane_without_enough_brain_or_for_a_midline_across_the_header_axes(phantom_small):
    labels, affine = phantom_small
    with pytest.raises(NoMidsagittalPlane, match="5 brain structures found, fewer than 6"):
        midsagittal_plane(one_hot(np.where(labels <= 7, 0, labels).astype(np.int64)), affine)
    swapped = affine[[1, 0, 2, 3]]  # voxel axis 0 (the head's left-right) read as anterior-posterior
    with pytest.raises(NoMidsagittalPlane, match="9[0-9] degrees from the header's left-right axis"):
        midsagittal_plane(one_hot(labels.astype(np.int64)), swapped)
