import numpy as np
import pytest
from scipy import ndimage

from synthseg.inference.cleanup import ISLAND_STRUCTURES, MIN_FRACTION, remove_islands
from synthseg.inference.segmenter import Segmenter

WM, CSF, GM, PUT = 2, 3, 1, 8


def _two_putamina() -> np.ndarray:
    """White matter holding a left and a right putamen of equal size."""
    labels = np.full((24, 16, 16), WM, np.uint8)
    labels[3:8, 5:10, 5:10] = PUT
    labels[16:21, 5:10, 5:10] = PUT
    return labels


def test_a_small_island_takes_the_label_around_it_and_both_hemispheres_stay():
    labels = _two_putamina()
    labels[11, 12, 12] = PUT  # one stray voxel in white matter
    cleaned = remove_islands(labels)
    assert cleaned[11, 12, 12] == WM
    np.testing.assert_array_equal(cleaned, _two_putamina())
    assert labels[11, 12, 12] == PUT  # the input is left untouched


def test_components_above_the_fraction_are_kept():
    labels = _two_putamina()
    labels[11:13, 0:2, 0:2] = PUT  # 8 voxels: 6.4 % of the largest body (125 voxels)
    np.testing.assert_array_equal(remove_islands(labels, min_fraction=0.05), labels)
    assert (remove_islands(labels, min_fraction=0.1)[11:13, 0:2, 0:2] == WM).all()


def test_an_island_on_a_boundary_takes_the_majority_of_its_border():
    labels = _two_putamina()
    labels[:, :, 13:] = CSF  # CSF slab; WM on the other side
    labels[11, 8, 13] = PUT  # on the CSF side of the boundary: 17 CSF and 9 WM neighbours
    assert remove_islands(labels)[11, 8, 13] == CSF


def test_unlisted_structures_keep_their_islands():
    labels = _two_putamina()
    labels[11, 12, 12] = CSF
    assert CSF not in ISLAND_STRUCTURES
    assert remove_islands(labels)[11, 12, 12] == CSF


def test_the_result_does_not_depend_on_the_array_orientation():
    rng = np.random.default_rng(0)
    labels = _two_putamina()
    specks = rng.random(labels.shape) < 0.03
    labels[specks] = rng.choice([GM, PUT, CSF], size=int(specks.sum()))  # islands touching several labels
    cleaned = remove_islands(labels)
    assert (cleaned != labels).any()
    moved = np.ascontiguousarray(labels[::-1, :, ::-1].transpose(2, 0, 1))
    np.testing.assert_array_equal(remove_islands(moved).transpose(1, 2, 0)[::-1, :, ::-1], cleaned)


def test_min_fraction_is_validated():
    with pytest.raises(ValueError, match="min_fraction"):
        remove_islands(_two_putamina(), min_fraction=1.5)


def test_segmenter_labels_have_no_small_islands_unless_told(tiny_model, phantom_t1):
    path = phantom_t1[0]

    def smallest_fraction(labels: np.ndarray) -> float:
        fractions = [1.0]
        for structure in ISLAND_STRUCTURES:
            components, count = ndimage.label(labels == structure, structure=np.ones((3, 3, 3)))
            if count > 1:
                sizes = np.bincount(components.ravel())[1:]
                fractions.append(sizes.min() / sizes.max())
        return min(fractions)

    raw = np.asarray(Segmenter(tiny_model, device="cpu", tta=False, cleanup=False).segment(path).labels.dataobj)
    cleaned = np.asarray(Segmenter(tiny_model, device="cpu", tta=False).segment(path).labels.dataobj)
    assert smallest_fraction(raw) < MIN_FRACTION  # the tiny network leaves islands ...
    assert smallest_fraction(cleaned) >= MIN_FRACTION  # ... that the default clean-up removes
    assert 0 < (raw != cleaned).mean() < 0.05
