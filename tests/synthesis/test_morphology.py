import numpy as np
import torch
from scipy import ndimage

from synthseg.synthesis.morphology import CORTEX, CSF, NUCLEI, WM, grow, max_filter, rebuild_cortex, shift_boundary


def _slab():
    """Along x: CSF | cortex | WM | putamen — labels equal targets here."""
    t = torch.zeros(20, 6, 6, dtype=torch.long)
    t[0:5], t[5:9], t[9:15], t[15:20] = 3, 1, 2, 8
    return t


def test_max_filter_is_a_face_neighbour_dilation():
    x = torch.randint(0, 5, (9, 10, 11), generator=torch.Generator().manual_seed(0)).float()
    cross = ndimage.generate_binary_structure(3, 1)
    expected = ndimage.grey_dilation(x.numpy(), footprint=cross, mode="constant", cval=0)
    assert np.array_equal(max_filter(x).numpy(), expected)


def test_growth_changes_only_the_intended_neighbour():
    t = _slab()
    out = grow(t, t, CORTEX, CSF, 2)
    changed = out != t
    assert torch.all(t[changed] == 3) and torch.all(out[changed] == 1)
    assert changed[:, 0, 0].nonzero().flatten().tolist() == [3, 4]


def test_shift_boundary_both_ways_and_nuclei():
    t = _slab()
    thinner = shift_boundary(t, t, CORTEX, WM, -1)  # WM grows into the cortex by one voxel
    assert (thinner == 1).sum() == (t == 1).sum() - 36 and torch.all(thinner[t != 1] == t[t != 1])
    nuclei = shift_boundary(t, t, NUCLEI, WM, 2)
    changed = nuclei != t
    assert torch.all(t[changed] == 2) and torch.all(nuclei[changed] == 8)


def test_rebuild_cortex_sets_thickness_from_the_white_matter():
    t = _slab()
    out = rebuild_cortex(t, t, csf_label=3, steps=2)
    assert (out[:, 0, 0] == 1).nonzero().flatten().tolist() == [7, 8]
    assert torch.equal(out[9:], t[9:])  # WM and nuclei untouched
