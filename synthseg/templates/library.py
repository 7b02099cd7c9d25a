"""Template folders: import label maps through a recipe, write manifests, list and load them.

A template folder holds ``<name>.nii.gz`` (generation labels, uint16), ``<name>.json`` (manifest)
and ``recipe.yaml`` (the recipe every map in the folder follows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from synthseg.errors import SynthSegError
from synthseg.io.geometry import crop_to_mask, resample_to_spacing, to_canonical
from synthseg.io.image import load_image, read_label_map, save_image, write_atomic
from synthseg.labels.protocol import BRAIN_IDS, NUM_CLASSES
from synthseg.templates.dura import synthesize_dura
from synthseg.templates.recipe import Recipe, load_recipe

RECIPE_FILE = "recipe.yaml"
UNKNOWN_POLICIES = ("error", "background")


@dataclass(frozen=True)
class Template:
    name: str
    labels: np.ndarray  # generation label codes, RAS voxel order
    affine: np.ndarray
    manifest: dict

    @property
    def grid_centre(self) -> list[float]:
        """World position (mm) of the label grid's centre: where a render of the whole template is centred."""
        return (self.affine[:3, :3] @ ((np.asarray(self.labels.shape) - 1) / 2) + self.affine[:3, 3]).tolist()


def template_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def import_template(path: Path, recipe: Recipe, out_dir: Path, *, spacing: float | None = None,
                    margin_mm: float = 4.0, dura_thickness: float = 1.0, unknown: str = "error",
                    name: str | None = None) -> dict:
    """Import one label map; returns its manifest. See ``synthseg templates import --help``."""
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}, got {unknown!r}")
    image = to_canonical(read_label_map(path))
    codes = np.unique(image.data)
    missing = recipe.unknown_codes(codes)
    if missing and len(missing) == len(codes[codes != 0]):
        raise SynthSegError(f"no code of this map is in recipe '{recipe.name}' (codes found: "
                            f"{_short_list(codes)})", path)
    if missing:
        if unknown == "error":
            raise SynthSegError(f"codes not in recipe '{recipe.name}': {_short_list(missing)} "
                                "(use --unknown background to map them to 0)", path)
        image = image.with_data(np.where(np.isin(image.data, missing), 0, image.data))
    if spacing is not None:
        image = resample_to_spacing(image, spacing, order=0)
        image = image.with_data(np.rint(image.data).astype(np.int32))
    voxel = image.spacing
    image, _ = crop_to_mask(image, image.data > 0, np.ceil(margin_mm / voxel).astype(int))
    targets = recipe.lookup(image.data, "target")
    synthesized = False
    if recipe.dura is not None and not (targets == 13).any():
        image = image.with_data(synthesize_dura(image.data, recipe, voxel, dura_thickness))
        targets = recipe.lookup(image.data, "target")
        synthesized = True
    name = name or template_name(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_image(image, out_dir / f"{name}.nii.gz", dtype=np.uint16, protect=(path,))
    ml = float(np.prod(voxel)) / 1000.0
    counts = np.bincount(targets.ravel().astype(np.int64), minlength=NUM_CLASSES)
    present = np.unique(image.data)
    manifest = {
        "name": name, "source": str(path), "recipe": recipe.name, "spacing_mm": [float(v) for v in voxel],
        "shape": list(image.shape), "codes": [int(c) for c in present],
        "classes": sorted({recipe.labels[int(c)].intensity_class for c in present}),
        "targets_present": [int(t) for t in np.flatnonzero(counts)],
        "volumes_ml": {str(t): round(float(counts[t]) * ml, 3) for t in range(1, NUM_CLASSES)},
        "brain_volume_ml": round(float(counts[list(BRAIN_IDS)].sum()) * ml, 1),
        "dura": {"synthesized": synthesized, "thickness_mm": dura_thickness if synthesized else None},
        "unknown_codes_mapped_to_background": missing,
    }
    _write_json(out_dir / f"{name}.json", manifest)
    recipe_path = out_dir / RECIPE_FILE
    text = recipe.to_yaml()
    if recipe_path.exists() and recipe_path.read_text(encoding="utf-8") != text:
        raise SynthSegError("folder already holds templates of another recipe; use one folder per recipe",
                            out_dir)
    if not recipe_path.exists():
        write_atomic(recipe_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return manifest


def import_templates(inputs: Sequence[Path], recipe: str | Path | Recipe, out_dir: Path, **options
                     ) -> tuple[list[dict], list[SynthSegError]]:
    """Import many maps; a failing map is reported and the others still import."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    done, failed = [], []
    for path in inputs:
        try:
            done.append(import_template(Path(path), recipe, Path(out_dir), **options))
        except SynthSegError as error:
            failed.append(error)
    return done, failed


def list_templates(folder: Path) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SynthSegError("not a template folder", folder)
    manifests = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    if not manifests:
        raise SynthSegError("folder holds no templates (no manifests)", folder)
    return manifests


def load_templates(folder: Path, names: Sequence[str] | None = None, exclude: Sequence[str] = ()
                   ) -> tuple[list[Template], Recipe]:
    """Load the maps of a template folder (optionally a subset) with their recipe."""
    folder = Path(folder)
    recipe_path = folder / RECIPE_FILE
    if not recipe_path.is_file():
        raise SynthSegError(f"template folder has no {RECIPE_FILE}", folder)
    recipe = load_recipe(recipe_path)
    templates = []
    for manifest in list_templates(folder):
        name = manifest["name"]
        if (names is not None and name not in names) or name in exclude:
            continue
        image = load_image(folder / f"{name}.nii.gz", labels=True)
        templates.append(Template(name, np.asarray(image.data), image.affine, manifest))
    if not templates:
        raise SynthSegError("no templates left after selection", folder)
    return templates, recipe


def phantom_templates(spacing: float = 1.0, seeds: Sequence[int] = (0,)) -> tuple[list[Template], Recipe]:
    """Built-in phantom heads as templates (recipe ``siam16``): tests and the demo need no data."""
    from synthseg.templates.phantom import make_phantom

    recipe = load_recipe("siam16")
    templates = []
    for seed in seeds:
        labels, affine = make_phantom(spacing, seed)
        templates.append(Template(f"phantom-{seed}", labels, affine, {"name": f"phantom-{seed}"}))
    return templates, recipe


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))


def _short_list(values, limit: int = 20) -> str:
    values = [int(v) for v in values]
    text = ", ".join(map(str, values[:limit]))
    return text + (f" … ({len(values)} in all)" if len(values) > limit else "")
