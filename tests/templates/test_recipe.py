import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.templates.recipe import load_recipe, parse_recipe, shipped_recipes


def test_shipped_recipes_load_and_keep_three_levels_apart():
    assert {"aseg-charm", "siam16"} <= set(shipped_recipes())
    recipe = load_recipe("aseg-charm")
    putamen_l, putamen_r = recipe.labels[12], recipe.labels[51]
    assert putamen_l.intensity_class == putamen_r.intensity_class == "putamen"  # one Gaussian, two codes
    assert putamen_l.target == 8 and recipe.labels[515].target == 15 and recipe.labels[600].target == 13
    codes = np.array([[[0, 12, 51, 24]]])
    assert recipe.lookup(codes, "target").tolist() == [[[0, 8, 8, 3]]]
    assert recipe.dura is not None and recipe.dura.code == 600


def _raw(**changes):
    raw = {"name": "t", "classes": {"bg": "air", "wm": "white_matter"},
           "labels": {0: ["air", "bg", 0], 5: ["wm", "wm", 2]}}
    raw.update(changes)
    return raw


@pytest.mark.parametrize("raw, message", [
    (_raw(labels={0: ["air", "bg", 0], 5: ["wm", "nope", 2]}), "not declared"),
    (_raw(labels={0: ["air", "bg", 0], 5: ["wm", "wm", 22]}), "not an id 0-16"),
    (_raw(classes={"bg": "air", "wm": "plasma"}), "unknown tissue"),
    (_raw(labels={0: ["air", "bg", 3]}), "must map to target 0"),
    (_raw(labels={-1: ["x", "bg", 0]}), "non-negative"),
    (_raw(dura={"code": 5}), "target 13"),
    ({"name": "x"}, "lacks the 'classes'"),
])
def test_malformed_recipes_are_refused(raw, message):
    with pytest.raises(SynthSegError, match=message):
        parse_recipe(raw)


def test_duplicate_code_in_a_file_is_a_contradiction(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nclasses: {bg: air}\nlabels:\n  0: [a, bg, 0]\n  0: [b, bg, 0]\n")
    with pytest.raises(SynthSegError, match="appears twice"):
        load_recipe(path)
