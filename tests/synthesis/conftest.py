import numpy as np
import pytest

from synthseg.templates.library import Template
from synthseg.templates.recipe import load_recipe


@pytest.fixture(scope="module")
def phantom_template(phantom_small):
    labels, affine = phantom_small
    return [Template("phantom", labels, affine, {})], load_recipe("siam16")


def centre_of(template) -> list[float]:
    shape = np.asarray(template.labels.shape)
    return list(template.affine[:3, :3] @ ((shape - 1) / 2) + template.affine[:3, 3])
