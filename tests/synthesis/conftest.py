import pytest

from synthseg.templates.library import Template
from synthseg.templates.recipe import load_recipe


@pytest.fixture(scope="module")
def phantom_template(phantom_small):
    labels, affine = phantom_small
    return [Template("phantom", labels, affine, {})], load_recipe("siam16")

