import nibabel as nib
import numpy as np
import pytest

from synthseg.io.geometry import (BoundingBox, argmax_to_grid, beyond_box, crop_to_mask, grid_for_spacing, pad_to_shape,
                                  probability_slabs, reorient,
                                  resample_to_grid, resample_to_spacing, to_canonical)
from synthseg.io.image import Image


def _image(codes: str, oblique: bool = False) -> Image:
    rng = np.random.default_rng(0)
    data = rng.random((6, 7, 8)).astype(np.float32)
    ornt = nib.orientations.axcodes2ornt(tuple(codes))
    affine = np.eye(4)
    for axis, (world, flip) in enumerate(ornt.astype(int)):
        affine[:3, axis] = 0
        affine[world, axis] = flip * (1.0 + 0.5 * axis)
    affine[:3, 3] = [10, -20, 5]
    if oblique:
        a = np.deg2rad(17)
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        affine[:3, :3] = rot @ affine[:3, :3]
    return Image(data, affine)


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LIA", "PSR"])
@pytest.mark.parametrize("oblique", [False, True])
def test_canonical_round_trip(codes, oblique):
    image = _image(codes, oblique)
    canonical = to_canonical(image)
    assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
    back = reorient(canonical, nib.aff2axcodes(image.affine))
    assert back.shape == image.shape
    assert np.allclose(back.affine, image.affine) and np.array_equal(back.data, image.data)


def test_known_point_keeps_its_world_coordinate():
    image = _image("LIA")
    canonical = to_canonical(image)
    world = image.affine @ np.array([1, 2, 3, 1])
    index = np.linalg.inv(canonical.affine) @ world
    i, j, k = np.round(index[:3]).astype(int)
    assert np.allclose(index[:3], [i, j, k])
    assert canonical.data[i, j, k] == image.data[1, 2, 3]


def test_resample_identity_and_nearest_labels():
    image = _image("RAS")
    same = resample_to_grid(image.data, image.affine, image.shape, image.affine, order=1)
    assert np.allclose(same, image.data, atol=1e-5)
    labels = (image.data * 5).astype(np.int32)
    finer = resample_to_spacing(image.with_data(labels), 0.5, order=0)
    assert set(np.unique(finer.data)) <= set(np.unique(labels))


def test_resample_spacing_keeps_field_of_view_centre():
    image = _image("RAS")
    shape, affine = grid_for_spacing(image.shape, image.affine, 2.0)
    centre = lambda s, a: a @ np.append((np.asarray(s) - 1) / 2, 1)  # noqa: E731
    assert np.allclose(centre(shape, affine), centre(image.shape, image.affine))


def test_probability_maps_in_slabs_equal_one_slab():
    rng = np.random.default_rng(1)
    probs = rng.random((3, 5, 6, 7)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    target = np.diag([1.0, 1.0, 1.0, 1.0])
    full = resample_to_grid(probs, affine, (9, 11, 13), target, order=1)
    slabs = resample_to_grid(probs, affine, (9, 11, 13), target, order=1, slab_voxels=50)
    assert full.shape == (3, 9, 11, 13) and full.dtype == np.float32
    assert np.array_equal(full, slabs)


@pytest.mark.parametrize("blocky", [False, True])
def test_argmax_of_mean_over_shifted_grids_matches_full_resampling(blocky):
    """The fast argmax equals the argmax of the mean of fully resampled probabilities, for one 2 mm
    grid and for two grids half a voxel apart, whether most voxels are boundaries or few are."""
    rng = np.random.default_rng(2)
    shape = (6, 7, 8)

    def probs() -> np.ndarray:
        if not blocky:
            return rng.random((4, *shape)).astype(np.float32)
        labels = np.kron(rng.integers(0, 4, (3, 4, 4)), np.ones((2, 2, 2), int))[:6, :7, :8]
        return (np.eye(4, dtype=np.float32)[labels].transpose(3, 0, 1, 2) + 0.1 * rng.random((4, *shape))
                ).astype(np.float32)

    plain, shifted = np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([2.0, 2.0, 2.0, 1.0])
    shifted[:3, 3] = 1.0
    sources = [(probs(), plain), (probs(), shifted)]
    target, target_shape = np.eye(4), (10, 12, 14)  # world 1..10 etc.: inside both grids
    target[:3, 3] = 1.0
    for chosen in (sources[:1], sources):
        mean = sum(resample_to_grid(p, a, target_shape, target, order=1) for p, a in chosen) / len(chosen)
        fast = argmax_to_grid(chosen, target_shape, target, chunk=64)
        assert np.array_equal(fast, mean.argmax(0))
    assert not np.array_equal(argmax_to_grid(sources[:1], target_shape, target),
                              argmax_to_grid(sources, target_shape, target))


def test_argmax_to_grid_follows_permuted_and_flipped_target_axes():
    """A scan stored in another voxel order (here L-P-S with axes swapped) maps onto its working grid by
    a permutation and flips: the fast argmax still equals full resampling."""
    rng = np.random.default_rng(3)
    probs = rng.random((3, 5, 6, 7)).astype(np.float32)
    source = np.diag([2.0, 2.0, 2.0, 1.0])
    target = np.array([[0.0, -1.0, 0.0, 8.0], [-1.0, 0.0, 0.0, 9.0], [0.0, 0.0, 1.0, 0.5], [0, 0, 0, 1]])
    shape = (10, 9, 12)  # world y 9..0, x 8..0, z 0.5..11.5: inside the source's 0..8 x 0..10 x 0..12
    full = resample_to_grid(probs, source, shape, target, order=1)
    assert np.array_equal(argmax_to_grid([(probs, source)], shape, target, chunk=50), full.argmax(0))


def test_argmax_to_grid_reads_background_outside_the_sources():
    probs = np.zeros((3, 4, 4, 4), np.float32)
    probs[2] = 1.0  # class 2 everywhere inside the source, which spans world 0..6 on each axis
    labels = argmax_to_grid([(probs, np.diag([2.0, 2.0, 2.0, 1.0]))], (12, 12, 12), np.eye(4))
    assert (labels[:6, :6, :6] == 2).all() and (labels[8:] == 0).all() and (labels[:, 8:] == 0).all()


def test_argmax_to_grid_refuses_oblique_grids():
    rotated = np.eye(4)
    rotated[:2, :2] = [[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]]
    with pytest.raises(ValueError, match="parallel"):
        argmax_to_grid([(np.ones((2, 3, 3, 3), np.float32), rotated)], (3, 3, 3), np.eye(4))


def test_cubic_matches_at_grid_points():
    image = _image("RAS")
    same = resample_to_grid(image.data, image.affine, image.shape, image.affine, order=3)
    assert np.allclose(same, image.data, atol=1e-4)


def test_crop_and_pad_back():
    image = _image("RAS")
    mask = np.zeros(image.shape, bool)
    mask[2:4, 3:5, 1:6] = True
    cropped, box = crop_to_mask(image, mask, margin=1)
    assert cropped.shape == (4, 4, 7)
    assert np.allclose(cropped.affine @ [0, 0, 0, 1], image.affine @ [1, 2, 0, 1])
    restored = pad_to_shape(cropped.data, box)
    assert np.array_equal(restored[box.slices], image.data[box.slices]) and restored.shape == image.shape
    assert BoundingBox.around(np.zeros((3, 3, 3), bool)).slices == (slice(0, 3),) * 3


def _probabilities(sources, shape, target, slab_voxels=500_000) -> np.ndarray:
    """probability_slabs' blocks put together, background (channel 0) where no block is."""
    full = np.zeros((sources[0][0].shape[0], *shape), np.float32)
    written = np.zeros(shape, bool)
    for where, block in probability_slabs(sources, shape, target, slab_voxels):
        assert not written[where].any()
        full[(slice(None), *where)], written[where] = block, True
    full[:, ~written] = np.eye(full.shape[0])[0][:, None]
    return full


def test_probability_slabs_are_the_mean_of_linear_resampling_with_background_outside():
    """The separable resampling of posteriors equals full trilinear resampling inside the sources (permuted,
    flipped, two grids), reads background outside them, sums to one, and its argmax is argmax_to_grid's."""
    rng = np.random.default_rng(4)

    def probs(shape) -> np.ndarray:
        p = rng.random((3, *shape)).astype(np.float32)
        return p / p.sum(0)

    shifted = np.diag([2.0, 2.0, 2.0, 1.0])
    shifted[:3, 3] = 1.0
    sources = [(probs((5, 6, 7)), np.diag([2.0, 2.0, 2.0, 1.0])), (probs((4, 5, 6)), shifted)]
    target = np.array([[0.0, -1.0, 0.0, 7.0], [-1.0, 0.0, 0.0, 9.0], [0.0, 0.0, 1.0, 1.5], [0, 0, 0, 1]])
    shape = (8, 6, 9)  # world y 9..2, x 7..2, z 1.5..9.5: inside both sources (1..7 x 1..9 x 1..11 the smaller)
    full = sum(resample_to_grid(p, a, shape, target, order=1) for p, a in sources) / 2
    fast = _probabilities(sources, shape, target, slab_voxels=100)  # several slabs
    assert fast.shape == (3, *shape) and np.allclose(fast, full, atol=1e-5)
    assert np.array_equal(fast.argmax(0), argmax_to_grid(sources, shape, target))
    outside = _probabilities(sources[:1], (14, 14, 14), np.eye(4))  # the source spans 0..8 x 0..10 x 0..12
    background = np.array([1.0, 0.0, 0.0])[:, None, None, None]
    assert np.allclose(outside.sum(0), 1.0) and np.allclose(outside[:, 10:], background)


def test_probability_slabs_cover_only_the_voxels_some_source_reaches():
    """Blocks stop where every source reads only its background padding (the caller's fill); none at all when no
    source overlaps the target; a source that reaches none of it still counts as background in the mean."""
    probs, affine = np.full((2, 5, 6, 7), 0.5, np.float32), np.diag([2.0, 2.0, 2.0, 1.0])  # world 0..8 x 0..10 x 0..12
    blocks = list(probability_slabs([(probs, affine)], (14, 14, 16), np.eye(4), slab_voxels=50))
    assert len(blocks) > 1 and all(where[:2] == (slice(0, 10), slice(0, 12)) for where, _ in blocks)
    assert blocks[0][0][2].start == 0 and blocks[-1][0][2].stop == 14  # world x 9 and z 13 read half a voxel
    far = np.eye(4)
    far[0, 3] = 50.0
    assert list(probability_slabs([(probs, affine)], (4, 4, 4), far)) == []
    elsewhere = np.diag([2.0, 2.0, 2.0, 1.0])
    elsewhere[0, 3] = 100.0
    _, block = next(probability_slabs([(probs, affine), (probs, elsewhere)], (4, 4, 4), np.eye(4)))
    assert np.allclose(block, np.array([0.75, 0.25])[:, None, None, None])  # the mean with the other's background


def test_beyond_box_on_the_same_grid_is_the_box_complement_and_on_another_follows_world_positions():
    box = BoundingBox((2, 3, 0), (7, 9, 4), (10, 12, 5))
    inside = np.zeros(box.shape, bool)
    inside[box.slices] = True
    affine = np.diag([1.5, 1.0, 3.0, 1.0])
    assert np.array_equal(beyond_box(box.shape, affine, box, affine), ~inside)
    # a grid of 3 mm voxels, flipped along x, 40 planes (several chunks): each voxel centre's nearest box-grid voxel
    other = np.array([[-3.0, 0, 0, 20.0], [0, 3.0, 0, -4.0], [0, 0, 3.0, 1.0], [0, 0, 0, 1]])
    shape = (40, 6, 4)
    centres = np.indices(shape).reshape(3, -1)
    nearest = np.rint((np.linalg.inv(affine) @ other @ np.vstack([centres, np.ones(centres.shape[1])]))[:3]).astype(int)
    expected = ~((nearest >= np.array(box.start)[:, None]) & (nearest < np.array(box.stop)[:, None])).all(0)
    result = beyond_box(shape, other, box, affine)
    assert np.array_equal(result, expected.reshape(shape)) and 0 < (~result).sum() < result.size
