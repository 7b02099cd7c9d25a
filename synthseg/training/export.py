"""Export a training checkpoint as shipped weights plus a model card (all inference reads)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from synthseg import __version__
from synthseg.errors import SynthSegError, check_choice
from synthseg.io.image import write_atomic
from synthseg.labels.protocol import STRUCTURES
from synthseg.synthesis.intensity import CT_INFERENCE_WINDOW, MR_PERCENTILES
from synthseg.synthesis.tissues import CONTRASTS
from synthseg.training.checkpoint import read_checkpoint

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


def _pose_if_readable(config: dict) -> dict:
    """The templates' reference head pose, or ``{}`` (no turned grids) when the template folder is gone."""
    from synthseg.training.routing import template_pose

    try:
        return template_pose(config)
    except SynthSegError:
        return {}


def export_model(checkpoint: str | Path, out_dir: str | Path, *, fp16: bool = True, name: str | None = None,
                 evaluation: dict | None = None, notes: str = "") -> Path:
    """Write ``model.pt`` (state dict, fp16 by default) and ``model.json`` into ``out_dir``.

    Exporting into a model folder that lists contrast experts keeps them listed: they were fine-tuned
    from an earlier network of the same shape and still segment as before. The routing classifier is
    not kept: it was fitted on the replaced network's passes (``synthseg calibrate`` fits it again). A
    network of another shape cannot use the experts, so that export is refused before anything is written."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    state = read_checkpoint(checkpoint)
    config = state["config"]
    generator = config["generator"]
    history = state.get("history", [])
    training = {"steps": int(state["step"]), "total_steps": int(state.get("steps_before", 0)) + int(state["step"]),
                "config": config}
    if "averaged_from" in state:  # made by average_checkpoints: which runs' weights it is the mean of
        training["averaged_from"] = state["averaged_from"]
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
        "training": training,
        "validation": history[-1] if history else {},
        "volume_ranges_ml": volume_ranges(config["data"]["templates"], state.get("templates", [])),
        "pose": _pose_if_readable(config),
        "evaluation": evaluation or {},
        "notes": notes,
        "weights": WEIGHTS,
        "weights_dtype": "float16" if fp16 else "float32",
    }
    experts = _experts_kept(out_dir, card)
    weights = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in state["model"].items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # serialised in memory: torch names the archive after the file, a random temp name
    torch.save(weights, buffer)
    write_atomic(out_dir / WEIGHTS, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    card["sha256"] = sha256(out_dir / WEIGHTS)
    if experts:
        card["experts"] = experts
    return write_card(out_dir / CARD, card)


def _experts_kept(out_dir: Path, card: dict) -> list[dict]:
    """The experts listed by the card already in ``out_dir``, if the new network can carry them."""
    try:
        previous = json.loads((out_dir / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    experts = previous.get("experts", []) if isinstance(previous, dict) else []
    written = json.dumps(_architecture(card), default=_plain)  # as in the file: tuples become lists
    if experts and json.dumps(_architecture(previous)) != written:
        raise SynthSegError(f"holds {len(experts)} contrast expert(s) of a network with another shape, working "
                            "spacing or patch than this checkpoint's; export into a new folder", out_dir)
    return experts


def write_card(path: Path, card: dict) -> Path:
    """Write a model card atomically (readers never see half a card)."""
    text = json.dumps(card, indent=2, default=_plain) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return str(value)


ARCHITECTURE = ("architecture", "channels", "strides", "num_res_units", "norm")


def add_expert(checkpoint: str | Path, model_dir: str | Path, contrast: str, *, fp16: bool = True,
               fine: bool = False) -> Path:
    """Export a fine-tune of ``model_dir``'s network on one contrast as its expert for that contrast
    (``model_dir/experts/<contrast>``), with the contrast signature that lets scans reach it, and list it
    in ``model_dir``'s card (replacing an earlier expert for the same contrast, whose fine grid it keeps). A routing
    classifier that does not know the contrast is dropped (``synthseg calibrate`` fits a new one).

    ``fine=True`` exports a network of that contrast trained on a working grid finer than the model's as the
    contrast expert's fine grid instead (``experts/<contrast>-fine``), used with test-time augmentation on scans
    fine enough for it; the contrast's expert must be listed already."""
    model_dir = Path(model_dir)
    check_choice("expert contrast", contrast, CONTRASTS)
    card_path = model_dir / CARD
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SynthSegError(f"not a model folder ({error})", model_dir) from None
    listed = {e["contrast"]: e for e in card.get("experts", [])}
    if fine and contrast not in listed:
        raise SynthSegError(f"lists no {contrast} expert to give a fine grid; add the expert first", model_dir)
    folder = Path("experts") / (f"{contrast}-fine" if fine else contrast)
    staging = model_dir / "experts" / f".{folder.name}.incoming"  # the listed expert stays until this one fits
    shutil.rmtree(staging, ignore_errors=True)
    expert_card = json.loads(export_model(checkpoint, staging, fp16=fp16,
                                          name=f"{card['name']}-{folder.name}").read_text(encoding="utf-8"))
    (network, spacing, patch), (own_network, own_spacing, own_patch) = _architecture(expert_card), _architecture(card)
    grid_fits = spacing < own_spacing if fine else spacing == own_spacing
    if (network, patch) != (own_network, own_patch) or not grid_fits:
        shutil.rmtree(staging)
        raise SynthSegError(f"a fine grid needs the model's network and patch on a working grid finer than its "
                            f"{own_spacing} mm (this checkpoint: {spacing} mm)" if fine else
                            "the expert's network, working spacing or patch differs from the model's", checkpoint)
    shutil.rmtree(model_dir / folder, ignore_errors=True)
    staging.rename(model_dir / folder)
    if fine:
        listed[contrast]["fine"] = {"folder": folder.as_posix()}
        return write_card(card_path, card)
    signature = None if contrast == "ct" else expert_signature(expert_card["training"]["config"], contrast)
    entry = {"contrast": contrast, "folder": folder.as_posix(), "signature": signature}
    if "fine" in listed.get(contrast, {}):
        entry["fine"] = listed[contrast]["fine"]
    listed[contrast] = entry  # a replacement keeps its place in the list (and the card's diff small)
    card["experts"] = list(listed.values())
    if signature is not None and contrast not in card.get("routing", {}).get("contrasts", [contrast]):
        del card["routing"]
    return write_card(card_path, card)


def _architecture(card: dict) -> tuple:
    """What an expert shares with its model: the network's shape, the working spacing and the patch."""
    return {k: card["network"].get(k) for k in ARCHITECTURE}, card["spacing_mm"], card["patch_size"]


def expert_signature(config: dict, contrast: str) -> list[float | None]:
    """The contrast signature of clean renders (no jitter, bias, gamma, noise or spread) of the
    config's held-out templates at the working spacing: what a scan of this contrast looks like (``None``
    for a structure none of them has)."""
    from synthseg.inference.experts import contrast_signature, signature_as_list
    from synthseg.synthesis.config import rendering_config
    from synthseg.synthesis.generator import Generator
    from synthseg.training.config import config_from_dict
    from synthseg.training.trainer import load_template_split

    spacing = float(config["generator"]["spacing"])
    _, held, recipe = load_template_split(config_from_dict(config))
    signatures = []
    for template in held:
        voxel = np.sqrt((template.affine[:3, :3] ** 2).sum(0))
        shape = tuple(int(np.ceil(n * v / spacing)) for n, v in zip(template.labels.shape, voxel))
        clean = dataclasses.replace(rendering_config(shape, spacing, contrast), prior_jitter=0.0, std=(0.0, 1.0),
                                    bias_probability=0.0, gamma_std=0.0, noise_probability=0.0,
                                    texture_probability=0.0)
        generator = Generator([template], recipe, clean, seed=0)
        params = generator.sample_params(0)
        params.centre = template.grid_centre
        image, targets = generator.render(params)
        signatures.append(contrast_signature(image.numpy(), targets.numpy()))
    stacked = np.stack(signatures)
    found = ~np.isnan(stacked)
    means = np.where(found, stacked, 0.0).sum(0) / np.maximum(found.sum(0), 1)
    return signature_as_list(np.where(found.any(0), means, np.nan))
