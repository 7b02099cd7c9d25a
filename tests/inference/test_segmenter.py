import json

import nibabel as nib
import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.inference.preprocessing import bias_corrected, ct_scale, looks_like_ct, to_hounsfield
from synthseg.inference.segmenter import Segmenter, looks_skull_stripped, segment, soft_volumes
import synthseg.inference.segmenter as segmenter_module
from synthseg.io.geometry import resample_to_grid
from synthseg.labels.protocol import NUM_CLASSES
from tests.conftest import write_nifti


@pytest.fixture(scope="module")
def segmenter(tiny_model):
    return Segmenter(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def one_pass(tiny_model):
    """For what happens before the network (fills, clipping, CT units): one pass shows it at half the time."""
    return Segmenter(tiny_model, device="cpu", tta=False)


def _reoriented(data, affine, codes):
    img = nib.Nifti1Image(data, affine)
    transform = nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt(codes))
    return img.as_reoriented(transform)


def _to_ras(img) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(img).dataobj)


def _centre(img) -> np.ndarray:
    """World coordinates of a grid's centre."""
    return (img.affine @ np.append((np.asarray(img.shape[:3]) - 1) / 2, 1))[:3]


def test_labels_keep_the_input_grid_and_header(segmenter, phantom_t1, tmp_path):
    path, _, affine = phantom_t1
    source = nib.load(str(path))
    source.header.set_qform(affine, code=2)
    nib.save(source, str(tmp_path / "in.nii.gz"))
    result = segmenter.segment(tmp_path / "in.nii.gz", posteriors=True)
    assert result.labels.shape == source.shape and np.allclose(result.labels.affine, source.affine)
    assert result.labels.get_data_dtype() == np.uint8 and int(result.labels.header["qform_code"]) == 2
    saved = nib.load(str(result.save(tmp_path / "out")["posteriors"]))
    assert saved.shape == (*source.shape, 17) and saved.get_data_dtype() == np.uint8
    assert np.allclose(saved.get_fdata().sum(-1), 1.0, atol=0.05)
    scan_ml = np.prod(source.shape) * np.prod(source.header.get_zooms()) / 1000
    structures = {k: v for k, v in result.volumes.items() if k != "ICV"}
    assert all(v >= 0 for v in structures.values()) and 0 < sum(structures.values()) < scan_ml
    assert result.volumes["ICV"] == pytest.approx(sum(structures[k] for k in list(structures)[:14]), abs=0.01)
    assert set(result.qc) >= {"GM", "Hippo"} and "mean_confidence" in result.qc["GM"]
    brain = ["GM", "WM", "CSF", "CSFv", "cerGM", "Thal", "Pal", "Put", "Caud", "Accu", "Amyg", "Hippo"]
    assert 0 < result.brain_confidence == pytest.approx(np.mean([result.qc[k]["mean_confidence"] for k in brain]),
                                                        abs=1e-3)


@pytest.mark.parametrize("codes", [("L", "P", "S"), ("L", "I", "A"), ("P", "S", "R")])
def test_orientations_give_the_same_labels(segmenter, phantom_t1, codes):
    path, _, affine = phantom_t1
    data = nib.load(str(path)).get_fdata().astype(np.float32)
    reference = segmenter.segment(data, affine=affine).labels
    moved = _reoriented(data, affine, codes)
    result = segmenter.segment(moved).labels
    assert nib.aff2axcodes(result.affine) == codes
    assert np.array_equal(_to_ras(result), _to_ras(reference))


def test_oblique_affine_gives_the_same_labels(segmenter, phantom_t1):
    path, _, affine = phantom_t1
    data = nib.load(str(path)).get_fdata().astype(np.float32)
    angle = np.deg2rad(20)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    straight = np.asarray(segmenter.segment(data, affine=affine).labels.dataobj)
    oblique = segmenter.segment(data, affine=rotation @ affine).labels
    assert np.allclose(oblique.affine, rotation @ affine)
    assert np.mean(np.asarray(oblique.dataobj) == straight) > 0.999


def test_thick_slices_and_array_api(segmenter, phantom_t1):
    path, _, affine = phantom_t1
    data = nib.load(str(path)).get_fdata().astype(np.float32)
    thick = data[:, :, ::2]
    thick_affine = affine.copy()
    thick_affine[:3, 2] *= 2
    result = segmenter.segment(thick, affine=thick_affine)
    assert result.labels.shape == thick.shape
    with pytest.raises(SynthSegError, match="needs its affine"):
        segmenter.segment(thick)


def test_a_scan_filled_with_minus_32768_outside_its_field_of_view_segments_as_with_zeros(one_pass, phantom_t1):
    path, _, affine = phantom_t1
    data = nib.load(str(path)).get_fdata().astype(np.float32)
    zeros, padded = data.copy(), data.copy()
    zeros[:, :, :3] = padded[:, :, :3] = 0
    padded[:, :, :3] = -32768  # an edge of the grid beyond what was scanned
    plain, filled = one_pass.segment(zeros, affine=affine), one_pass.segment(padded, affine=affine)
    fill_notes = [w for w in filled.warnings if "hold -32768" in w]
    assert len(fill_notes) == 1 and [w for w in filled.warnings if w not in fill_notes] == plain.warnings
    agree = np.mean(np.asarray(plain.labels.dataobj) == np.asarray(filled.labels.dataobj))
    assert agree > 0.99  # unrepaired: the head squeezed into the top of the range


def test_nan_outside_the_field_of_view_segments_as_the_lowest_value_with_a_warning(one_pass, phantom_t1):
    path, _, affine = phantom_t1
    data = nib.load(str(path)).get_fdata().astype(np.float32)
    data[:, :, :3] = data.min()
    with_nan = data.copy()
    with_nan[:, :, :3] = np.nan  # SPM writes NaN where a resliced scan saw nothing
    plain, filled = one_pass.segment(data, affine=affine), one_pass.segment(with_nan, affine=affine)
    assert filled.warnings == [f"{3 * data.shape[0] * data.shape[1]} NaN/Inf voxels "
                               f"({100 * 3 / data.shape[2]:.1f} %) read as background", *plain.warnings]
    assert np.array_equal(np.asarray(plain.labels.dataobj), np.asarray(filled.labels.dataobj))


def test_a_corrupt_voxel_far_below_the_scan_segments_as_without_it_with_a_warning(one_pass, phantom_t1):
    path, _, affine = phantom_t1
    data = nib.load(str(path)).get_fdata().astype(np.float32)
    corrupt = data.copy()
    corrupt[0, 0, 0] = -3.4e38  # left in place, the fill of every working-grid voxel beyond the scan
    plain, clipped = one_pass.segment(data, affine=affine), one_pass.segment(corrupt, affine=affine)
    assert clipped.warnings == ["1 voxel(s) far outside the rest of the scan's values (-3.4e+38) clipped to its range",
                                *plain.warnings]
    assert np.array_equal(np.asarray(plain.labels.dataobj), np.asarray(clipped.labels.dataobj))


def test_ct_is_recognised_from_hounsfield_units(segmenter, phantom_small, tmp_path):
    labels, affine = phantom_small
    hu = _hounsfield(labels).astype(np.int16)
    result = segmenter.segment(write_nifti(tmp_path / "ct.nii.gz", hu, affine))
    assert result.modality == "ct"


def _hounsfield(labels):
    hu = np.choose(np.clip(labels, 0, 16), [-1000, 40, 30, 8, 8, 40, 35, 40, 38, 38, 38, 40, 40, 60, 70, 1200,
                                              20]).astype(np.float32)
    return hu + np.random.default_rng(0).normal(0, 5, hu.shape)  # CT is never noise-free


def test_skull_stripped_ct_with_a_zero_background_is_recognised(segmenter, phantom_small, tmp_path):
    labels, affine = phantom_small
    stripped = np.where(np.isin(labels, range(1, 15)), _hounsfield(labels), 0).astype(np.float32)
    assert looks_like_ct(stripped)
    result = segmenter.segment(write_nifti(tmp_path / "stripped_ct.nii.gz", stripped, affine))
    assert result.modality == "ct"
    # the same values shifted to be non-negative, or scaled like an MR, no longer read as CT
    assert not looks_like_ct(np.where(stripped != 0, np.clip(stripped, 0.5, None), 0))
    assert not looks_like_ct(np.where(stripped != 0, stripped + 100, 0))
    assert not looks_like_ct(_hounsfield(labels) + 1000)  # no air at -1000 and no zero background


def _cormack(hu):
    """Hounsfield to Cormack units as the Clinical toolbox's h2c (air at 0, -124..76 HU stretched)."""
    shifted = np.clip(hu + 1024, 0, None)
    return shifted + 10 * np.clip(shifted - 900, 0, 200)


def test_ct_stored_as_hu_plus_1024_or_in_cormack_units_is_brought_back_to_hounsfield(phantom_small):
    labels, _ = phantom_small
    hu = np.clip(_hounsfield(labels), -1024, None)
    assert ct_scale(hu) == "hu" and ct_scale(np.where(labels < 15, hu, 0)) == "hu"
    for scale, stored in (("hu+1024", hu + 1024), ("cormack", _cormack(hu))):
        assert ct_scale(stored) == scale
        np.testing.assert_allclose(to_hounsfield(stored, scale), hu, atol=1e-3)
    assert looks_like_ct(hu + 1024)  # air near 0 and the brain around 1050: CT even under "auto"
    assert not looks_like_ct(_cormack(hu))  # too like a bright MR to take without --modality ct
    mr = np.choose(np.clip(labels, 0, 16), np.linspace(0, 3000, 17))  # an MR spread over the same values
    assert not looks_like_ct(mr)  # (ct_scale would call it Cormack: it is asked only of scans taken for CT)


def test_a_cormack_ct_segments_as_its_hounsfield_version_with_a_warning(one_pass, phantom_small):
    labels, affine = phantom_small
    hu = np.clip(_hounsfield(labels), -1024, None).astype(np.float32)
    one_pass.modality = "ct"
    try:
        reference, converted = one_pass.segment(hu, affine), one_pass.segment(_cormack(hu), affine)
    finally:
        one_pass.modality = "auto"
    np.testing.assert_array_equal(np.asarray(converted.labels.dataobj), np.asarray(reference.labels.dataobj))
    assert "Cormack units" in converted.warnings[0] and converted.warnings[1:] == reference.warnings


def test_bias_correction_runs_n4_inside_the_brain_on_mr_scans_only(tiny_model, phantom_t1_8mm, phantom_small,
                                                                   tmp_path, monkeypatch):
    import synthseg.inference.segmenter as segmenter_module

    fitted = []  # (mask, corrected scan) of every N4 call

    def recorded(data, spacing, mask):
        out = bias_corrected(data, spacing, mask)
        fitted.append((mask, out[0]))
        return out

    monkeypatch.setattr(segmenter_module, "bias_corrected", recorded)
    corrected = Segmenter(tiny_model, device="cpu", tta=False, bias_correct=True)
    plain = Segmenter(tiny_model, device="cpu", tta=False)
    scan, affine = phantom_t1_8mm  # RAS already: the canonical grid is the scan's
    biased = scan * np.linspace(0.6, 1.6, scan.shape[0], dtype=np.float32)[:, None, None]
    labels = lambda result: np.asarray(result.labels.dataobj)  # noqa: E731
    result = corrected.segment(biased, affine)
    (mask, n4_scan), = fitted
    assert mask.shape == scan.shape and 0.05 < mask.mean() < 0.9  # the brain, not the whole grid nor nothing
    assert np.array_equal(labels(result), labels(plain.segment(n4_scan, affine)))
    assert json.loads(result.save(tmp_path / "corrected", qc=True)["qc"].read_text())["bias_corrected"] is True
    shifted = corrected.segment(scan - scan.mean(), affine)  # not a magnitude image: left as it is, and said
    qc = json.loads(shifted.save(tmp_path / "shifted", qc=True)["qc"].read_text())
    assert not qc["bias_corrected"] and any("bias correction skipped" in w for w in qc["warnings"])
    assert np.array_equal(labels(shifted), labels(plain.segment(scan - scan.mean(), affine)))
    ct_labels, ct_affine = phantom_small
    hu = _hounsfield(ct_labels)
    calls = len(fitted)
    ct = corrected.segment(hu, ct_affine)
    assert ct.modality == "ct" and len(fitted) == calls and not any("bias correction" in w for w in ct.warnings)


def test_one_shot_function_and_save(tiny_model, phantom_t1, tmp_path):
    path, _, _ = phantom_t1
    result = segment(path, model=tiny_model, device="cpu")
    paths = result.save(tmp_path, qc=True)
    assert paths["labels"].name == "phantom_t1_dseg.nii.gz" and paths["qc"].exists()
    assert json.loads(paths["qc"].read_text())["skull_stripped"] is result.skull_stripped


def test_skull_stripped_inputs_are_recognised_from_skull_and_scalp_volumes():
    # volumes (ml) the shipped model gave for bert's norm.mgz (stripped) and chris_t1 (whole head)
    assert looks_skull_stripped({"Skull": 69, "Head": 19, "ICV": 1526})
    assert not looks_skull_stripped({"Skull": 533, "Head": 1122, "ICV": 1613})


def test_voxel_size_puts_every_output_on_an_isotropic_grid_along_the_scans_axes(tiny_model, phantom_t1, tmp_path):
    path, _, affine = phantom_t1
    data = nib.load(str(path)).get_fdata().astype(np.float32)
    scan = _reoriented(data[:, :, ::2], np.diag([1, 1, 2, 1]) @ affine, ("L", "I", "A"))  # 4 x 8 x 4 mm, turned
    nib.save(scan, str(tmp_path / "thick.nii.gz"))
    default = Segmenter(tiny_model, device="cpu", tta=False).segment(tmp_path / "thick.nii.gz", posteriors=True)
    fine = Segmenter(tiny_model, device="cpu", tta=False, voxel_size=2).segment(tmp_path / "thick.nii.gz",
                                                                                 posteriors=True)
    labels = fine.labels
    extent = np.asarray(scan.shape) * np.asarray(scan.header.get_zooms())
    assert labels.shape == tuple(int(n) for n in extent / 2) and np.allclose(labels.header.get_zooms(), 2)
    assert nib.aff2axcodes(labels.affine) == ("L", "I", "A") and labels.get_data_dtype() == np.uint8
    assert np.allclose(_centre(labels), _centre(scan))  # the same field of view
    saved = nib.load(str(fine.save(tmp_path / "out")["posteriors"]))
    assert saved.shape == (*labels.shape, 17) and np.allclose(saved.affine, labels.affine)
    values = np.asarray(labels.dataobj)
    assert fine.volumes == default.volumes  # expected volumes of the working grids, whatever the output grid
    # the coarse default labels sampled at the fine grid's voxel centres mostly agree with the fine labels
    back = resample_to_grid(np.asarray(default.labels.dataobj, np.float32), default.labels.affine, labels.shape,
                            labels.affine, order=0)
    assert np.mean(back == values) > 0.9
    own = Segmenter(tiny_model, device="cpu", tta=False, voxel_size=4.0).segment(path)  # the scan's own spacing
    assert np.array_equal(np.asarray(own.labels.dataobj), np.asarray(segment(path, model=tiny_model, device="cpu",
                                                                             tta=False).labels.dataobj))


def test_soft_volumes_are_the_expected_volumes_averaged_over_the_working_grids():
    probs = np.zeros((NUM_CLASSES, 4, 4, 4), np.float32)
    probs[0], probs[1, :2] = 1.0, 0.75  # half the grid: cortex with probability 0.75, else background
    probs[0, :2] = 0.25
    coarse, fine = np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([1.0, 1.0, 1.0, 1.0])
    volumes = soft_volumes([(probs, coarse), (probs, fine)])  # 32 voxels x 0.75 x (8 and 1 mm³), averaged
    assert volumes["GM"] == pytest.approx(32 * 0.75 * (8 + 1) / 2 / 1000) and volumes["WM"] == 0.0
    assert volumes["ICV"] == volumes["GM"]


def test_scans_far_larger_than_a_head_are_refused_before_the_network_runs(segmenter, monkeypatch):
    rng = np.random.default_rng(0)
    with pytest.raises(SynthSegError, match="field of view 1520 x 1520 x 1520 mm is far larger than a head"):
        segmenter.segment(rng.random((80, 80, 80), dtype=np.float32), np.diag([19.0, 19, 19, 1]))  # a header in cm

    def network(*args):
        raise AssertionError("the network ran")
    monkeypatch.setattr(segmenter, "_infer", network)
    body = 0.5 + rng.random((60, 60, 60), dtype=np.float32)  # 1.2 m of tissue: within the field-of-view limit
    with pytest.raises(SynthSegError, match="what looks like the head spans 1200 x 1200 x 1200 mm"):
        segmenter.segment(body, np.diag([20.0, 20, 20, 1]))


def test_a_scan_without_memory_for_tta_gets_one_pass_and_one_without_memory_for_that_is_refused(
        tiny_model, phantom_t1, monkeypatch):
    path, _, _ = phantom_t1
    segmenter, one_pass = Segmenter(tiny_model, device="cpu"), Segmenter(tiny_model, device="cpu", tta=False)
    single = one_pass.segment(path)
    needs = {}  # what the segmenter asked for, with and without TTA
    real_need = segmenter_module.memory_needed

    def need(scan, crop, tta, posteriors=False):
        needs[tta] = real_need(scan, crop, tta, posteriors)
        return needs[tta]
    monkeypatch.setattr(segmenter_module, "memory_needed", need)
    monkeypatch.setattr(segmenter_module, "room_since", lambda mark: None)  # the system does not say
    usual = segmenter.segment(path).warnings  # what the tiny model's labels say of the phantom, whatever the memory
    assert needs == {} and not any("memory" in w for w in usual)
    monkeypatch.setattr(segmenter_module, "room_since", lambda mark: 64e9)
    assert segmenter.segment(path).warnings == usual and list(needs) == [True]
    monkeypatch.setattr(segmenter_module, "room_since", lambda mark: needs[True] - 1)
    fallback = segmenter.segment(path)
    assert fallback.warnings[0].startswith("test-time augmentation skipped for lack of memory (it needs about")
    assert needs[False] < needs[True]
    assert np.array_equal(np.asarray(fallback.labels.dataobj), np.asarray(single.labels.dataobj))
    monkeypatch.setattr(segmenter_module, "room_since", lambda mark: needs[False] / 2)
    with pytest.raises(SynthSegError, match=rf"{path.name}: segmenting this scan needs about .* GB of memory"):
        segmenter.segment(path)


def test_unknown_model_and_device(tiny_model):
    with pytest.raises(SynthSegError, match="no such model"):
        Segmenter("no-such-model")
    with pytest.raises(SynthSegError, match="device"):
        Segmenter(tiny_model, device="tpu")


@pytest.mark.parametrize("option, message", [
    ({"threads": -2}, "threads must be a whole number >= 0"),
    ({"threads": 1.5}, "threads must be a whole number >= 0"),
    ({"modality": "pet"}, "modality must be one of auto, mr, ct, got 'pet'"),
    ({"overlap": 1.0}, r"overlap must be in \[0, 1\), got 1.0"),
    ({"amp": "fp8"}, "amp must be one of auto, off, bf16, fp16, got 'fp8'"),
    ({"voxel_size": 0.0}, r"voxel_size must be a number of mm in \[0.2, 10.0\].*got 0.0"),
    ({"voxel_size": 25}, "voxel_size must be a number of mm"),
    ({"voxel_size": "1"}, "voxel_size must be a number of mm"),
])
def test_bad_options_are_refused_before_the_model_loads(option, message):
    with pytest.raises(SynthSegError, match=message):
        Segmenter("no-such-model", **option)  # the option is named, not the missing model


def test_flip_tta_is_on_by_default_and_makes_predictions_mirror_equivariant(segmenter, tiny_model):
    assert segmenter.tta and not Segmenter(tiny_model, device="cpu", tta=False).tta
    assert segmenter._flips() == (False, True) and Segmenter(tiny_model, device="cpu", tta=False)._flips() == (False,)
    # volumes per hemisphere always get the mirrored pass: no side favoured by the network's own asymmetry
    assert Segmenter(tiny_model, device="cpu", tta=False, hemispheres=True)._flips() == (False, True)
    rng = np.random.default_rng(0)
    work = rng.random((32, 24, 20), dtype=np.float32)  # one window along the flipped axis: no padding there
    net, mirror = segmenter.loaded.network, np.ascontiguousarray(work[::-1])
    both = (False, True)
    np.testing.assert_allclose(segmenter._predict(mirror, net, both)[:, ::-1], segmenter._predict(work, net, both),
                               atol=1e-5)
    assert not np.allclose(segmenter._predict(mirror, net, (False,))[:, ::-1], segmenter._predict(work, net, (False,)),
                           atol=1e-3)


def test_tta_adds_a_finer_working_grid(tiny_model, phantom_t1):
    path = phantom_t1[0]
    with_tta, one_pass = Segmenter(tiny_model, device="cpu"), Segmenter(tiny_model, device="cpu", tta=False)
    spacing = float(with_tta.card["spacing_mm"])
    calls: dict[str, int] = {}
    grids: dict[str, list[np.ndarray]] = {}
    windows: dict[str, list] = {}
    for name, segmenter in (("tta", with_tta), ("one pass", one_pass)):
        calls[name], grids[name], windows[name] = 0, [], []

        def prepare(canonical, modality, grid_spacing, turn=None, window=None, overlap=0.5, name=name):
            work, box, affine = Segmenter._prepare(canonical, modality, grid_spacing, turn, window, overlap)
            grids[name].append(np.linalg.norm(affine[:3, :3], axis=0))
            windows[name].append(window)
            return work, box, affine

        segmenter._prepare = prepare
        hook = segmenter.loaded.network.register_forward_hook(lambda *_: calls.__setitem__(name, calls[name] + 1))
        labels = segmenter.segment(path).labels
        hook.remove()
        assert labels.shape == nib.load(str(path)).shape
    np.testing.assert_allclose(grids["one pass"], [np.full(3, spacing)])
    np.testing.assert_allclose(grids["tta"], [np.full(3, spacing), np.full(3, 0.9 * spacing)])
    # the first grid's crop keeps its whole margin (it routes the scan); the finer one's is fitted to the windows
    assert windows == {"one pass": [None], "tta": [None, tuple(with_tta.card["patch_size"])]}
    # two grids, each also mirrored; the finer one needs at least as many windows as the plain one
    assert calls["one pass"] >= 1 and calls["tta"] >= 4 * calls["one pass"]
