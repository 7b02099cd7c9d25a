"""Export a training checkpoint as shipped weights plus a model card (all inference reads)."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from synthseg import __version__
from synthseg.errors import SynthSegError
from synthseg.io.image import write_atomic
from synthseg.labels.protocol import STRUCTURES
from synthseg.synthesis.intensity import CT_INFERENCE_WINDOW, MR_PERCENTILES

WEIGHTS, CARD = "model.pt", "model.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def volume_ranges(template_folder: str, names: list[str]) -> dict[str, list[float]]:
    """Min and max volume (ml) per target over the training templates, for QC plausibility flags."""
    folder = Path(template_folder)
    volumes: dict[str, list[float]] = {}
    for name in names:
        manifest = folder / f"{name}.json"
        if manifest.is_file():
            for target, ml in json.loads(manifest.read_text(encoding="utf-8"))["volumes_ml"].items():
                volumes.setdefault(target, []).append(float(ml))
    return {k: [round(min(v), 2), round(max(v), 2)] for k, v in volumes.items()}


def export_model(checkpoint: str | Path, out_dir: str | Path, *, fp16: bool = True, name: str | None = None,
                 evaluation: dict | None = None, notes: str = "") -> Path:
    """Write ``model.pt`` (state dict, fp16 by default) and ``model.json`` into ``out_dir``."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        config = state["config"]
    except Exception as error:
        raise SynthSegError(f"not a synthseg training checkpoint ({error})", checkpoint) from None
    weights = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in state["model"].items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / WEIGHTS, lambda tmp: torch.save(weights, tmp))
    generator = config["generator"]
    history = state.get("history", [])
    card = {
        "name": name or out_dir.name,
        "synthseg_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "labels": [{"id": s.id, "short": s.short, "name": s.name} for s in STRUCTURES],
        "spacing_mm": generator["spacing"],
        "patch_size": list(generator["patch_size"]),
        "normalization": {"mr": {"percentiles": list(MR_PERCENTILES)}, "ct": {"window_hu": list(CT_INFERENCE_WINDOW)}},
        "network": {"architecture": "monai.networks.nets.UNet", **config["model"]},
        "templates": state.get("templates", []),
        "holdout_templates": state.get("holdout", []),
        "training": {"steps": int(state["step"]), "config": config},
        "validation": history[-1] if history else {},
        "volume_ranges_ml": volume_ranges(config["data"]["templates"], state.get("templates", [])),
        "evaluation": evaluation or {},
        "notes": notes,
        "weights": WEIGHTS,
        "weights_dtype": "float16" if fp16 else "float32",
        "sha256": sha256(out_dir / WEIGHTS),
    }
    text = json.dumps(card, indent=2, default=_plain) + "\n"
    write_atomic(out_dir / CARD, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out_dir / CARD


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return str(value)
