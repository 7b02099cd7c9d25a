"""Which models are shipped and where: reads model cards only, so listing models needs no torch."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from synthseg.errors import SynthSegError

DEFAULT_MODEL = "synthseg-2mm"


def shipped_models_dir() -> Path:
    return Path(str(resources.files("synthseg.shipped_models")))


def list_models() -> list[dict]:
    """Model cards of the shipped models (cheap: reads JSON only)."""
    cards = []
    for card in sorted(shipped_models_dir().glob("*/model.json")):
        data = json.loads(card.read_text(encoding="utf-8"))
        training = data["training"]
        experts = [e["contrast"] + (" (+ fine grid)" if "fine" in e else "") for e in data.get("experts", [])]
        cards.append({"name": card.parent.name, "path": str(card.parent),
                      "steps": training.get("total_steps", training["steps"]), "spacing_mm": data["spacing_mm"],
                      "experts": experts, "sha256": data["sha256"],
                      "routing_calibrated": "routing" in data})
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
