import json
import shutil

import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.inference.experts import (SIGNATURE_IDS, ContrastClassifier, Expert, choose_expert, contrast_signature,
                                        standardised)
from synthseg.inference.segmenter import Segmenter
import synthseg.inference.segmenter as segmenter_module
from synthseg.training.export import add_expert, export_model
from synthseg.training.routing import calibrate_routing

T1 = [0.5, 0.77, 0.13, 0.14, 0.5, 0.67, 0.71, 0.58, 0.58, 0.5]  # clean 2 mm T1 renders, GM ... hippocampus
T2 = [0.49, 0.36, 1.0, 0.98, 0.49, 0.38, 0.26, 0.4, 0.4, 0.49]


def test_signature_is_the_mean_per_structure_and_nan_when_too_small():
    labels = np.zeros((10, 10, 10), dtype=np.int64)
    labels[:5] = 1
    labels[5:, :5] = 2
    labels[9, 9, 9] = 3  # one voxel: too few to measure
    image = np.where(labels == 1, 0.25, 0.0) + np.where(labels == 2, np.linspace(0, 1, 10)[None, :, None], 0.0)
    signature = contrast_signature(image, labels)
    assert signature.shape == (len(SIGNATURE_IDS),)
    assert signature[0] == pytest.approx(0.25)
    assert signature[1] == pytest.approx(np.linspace(0, 1, 10)[:5].mean())
    assert np.isnan(signature[2:]).all()


def test_the_best_correlated_expert_is_chosen_above_the_threshold():
    experts = [Expert("t1", None, T1), Expert("t2", None, T2), Expert("ct", None, None)]
    t1_like = np.asarray(T1) * 0.8 + 0.1 + np.linspace(0, 0.02, len(T1))
    chosen, r = choose_expert(experts, "mr", t1_like)
    assert chosen.contrast == "t1" and r > 0.99
    assert choose_expert(experts, "mr", np.asarray(T2)[::-1].copy())[0] is None  # unlike any expert
    assert choose_expert(experts, "mr", np.full(len(T1), np.nan))[0] is None  # no brain found
    assert choose_expert(experts, "ct", t1_like)[0].contrast == "ct"
    assert choose_expert(experts[:2], "ct", t1_like) == (None, 0.0)


def noisy(signature, n, rng):
    """``n`` scans of one contrast: the signature under random brightness, contrast and noise."""
    base = np.asarray(signature)
    return [rng.uniform(0.5, 2) * (base + rng.normal(0, 0.05, base.shape)) + rng.uniform(-1, 1) for _ in range(n)]


def test_the_contrast_classifier_separates_contrasts_whatever_the_brightness():
    rng = np.random.default_rng(0)
    classifier = ContrastClassifier.fit(np.stack(noisy(T1, 30, rng) + noisy(T2, 30, rng)), ["t1"] * 30 + ["t2"] * 30)
    assert classifier.contrasts == ("t1", "t2")
    for contrast, signature in (("t1", T1), ("t2", T2)):
        for scan in noisy(signature, 20, rng):
            scores = classifier.scores(scan)
            assert max(scores, key=scores.get) == contrast
            assert classifier.scores(3 * scan + 7) == pytest.approx(scores)  # brightness and contrast removed
    again = ContrastClassifier.from_card(classifier.to_card())
    assert again.contrasts == classifier.contrasts and again.scores(T1) == pytest.approx(classifier.scores(T1), abs=1e-4)
    missing = np.array(T1, float)
    missing[[2, 5]] = np.nan
    assert np.isfinite(standardised(missing)).all() and standardised(missing)[[2, 5]].tolist() == [0, 0]


@pytest.mark.parametrize("signatures, contrasts, options, message", [
    ([T1, T1], ["t1", "t1"], {}, "at least two contrasts"),
    ([T1, T2], ["t1", "t2"], {"shrinkage": 1.5}, "shrinkage must be in"),
])
def test_the_contrast_classifier_refuses_what_it_cannot_fit(signatures, contrasts, options, message):
    with pytest.raises(ValueError, match=message):
        ContrastClassifier.fit(np.array(signatures), contrasts, **options)
    with pytest.raises(ValueError, match="do not fit 2 contrasts"):
        ContrastClassifier.from_card({"contrasts": ["t1", "t2"], "weights": [[0.0] * 3] * 2, "offsets": [0, 0]})


def test_the_classifier_picks_among_the_experts_a_scan_may_reach():
    experts = [Expert("t1", None, T1), Expert("t2", None, T2), Expert("ct", None, None)]
    prefers_t2 = ContrastClassifier(("t1", "t2"), np.zeros((2, len(SIGNATURE_IDS))), np.array([0.0, 1.0]))
    chosen, r = choose_expert(experts, "mr", np.asarray(T1), prefers_t2)
    assert chosen.contrast == "t2" and r == pytest.approx(1.0)  # the gate's correlation: T1's
    assert choose_expert(experts, "mr", np.asarray(T2)[::-1].copy(), prefers_t2)[0] is None  # still gated
    assert choose_expert(experts, "ct", np.asarray(T1), prefers_t2)[0].contrast == "ct"


def test_added_experts_are_listed_loaded_and_route_a_t1_scan(tiny_model, tiny_checkpoint, phantom_t1, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    for contrast in ("t1", "t2", "t1"):  # adding a contrast again replaces it, in its place in the list
        add_expert(tiny_checkpoint, model, contrast, fp16=False)
    card = json.loads((model / "model.json").read_text())
    assert [e["contrast"] for e in card["experts"]] == ["t1", "t2"]
    t1 = np.asarray(card["experts"][0]["signature"])
    gm, wm, csf = t1[:3]
    assert wm > gm > csf  # the T1 ordering, measured on renders of the phantom
    assert (model / "experts" / "t1" / "model.pt").is_file()
    with pytest.raises(SynthSegError, match="contrast"):
        add_expert(tiny_checkpoint, model, "dwi")

    segmenter = Segmenter(model, device="cpu", tta=False)
    assert [e.contrast for e in segmenter.loaded.experts] == ["t1", "t2"]
    result = segmenter.segment(phantom_t1[0])
    assert result.expert is not None and result.expert["contrast"] == "t1"
    # the signature that chose the expert is kept, and reproduces the recorded correlation
    signature = np.array([np.nan if v is None else v for v in result.signature])
    assert signature.shape == (len(SIGNATURE_IDS),)
    assert choose_expert(segmenter.loaded.experts, "mr", signature)[1] == pytest.approx(
        result.expert["correlation"], abs=1e-3)
    qc = json.loads(result.save(tmp_path / "out", qc=True)["qc"].read_text())
    assert qc["contrast_signature"] == result.signature
    general = Segmenter(model, device="cpu", tta=False, experts=False).segment(phantom_t1[0])
    assert general.expert is None and general.signature is None
    assert not Segmenter(model, device="cpu", experts=False).loaded.experts

    named = Segmenter(model, device="cpu", tta=False, contrast="t2")  # the user's word: no first pass, no signature
    named._first_pass = lambda work: pytest.fail("a named contrast was routed")
    result_t2 = named.segment(phantom_t1[0])
    assert result_t2.expert == {"contrast": "t2", "named": True} and result_t2.signature is None
    assert np.array_equal(np.asarray(result_t2.labels.dataobj), np.asarray(result.labels.dataobj))  # same weights
    with pytest.raises(SynthSegError, match=r"one of the model's MR experts \(t1, t2\), got 'flair'"):
        Segmenter(model, device="cpu", contrast="flair")
    with pytest.raises(SynthSegError, match="experts are off"):
        Segmenter(model, device="cpu", experts=False, contrast="t1")
    named.modality = "ct"
    with pytest.raises(SynthSegError, match="phantom_t1.nii.gz: reads as CT, but contrast='t2' names an MR expert"):
        named.segment(phantom_t1[0])


def test_exporting_a_new_network_into_a_model_folder_keeps_its_experts(tiny_model, tiny_checkpoint, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    add_expert(tiny_checkpoint, model, "t1", fp16=False)
    experts = json.loads((model / "model.json").read_text())["experts"]
    export_model(tiny_checkpoint, model)  # the general network replaced, fp16 this time
    card = json.loads((model / "model.json").read_text())
    assert card["experts"] == experts and card["weights_dtype"] == "float16"
    assert [e.contrast for e in Segmenter(model, device="cpu").loaded.experts] == ["t1"]

    card["network"]["channels"] = [8, 16, 32]  # experts of another network: refused, nothing written
    (model / "model.json").write_text(json.dumps(card))
    weights = (model / "model.pt").read_bytes()
    with pytest.raises(SynthSegError, match="1 contrast expert.*another shape"):
        export_model(tiny_checkpoint, model, fp16=False)
    assert (model / "model.pt").read_bytes() == weights
    assert json.loads((model / "model.json").read_text()) == card


def test_a_card_expert_entry_without_its_folder_is_a_one_line_error(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    card = json.loads((model / "model.json").read_text())
    card["experts"] = [{"contrast": "t1", "signature": None}]
    (model / "model.json").write_text(json.dumps(card))
    with pytest.raises(SynthSegError, match="without 'contrast' and 'folder'"):
        Segmenter(model, device="cpu")
    assert Segmenter(model, device="cpu", experts=False).loaded.experts == []


def test_calibrated_routing_is_stored_used_and_dropped_when_it_no_longer_fits(tiny_model, tiny_checkpoint, phantom_t1,
                                                                             tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    add_expert(tiny_checkpoint, model, "t1", fp16=False)
    with pytest.raises(SynthSegError, match="at least two MR experts.*t1"):
        calibrate_routing(model, device="cpu")
    add_expert(tiny_checkpoint, model, "t2", fp16=False)
    calibrate_routing(model, device="cpu", amp="off")
    routing = json.loads((model / "model.json").read_text())["routing"]
    assert sorted(routing["contrasts"]) == ["t1", "t2"]
    assert routing["calibration"]["scans"] == 3 * 2 * 2  # the phantom's 3 training heads, 2 contrasts, 2 regimes
    assert 0 <= routing["calibration"]["accuracy"] <= 1

    segmenter = Segmenter(model, device="cpu", tta=False, amp="off")
    assert segmenter.loaded.classifier.contrasts == tuple(routing["contrasts"])
    result = segmenter.segment(phantom_t1[0])
    # the signature calibration reads is the one segment() routes by
    assert np.allclose(segmenter.routing_signature(phantom_t1[0]), np.array(result.signature, float), atol=1e-4,
                       equal_nan=True)
    scores = segmenter.loaded.classifier.scores(np.array(result.signature, float))
    assert result.expert["contrast"] == max(scores, key=scores.get)

    add_expert(tiny_checkpoint, model, "t2", fp16=False)  # a contrast it knows: kept
    assert "routing" in json.loads((model / "model.json").read_text())
    card = json.loads((model / "model.json").read_text())
    card["routing"]["contrasts"] = ["t1", "flair"]
    (model / "model.json").write_text(json.dumps(card))
    with pytest.raises(SynthSegError, match="covers flair, t1 but the MR experts are t1, t2; run synthseg calibrate"):
        Segmenter(model, device="cpu")
    assert Segmenter(model, device="cpu", experts=False).loaded.classifier is None
    with pytest.raises(SynthSegError, match="nowhere"):  # templates moved: named, nothing written
        calibrate_routing(model, templates=tmp_path / "nowhere", device="cpu")
    assert json.loads((model / "model.json").read_text())["routing"]["contrasts"] == ["t1", "flair"]
    calibrate_routing(model, templates="phantom", device="cpu", amp="off")  # the stale fit replaced
    assert sorted(Segmenter(model, device="cpu").loaded.classifier.contrasts) == ["t1", "t2"]
    fitted = json.loads((model / "model.json").read_text())["routing"]
    add_expert(tiny_checkpoint, model, "pd", fp16=False)  # a contrast it does not know: dropped
    card = json.loads((model / "model.json").read_text())
    assert "routing" not in card
    card["routing"] = fitted  # a fit in the card again (stale or not, a new general network ends it)
    (model / "model.json").write_text(json.dumps(card))
    export_model(tiny_checkpoint, model, fp16=False)  # a new general network: dropped, experts kept
    card = json.loads((model / "model.json").read_text())
    assert "routing" not in card and len(card["experts"]) == 3


def _checkpoint_at_spacing(checkpoint, spacing: float, path):
    """The same weights under a config that says they were trained on a ``spacing`` mm working grid."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["config"]["generator"]["spacing"] = spacing
    torch.save(state, path)
    return path


def test_a_fine_grid_joins_the_tta_of_fine_scans_routed_to_its_expert(tiny_model, tiny_checkpoint, phantom_t1,
                                                                      tmp_path, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    fine = _checkpoint_at_spacing(tiny_checkpoint, 3.0, tmp_path / "fine.pt")  # the model's grid: 4 mm
    with pytest.raises(SynthSegError, match="lists no t1 expert"):
        add_expert(fine, model, "t1", fine=True)
    add_expert(tiny_checkpoint, model, "t1", fp16=False)
    expert_weights = (model / "experts" / "t1" / "model.pt").read_bytes()
    with pytest.raises(SynthSegError, match="finer than its 4.0 mm"):
        add_expert(tiny_checkpoint, model, "t1", fine=True)
    with pytest.raises(SynthSegError, match="working spacing"):  # the expert itself on another grid: refused ...
        add_expert(fine, model, "t1")
    assert (model / "experts" / "t1" / "model.pt").read_bytes() == expert_weights  # ... and the listed one kept
    assert not (model / "experts" / "t1-fine").exists() and len(list((model / "experts").iterdir())) == 1
    add_expert(fine, model, "t1", fine=True, fp16=False)
    add_expert(tiny_checkpoint, model, "t1", fp16=False)  # the expert replaced: its fine grid stays
    (entry,) = json.loads((model / "model.json").read_text())["experts"]
    assert entry["folder"] == "experts/t1" and entry["fine"] == {"folder": "experts/t1-fine"}

    grids = []
    original = Segmenter._other_grid

    def recording(self, canonical, modality, spacing, network, overlap, turn, timings):
        grids.append((spacing, overlap))
        return original(self, canonical, modality, spacing, network, overlap, turn, timings)

    monkeypatch.setattr(Segmenter, "_other_grid", recording)
    segmenter = Segmenter(model, device="cpu")
    assert segmenter.loaded.experts[0].fine.spacing_mm == 3.0
    result = segmenter.segment(phantom_t1[0])  # voxels of 4 mm: coarser than FINE_SCAN_MAX_SPACING_MM
    assert grids == [(3.6, 0.5)] and "fine_grid_mm" not in result.expert
    monkeypatch.setattr(segmenter_module, "FINE_SCAN_MAX_SPACING_MM", 4.0)
    grids.clear()
    result = segmenter.segment(phantom_t1[0])
    assert grids == [(3.6, 0.5), (3.0, 0.25)]  # the fine grid's windows overlap by FINE_GRID_OVERLAP
    assert result.expert == {**result.expert, "contrast": "t1", "fine_grid_mm": 3.0}
    grids.clear()
    one_pass = Segmenter(model, device="cpu", tta=False).segment(phantom_t1[0])
    assert grids == [] and "fine_grid_mm" not in one_pass.expert
