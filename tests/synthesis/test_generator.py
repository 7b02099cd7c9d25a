import dataclasses

import numpy as np
import pytest
import torch

from synthseg.synthesis.config import GeneratorConfig, rendering_config
from synthseg.synthesis.generator import Generator
from synthseg.synthesis.intensity import CT_INFERENCE_WINDOW
from synthseg.synthesis.tissues import TISSUES

SMALL = dict(patch_size=(24, 24, 24), spacing=4.0)


def _generator(phantom_template, **changes):
    templates, recipe = phantom_template
    return Generator(templates, recipe, GeneratorConfig(**{**SMALL, **changes}), seed=0)


def test_output_shapes_ranges_and_labels(phantom_template):
    gen = _generator(phantom_template)
    images, targets, params = gen.batch(gen.next_seeds(3))
    assert images.shape == (3, 1, 24, 24, 24) and targets.shape == (3, 24, 24, 24)
    assert images.min() >= 0 and images.max() <= 1 and targets.max() <= 16
    assert len(params) == 3 and isinstance(params[0].to_dict(), dict)


def test_reproducible_and_batch_equals_singles(phantom_template):
    a, b = _generator(phantom_template), _generator(phantom_template)
    seeds = [11, 12]
    images, targets, _ = a.batch(seeds)
    for i, seed in enumerate(seeds):
        image, target = b.render(b.sample_params(seed))
        assert torch.equal(image, images[i, 0]) and torch.equal(target, targets[i])
    again, _, _ = a.batch(seeds)
    assert torch.equal(again, images)


def test_zero_strength_is_the_identity(phantom_template):
    templates, recipe = phantom_template
    labels = templates[0].labels
    gen = Generator(templates, recipe, rendering_config(labels.shape, 4.0, "t1"), seed=0)
    params = gen.sample_params(0)
    params.centre = templates[0].grid_centre
    _, target = gen.render(params)
    assert np.array_equal(target.numpy(), labels)


def test_std_zero_class_has_one_intensity_and_labels_move_with_the_image(phantom_template):
    templates, recipe = phantom_template
    gen = _generator(phantom_template, std=False, texture_probability=0.0, bias_probability=0.0,
                     noise_probability=0.0, resolution_native_probability=1.0, resolution_isotropic_probability=0.0,
                     partial_volume_probability=0.0, motion_probability=0.0, mode="mr", mr_prior_probability=0.0,
                     rotation=20, elastic_std=(3, 3), flip_probability=1.0, background_zero_probability=1.0)
    for seed in range(3):
        params = gen.sample_params(seed)
        image, target = gen.render(params)
        for t in target.unique():
            values = image[target == t]
            assert values.max() - values.min() < 1e-5, f"class {int(t)} has several intensities"


def test_ct_values_lie_in_their_hounsfield_ranges(phantom_template):
    templates, recipe = phantom_template
    labels = templates[0].labels
    config = dataclasses.replace(rendering_config(labels.shape, 4.0, "ct"), ct_std=False, noise_probability=0.0)
    gen = Generator(templates, recipe, config, seed=0)
    params = gen.sample_params(5)
    params.centre = templates[0].grid_centre
    params.ct_window = [-1100.0, 2100.0]  # wide enough to see every tissue
    image, target = gen.render(params)
    hu = image * 3200.0 - 1100.0
    for entry in recipe.labels.values():
        lo, hi = TISSUES[recipe.classes[entry.intensity_class]].ct
        values = hu[target == entry.target]
        if values.numel():
            assert values.min() >= lo - 1 and values.max() <= hi + 1, entry.name
    assert params.ct_window != list(CT_INFERENCE_WINDOW)


@pytest.mark.parametrize("mode", ["t1", "t2", "flair", "pd"])
def test_prior_modes_order_tissues_plausibly(phantom_template, mode):
    templates, recipe = phantom_template
    labels = templates[0].labels
    config = dataclasses.replace(rendering_config(labels.shape, 4.0, mode), prior_jitter=0.0, std=False,
                                 noise_probability=0.0, bias_probability=0.0, texture_probability=0.0)
    gen = Generator(templates, recipe, config, seed=0)
    params = gen.sample_params(1)
    params.centre, params.gamma = templates[0].grid_centre, 1.0
    image, target = gen.render(params)
    wm, csf = image[target == 2].mean(), image[target == 3].mean()
    assert (wm > csf) if mode in ("t1", "flair") else (csf > wm)


def test_restyle_renders_the_same_anatomy_in_another_contrast(phantom_template):
    gen = _generator(phantom_template, mode="t2", morphology_probability=1.0, elastic_std=(2, 2),
                     flip_probability=0.5, fov_cut_probability=1.0, strip_probability=0.5, prior_jitter=0.0)
    for seed in range(4):
        params = gen.sample_params(seed)
        t2, target = gen.render(params)
        restyled = gen.restyle(params, "t1")
        t1, same_target = gen.render(restyled)
        assert torch.equal(target, same_target) and restyled.modality == "t1"
        assert {k: v for k, v in restyled.to_dict().items() if k not in ("modality", "means")} == \
            {k: v for k, v in params.to_dict().items() if k not in ("modality", "means")}
        wm, csf = target == 2, target == 3
        assert t1[wm].mean() > t1[csf].mean() and t2[csf].mean() > t2[wm].mean()
        assert restyled == gen.restyle(params, "t1")  # seeded by the sample


def test_restyle_of_ct_gives_mr_and_refuses_other_targets(phantom_template):
    gen = _generator(phantom_template, mode="ct")
    params = gen.sample_params(2)
    image, _ = gen.render(gen.restyle(params, "flair"))
    assert gen.restyle(params, "flair").ct_window is None and 0 <= image.min() and image.max() <= 1
    with pytest.raises(ValueError, match="restyle: contrast must be one of t1, t2, flair, pd, got 'ct'"):
        gen.restyle(params, "ct")


def test_morphology_and_partial_volume_run(phantom_template):
    gen = _generator(phantom_template, partial_volume_probability=1.0, morphology_probability=1.0,
                     cortex_rebuild_probability=1.0, spacing=8.0)  # 8 mm output from the 4 mm phantom
    params = gen.sample_params(3)
    assert params.partial_volume and params.morphology
    image, target = gen.render(params)
    assert image.shape == (24, 24, 24) and set(target.unique().tolist()) <= set(range(17))


def test_partial_volume_changes_the_rendering_not_the_shape(phantom_template):
    gen = _generator(phantom_template, spacing=8.0, rotation=20, scaling=0.2, elastic_std=(3, 3),
                     morphology_probability=0.0, fov_cut_probability=0.0)
    params = gen.sample_params(4)
    fine = gen._sample_labels(params, 2, torch.Generator().manual_seed(0))
    coarse = gen._sample_labels(params, 1, torch.Generator().manual_seed(0))
    assert fine.shape == (47, 47, 47)
    assert torch.equal(fine[::2, ::2, ::2], coarse)


def test_morphology_renders_on_the_fine_grid_and_never_exceeds_the_drawn_distance(phantom_template):
    # 8 mm output from the 4 mm phantom: morphology must run on the 4 mm grid, in whole voxels
    gen = _generator(phantom_template, spacing=8.0, partial_volume_probability=0.0, morphology_probability=1.0,
                     cortex_wm=7.0, cortex_csf=3.9, nuclei_wm=False, cortex_rebuild_probability=0.0)
    steps = set()
    for seed in range(12):
        params = gen.sample_params(seed)
        assert params.partial_volume
        assert abs(params.morphology["cortex_wm"]) * 4.0 <= 7.0 and params.morphology["cortex_csf"] == 0
        assert params.morphology["nuclei_wm"] == 0
        steps.add(params.morphology["cortex_wm"])
    assert steps == {-1, 0, 1}


def test_stripping_keeps_the_brain_and_blanks_the_rest_in_image_and_target(phantom_template):
    brain_ids = [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    plain = _generator(phantom_template, fov_cut_probability=0.0, strip_probability=0.0)
    stripped = _generator(phantom_template, fov_cut_probability=0.0, strip_probability=1.0, strip_margin=0.0,
                          strip_closing=0.0)  # the mask is the brain itself (closing: tests/synthesis/test_acquisition)
    for seed in range(3):
        params = stripped.sample_params(seed)
        assert params.strip_margin == 0
        drawn = plain.sample_params(seed)  # stripping is drawn last: the rest of the sample is unchanged
        assert drawn.strip_margin is None and {**drawn.to_dict(), "strip_margin": 0} == params.to_dict()
        image, target = plain.render(drawn)
        image_s, target_s = stripped.render(params)
        kept = target_s > 0
        assert torch.isin(target[torch.isin(target, torch.tensor(brain_ids))], target_s).all()
        assert torch.equal(target_s[kept], target[kept]) and torch.equal(image_s[kept], image[kept])
        assert (image_s[~kept] == 0).all() and not torch.isin(target_s, torch.tensor([15, 16])).any()
        brain = torch.isin(target, torch.tensor(brain_ids))
        assert (target_s[brain] == target[brain]).all() and torch.equal(kept, brain)


def test_unknown_template_codes_are_refused(phantom_template):
    templates, recipe = phantom_template
    bad = dataclasses.replace(templates[0], labels=templates[0].labels.astype(np.int32) + 100)
    with pytest.raises(ValueError, match="not in recipe"):
        Generator([bad], recipe, GeneratorConfig(**SMALL))
