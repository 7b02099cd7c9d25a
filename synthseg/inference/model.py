"""Finding and loading exported models (weights + model card); never downloads anything."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from synthseg.errors import SynthSegError
from synthseg.inference.experts import Expert
from synthseg.networks import build_network

DEFAULT_MODEL = "synthseg-2mm"


@dataclass
class LoadedModel:
    network: torch.nn.Module
    card: dict
    path: Path | None
    experts: list[Expert] = field(default_factory=list)


def shipped_models_dir() -> Path:
    return Path(str(resources.files("synthseg.shipped_models")))


def list_models() -> list[dict]:
    """Model cards of the shipped models (cheap: reads JSON only)."""
    cards = []
    for card in sorted(shipped_models_dir().glob("*/model.json")):
        data = json.loads(card.read_text(encoding="utf-8"))
        cards.append({"name": card.parent.name, "path": str(card.parent), "steps": data["training"]["steps"],
                      "spacing_mm": data["spacing_mm"], "sha256": data["sha256"]})
    return cards


def resolve_model_path(model: str | Path | None) -> Path:
    """``None`` → the default shipped model; a shipped name; or a folder/``model.json`` path."""
    if model is None:
        model = DEFAULT_MODEL
    candidate = Path(model)
    if candidate.is_file() and candidate.name.endswith(".json"):
        return candidate.parent
    if candidate.is_dir() and (candidate / "model.json").is_file():
        return candidate
    shipped = shipped_models_dir() / str(model)
    if (shipped / "model.json").is_file():
        return shipped
    names = [c["name"] for c in list_models()]
    raise SynthSegError(f"no such model; shipped models: {', '.join(names) or 'none'} (or give a folder "
                        "holding model.json)", model)


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
