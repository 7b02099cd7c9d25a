import numpy as np
from scipy import ndimage

from synthseg.templates.dura import synthesize_dura
from synthseg.templates.recipe import load_recipe


def _toy_head(shape=(40, 44, 40)):
    """Skull shell, CSF, two hemispheres split by a CSF gap, a cerebellum below: aseg-charm codes."""
    x, y, z = np.meshgrid(*[np.arange(n) - n / 2 for n in shape], indexing="ij")
    r = np.sqrt((x / 18) ** 2 + (y / 20) ** 2 + (z / 18) ** 2)
    labels = np.zeros(shape, np.int32)
    labels[r < 1.0] = 507
    labels[r < 0.92] = 515
    labels[r < 0.82] = 24
    brain = r < 0.7
    labels[brain & (x < -1) & (z > -4)] = 3
    labels[brain & (x > 1) & (z > -4)] = 42
    labels[brain & (z < -7)] = 8
    labels[(np.abs(x) < 2) & (z > 6) & (r < 0.82)] = 24  # interhemispheric fissure stays CSF
    return labels


def test_dura_is_thin_between_skull_and_brain_and_spares_brain():
    recipe = load_recipe("aseg-charm")
    labels = _toy_head()
    out = synthesize_dura(labels, recipe, spacing=1.0, thickness=1.0)
    dura = out == 600
    assert dura.any()
    changed = out != labels
    assert np.all(labels[changed] == 24)  # only CSF is painted
    for code in (3, 42, 8):  # no brain structure loses anything
        assert (out == code).sum() == (labels == code).sum()
    # thin: the distance from each dura voxel to the nearest non-dura voxel is at most 1 voxel (median)
    inner = ndimage.distance_transform_edt(dura)
    assert np.median(inner[dura]) <= 2
    # the shell touches the skull; the falx reaches into the fissure between the hemispheres
    assert (ndimage.binary_dilation(dura) & (labels == 515)).any()
    fissure = (np.abs(np.arange(40) - 20) < 2)[:, None, None] & (labels == 24)
    assert (dura & fissure).any()


def test_thickness_parameter_thickens_the_shell():
    recipe = load_recipe("aseg-charm")
    labels = _toy_head()
    thin = (synthesize_dura(labels, recipe, 1.0, thickness=1.0) == 600).sum()
    thick = (synthesize_dura(labels, recipe, 1.0, thickness=2.5) == 600).sum()
    assert thick > 1.5 * thin
