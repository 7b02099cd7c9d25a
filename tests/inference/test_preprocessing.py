import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.inference.preprocessing import CORMACK_OFFSET, detect_modality, normalize


def _head_ct_hu(shape=(24, 24, 24)) -> np.ndarray:
    """Air around a bone shell around brain, in Hounsfield units, with a little noise."""
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij"))
    radius = np.sqrt((grid ** 2).sum(0))
    hu = np.where(radius < 0.6, 35.0, np.where(radius < 0.75, 1200.0, -1000.0))
    return (hu + np.random.default_rng(0).normal(0, 5, shape)).astype(np.float32)


def test_ct_in_hounsfield_units_is_recognised_and_mr_is_not():
    hu = _head_ct_hu()
    assert detect_modality(hu) == "ct"
    assert detect_modality(hu - hu.min()) == "mr"  # an all-positive image is read as MR unless told
    assert detect_modality(hu, "mr") == "mr"
    with pytest.raises(SynthSegError, match="modality must be one of"):
        detect_modality(hu, "pet")


def test_ct_stored_with_the_cormack_offset_normalises_like_hounsfield_units():
    hu = _head_ct_hu()
    np.testing.assert_allclose(normalize(hu + CORMACK_OFFSET, "ct"), normalize(hu, "ct"), atol=1e-5)
    assert not np.allclose(normalize(hu + CORMACK_OFFSET, "mr"), normalize(hu, "ct"), atol=1e-2)
