"""Loading exported models (weights + model card, found through the catalogue); never downloads anything."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synthseg.errors import SynthSegError
from synthseg.inference.catalog import resolve_model_path
from synthseg.inference.experts import ContrastClassifier, Expert, FineGrid
from synthseg.networks import build_network


@dataclass
class LoadedModel:
    network: torch.nn.Module
    card: dict
    path: Path | None
    experts: list[Expert] = field(default_factory=list)
    classifier: ContrastClassifier | None = None  # picks among the MR experts (card "routing"), if calibrated


def load_model(model: str | Path | None, device: torch.device, experts: bool = True) -> LoadedModel:
    """The network of a model folder, and the contrast experts its card lists with the classifier that
    routes scans among them (unless ``experts=False``)."""
    folder = resolve_model_path(model)
    try:
        card = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        state = torch.load(folder / card["weights"], map_location="cpu", weights_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise SynthSegError(f"model is unreadable ({error})", folder) from None
    network = build_network(card["network"])
    network.load_state_dict({k: v.float() for k, v in state.items()})
    loaded = LoadedModel(network.to(device).eval(), card, folder)
    for entry in card.get("experts", []) if experts else []:
        if not isinstance(entry, dict) or not {"contrast", "folder"} <= entry.keys():
            raise SynthSegError(f"card lists an expert without 'contrast' and 'folder': {entry!r}",
                                folder / "model.json")
        expert = load_model(folder / entry["folder"], device, experts=False)
        loaded.experts.append(Expert(entry["contrast"], expert.network, entry.get("signature"),
                                     _fine_grid(entry.get("fine"), folder, device)))
    if experts and "routing" in card:
        loaded.classifier = _classifier(card["routing"], loaded.experts, folder / "model.json")
    return loaded


def _fine_grid(entry: dict | None, folder: Path, device: torch.device) -> FineGrid | None:
    """An expert's fine grid as its card entry lists it (``{"folder"}``, whose own card gives the spacing), or None."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or "folder" not in entry:
        raise SynthSegError(f"card lists a fine grid without its 'folder': {entry!r}", folder / "model.json")
    fine = load_model(folder / entry["folder"], device, experts=False)
    return FineGrid(fine.network, float(fine.card["spacing_mm"]))


def _classifier(entry: dict, experts: list[Expert], card_path: Path) -> ContrastClassifier:
    """The card's routing classifier, which must cover exactly the MR experts it lists."""
    try:
        classifier = ContrastClassifier.from_card(entry)
    except (KeyError, TypeError, ValueError) as error:
        raise SynthSegError(f"card's routing classifier is unreadable ({error})", card_path) from None
    mr = sorted(e.contrast for e in experts if e.signature is not None)
    if sorted(classifier.contrasts) != mr:
        raise SynthSegError(f"card's routing classifier covers {', '.join(sorted(classifier.contrasts))} but the "
                            f"MR experts are {', '.join(mr) or 'none'}; run synthseg calibrate", card_path)
    return classifier
