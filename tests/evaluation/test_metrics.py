import numpy as np
import pytest

from synthseg.evaluation.metrics import dice, hausdorff95, volume_ml


def _cube(offset=0):
    a = np.zeros((20, 20, 20), np.uint8)
    a[5 + offset:15 + offset, 5:15, 5:15] = 1
    return a


def test_dice_identical_disjoint_and_absent():
    a = _cube()
    assert dice(a, a, 1) == 1.0
    b = np.zeros_like(a)
    b[0:3, 0:3, 0:3] = 1
    assert dice(a, b, 1) == 0.0
    assert np.isnan(dice(a, a, 7))


def test_one_voxel_shift_has_known_hausdorff_and_dice():
    a, b = _cube(), _cube(1)
    assert hausdorff95(a, b, 1, (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    assert hausdorff95(a, b, 1, (2.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert dice(a, b, 1) == pytest.approx(0.9)


def test_volume_in_ml():
    assert volume_ml(_cube(), 1, (2.0, 1.0, 1.0)) == pytest.approx(2.0)
