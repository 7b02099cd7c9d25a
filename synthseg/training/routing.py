"""Calibrate how a model folder routes MR scans among its contrast experts.

Routing reads a scan's contrast signature under the general network's own first pass. The classifier
that picks the expert is therefore fitted on exactly those signatures: the model's training templates
(never its held-out ones) rendered in each expert's contrast at their own voxel size and with 6 mm
thick slices, with the generator's jittered appearance, each passed through the segmenter as a user's
scan would be. Replacing the general network invalidates the fit (``export_model`` drops it).
The same command stores the training templates' reference head pose, which inference compares a scan's
with (:mod:`synthseg.inference.pose`).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from synthseg.errors import SynthSegError
from synthseg.inference.experts import ContrastClassifier
from synthseg.training.export import CARD, write_card

THICK_SLICES_MM = (None, 6.0)  # how each calibration scan is acquired: template voxels, then 6 mm slices


def template_pose(config: dict, templates: str | Path | None = None) -> dict:
    """The card's ``"pose"`` (:func:`synthseg.inference.pose.reference_pose`) from the training templates of a
    card's training config; ``templates`` replaces its template folder."""
    from synthseg.inference.pose import reference_pose
    from synthseg.training.config import config_from_dict
    from synthseg.training.trainer import load_template_split

    parsed = config_from_dict(config)
    if templates is not None:
        parsed.data.templates = str(templates)
    train, _, recipe = load_template_split(parsed)
    return reference_pose(train, recipe)


def calibrate_pose(model_dir: str | Path, *, templates: str | Path | None = None) -> Path:
    """Store the training templates' reference head pose in ``model_dir``'s card (``"pose"``), which lets
    inference turn its working grid to a tilted head (seconds: no network runs)."""
    card_path = Path(model_dir) / CARD
    if not card_path.is_file():
        raise SynthSegError("not a model folder (no model.json)", model_dir)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["pose"] = template_pose(card["training"]["config"], templates)
    return write_card(card_path, card)


def calibrate_routing(model_dir: str | Path, *, draws: int = 1, templates: str | Path | None = None,
                      device: str = "auto", amp: str = "auto", log: Callable[[str], None] = lambda line: None) -> Path:
    """Fit the classifier that routes MR scans among ``model_dir``'s experts and store it in its card
    (``"routing"``), with how it was fitted and its accuracy on its own calibration scans, and the
    templates' reference head pose (``"pose"``, as :func:`calibrate_pose`).

    ``draws`` renders of each training template per contrast and slice regime, each from its own seed;
    ``templates`` is the template folder when it is no longer where the model was trained from (the
    card's ``data.templates``); its held-out templates are still left out."""
    from synthseg.inference.pose import reference_pose
    from synthseg.inference.segmenter import Segmenter
    from synthseg.synthesis.scans import render_scan
    from synthseg.training.config import config_from_dict
    from synthseg.training.trainer import load_template_split

    if draws < 1:
        raise SynthSegError(f"draws must be at least 1, got {draws!r}")
    card_path = Path(model_dir) / CARD
    # the general network alone: a stale "routing" in the card must not stop its own replacement
    segmenter = Segmenter(model_dir, device=device, tta=False, amp=amp, experts=False)
    card = segmenter.card
    contrasts = [e["contrast"] for e in card.get("experts", []) if e.get("signature") is not None]
    if len(contrasts) < 2:
        raise SynthSegError(f"routing needs at least two MR experts to choose between, the card lists "
                            f"{', '.join(contrasts) or 'none'}", card_path)
    config = config_from_dict(card["training"]["config"])
    if templates is not None:
        config.data.templates = str(templates)
    train, _, recipe = load_template_split(config)
    signatures, truth = [], []
    for draw in range(draws):
        for template in train:
            for contrast in contrasts:
                for thick in THICK_SLICES_MM:
                    case = f"{template.name}/{contrast}/{f'{thick:g}mm' if thick else 'native'}/calibration-{draw}"
                    image, _ = render_scan(template, recipe, contrast, zlib.crc32(case.encode()) % 10_000, thick)
                    signatures.append(segmenter.routing_signature(image))
                    truth.append(contrast)
                    log(case)
    classifier = ContrastClassifier.fit(np.stack(signatures), truth)
    picked = [max(scores, key=scores.get) for scores in map(classifier.scores, signatures)]
    card["pose"] = reference_pose(train, recipe)
    card["routing"] = {**classifier.to_card(), "calibration": {
        "templates": [t.name for t in train], "draws": draws, "slices_mm": ["native" if t is None else t
                                                                           for t in THICK_SLICES_MM],
        "scans": len(truth), "accuracy": round(float(np.mean([p == t for p, t in zip(picked, truth)])), 4),
        "general_sha256": card.get("sha256")}}
    return write_card(card_path, card)
