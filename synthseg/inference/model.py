"""Loading exported models (weights + model card, found through the catalogue); never downloads anything."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synthseg.errors import SynthSegError
from synthseg.inference.catalog import resolve_model_path
from synthseg.inference.experts import Expert
from synthseg.networks import build_network


@dataclass
class LoadedModel:
    network: torch.nn.Module
    card: dict
    path: Path | None
    experts: list[Expert] = field(default_factory=list)


def load_model(model: str | Path | None, device: torch.device, experts: bool = True) -> LoadedModel:
    """The network of a model folder, and the contrast experts its card lists (unless ``experts=False``)."""
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
        loaded.experts.append(Expert(entry["contrast"], expert.network, entry.get("signature")))
    return loaded
