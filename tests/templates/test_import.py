import json

import numpy as np
import pytest
from scipy import ndimage

from synthseg.errors import SynthSegError
from synthseg.io.image import load_image
from synthseg.templates.library import import_template, import_templates, list_templates, load_templates
from synthseg.templates.recipe import load_recipe
from tests.conftest import shared_path, write_nifti

BRAIN = [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]


def test_import_phantom_with_siam_recipe(tmp_path, phantom_small):
    labels, affine = phantom_small
    path = write_nifti(tmp_path / "ph.nii.gz", labels.astype(np.int16), affine)
    manifest = import_template(path, load_recipe("siam16"), tmp_path / "lib")
    assert manifest["targets_present"] == list(range(17))
    assert not manifest["dura"]["synthesized"]  # the phantom has dura already
    templates, recipe = load_templates(tmp_path / "lib")
    assert templates[0].name == "ph" and recipe.name == "siam16"
    assert list_templates(tmp_path / "lib")[0]["volumes_ml"]["15"] > 0


@pytest.mark.parametrize("data, message", [
    (np.full((6, 6, 6), 0.5, np.float32), "non-integer"),
    (np.zeros((6, 6, 6), np.int16), "empty"),
    (np.full((6, 6, 6), 9999, np.int16), "no code of this map"),
])
def test_bad_label_maps_are_refused(tmp_path, data, message):
    path = write_nifti(tmp_path / "m.nii.gz", data)
    with pytest.raises(SynthSegError, match=message):
        import_template(path, load_recipe("siam16"), tmp_path / "lib")


def test_unknown_codes_are_listed_or_mapped_to_background(tmp_path, phantom_small):
    labels, affine = phantom_small
    labels = labels.astype(np.int16)
    labels[0:2, 0:2, 0:2] = 77
    path = write_nifti(tmp_path / "u.nii.gz", labels, affine)
    with pytest.raises(SynthSegError, match="codes not in recipe 'siam16': 77"):
        import_template(path, load_recipe("siam16"), tmp_path / "lib")
    manifest = import_template(path, load_recipe("siam16"), tmp_path / "lib", unknown="background")
    assert manifest["unknown_codes_mapped_to_background"] == [77]


def test_one_shared_map_at_full_resolution(tmp_path):
    source = shared_path("templates", "synthseg", "training_seg_03.nii.gz")
    manifest = import_template(source, load_recipe("aseg-charm"), tmp_path)
    assert manifest["targets_present"] == list(range(17)) and manifest["dura"]["synthesized"]
    assert 900 <= manifest["brain_volume_ml"] <= 1800
    out = load_image(tmp_path / "training_seg_03.nii.gz", labels=True).data
    original = load_image(source, labels=True).data
    dura = out == 600
    # thin, between skull and intracranial tissue, and < 5 % of any brain structure
    assert np.median(ndimage.distance_transform_edt(dura)[dura]) <= 2
    shell = ndimage.binary_dilation(dura, iterations=2)
    assert (shell & np.isin(out, [515, 516])).any() and (shell & np.isin(out, [3, 42])).any()
    recipe = load_recipe("aseg-charm")
    before = np.bincount(recipe.lookup(original.astype(np.int64), "target").ravel(), minlength=17)
    after = np.bincount(recipe.lookup(out.astype(np.int64), "target").ravel(), minlength=17)
    for target in BRAIN:
        assert after[target] >= 0.95 * before[target]


def test_all_shared_maps_import(tmp_path):
    folder = shared_path("templates", "synthseg")
    sources = sorted(folder.glob("training_seg_*.nii.gz"))
    assert len(sources) == 16
    done, failed = import_templates(sources, "aseg-charm", tmp_path, spacing=3.0)  # 3 mm: 0.6x the time of 2 mm
    assert not failed and len(done) == 16
    for manifest in done:
        assert manifest["targets_present"] == list(range(17)), manifest["name"]  # thin dura and vessels too
        # brain parenchyma + ventricles; the 3 mm nearest-neighbour resampling keeps it within a few %
        assert 850 <= manifest["brain_volume_ml"] <= 1800, (manifest["name"], manifest["brain_volume_ml"])
    assert json.loads((tmp_path / "training_seg_01.json").read_text(encoding="utf-8"))["recipe"] == "aseg-charm"
