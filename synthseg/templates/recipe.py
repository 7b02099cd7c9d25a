"""Recipes: the explicit table generation label → intensity class → target structure.

A recipe is a YAML file (``templates/recipes/*.yaml`` ships the known ones). Generation labels
are the codes in a template's map; intensity classes share one Gaussian in a synthetic contrast
and carry a tissue type; targets are the output ids 0-16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from synthseg.errors import SynthSegError


@dataclass(frozen=True)
class LabelEntry:
    code: int
    name: str
    intensity_class: str
    target: int


@dataclass(frozen=True)
class DuraRule:
    """Codes dura synthesis needs: the code to paint, and the codes of each hemisphere and cerebellum."""

    code: int
    left_hemisphere: tuple[int, ...] = ()
    right_hemisphere: tuple[int, ...] = ()
    cerebellum: tuple[int, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    classes: dict[str, str]  # intensity class → tissue type
    labels: dict[int, LabelEntry]
    dura: DuraRule | None = None
    source: str = ""
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def lookup(self, codes: np.ndarray, what: str) -> np.ndarray:
        """Map codes to 'target' ids or 'class' indices (position in ``class_names``)."""
        size = max(self.labels) + 1
        lut = np.zeros(size, dtype=np.int16)
        for code, entry in self.labels.items():
            lut[code] = entry.target if what == "target" else self.class_names.index(entry.intensity_class)
        return lut[codes]

    def unknown_codes(self, codes) -> list[int]:
        return sorted(int(c) for c in codes if int(c) not in self.labels)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)


class _StrictLoader(yaml.SafeLoader):
    """YAML loader that refuses a key given twice (a contradictory mapping otherwise goes unseen)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.YAMLError(f"key {key!r} appears twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def shipped_recipes() -> dict[str, Path]:
    folder = resources.files("synthseg.shipped_templates") / "recipes"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def load_recipe(spec: str | Path) -> Recipe:
    """A shipped recipe by name (``aseg-charm``, ``siam16``) or a YAML file."""
    shipped = shipped_recipes()
    path = shipped.get(str(spec), Path(spec))
    if not path.is_file():
        raise SynthSegError(f"no such recipe; shipped recipes: {', '.join(sorted(shipped))}", spec)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except yaml.YAMLError as error:
        raise SynthSegError(f"recipe is not valid YAML ({str(error).splitlines()[0]})", path) from None
    return parse_recipe(raw, source=str(path))


def parse_recipe(raw: dict, source: str = "<recipe>") -> Recipe:
    """Validate a recipe mapping; every contradiction is reported with the offending entry."""
    if not isinstance(raw, dict):
        raise SynthSegError("recipe must be a mapping with 'name', 'classes' and 'labels'", source)
    for key in ("name", "classes", "labels"):
        if key not in raw:
            raise SynthSegError(f"recipe lacks the '{key}' field", source)
    classes = raw["classes"]
    if not isinstance(classes, dict) or not classes:
        raise SynthSegError("'classes' must map intensity class names to tissue types", source)
    from synthseg.synthesis.tissues import TISSUES

    for name, tissue in classes.items():
        if tissue not in TISSUES:
            raise SynthSegError(f"class '{name}' has unknown tissue '{tissue}'; known: {', '.join(TISSUES)}",
                                source)
    labels: dict[int, LabelEntry] = {}
    if not isinstance(raw["labels"], dict) or not raw["labels"]:
        raise SynthSegError("'labels' must map codes to [name, class, target]", source)
    for code, value in raw["labels"].items():
        if not isinstance(code, int) or code < 0:
            raise SynthSegError(f"label code {code!r} is not a non-negative integer", source)
        if not (isinstance(value, list) and len(value) == 3):
            raise SynthSegError(f"label {code}: expected [name, class, target], got {value!r}", source)
        name, klass, target = value
        if klass not in classes:
            raise SynthSegError(f"label {code}: intensity class '{klass}' is not declared in 'classes'", source)
        if not isinstance(target, int) or not 0 <= target <= 16:
            raise SynthSegError(f"label {code}: target {target!r} is not an id 0-16", source)
        labels[code] = LabelEntry(code, str(name), klass, target)
    if 0 in labels and labels[0].target != 0:
        raise SynthSegError("label 0 must map to target 0 (background)", source)
    targets_of_class: dict[str, set[int]] = {}
    for entry in labels.values():
        targets_of_class.setdefault(entry.intensity_class, set()).add(entry.target)
    dura = None
    if raw.get("dura"):
        spec = raw["dura"]
        code = spec.get("code")
        if code not in labels or labels[code].target != 13:
            raise SynthSegError(f"dura code {code!r} must be a label with target 13", source)
        dura = DuraRule(code, *(tuple(spec.get(k, ())) for k in ("left_hemisphere", "right_hemisphere",
                                                                   "cerebellum")))
    return Recipe(str(raw["name"]), str(raw.get("description", "")), dict(classes), labels, dura, source, raw)
