"""Compare segmentations with references (or with each other) per structure.

Pairs are brought onto one grid by world coordinates (nearest neighbour onto the reference grid)
when their grids differ; reference codes are mapped onto the 16 structures and unmapped codes are
left out of scoring (voxels where the reference is unmapped do not count).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from synthseg.errors import SynthSegError
from synthseg.io.geometry import resample_to_grid
from synthseg.io.image import Image, read_label_map
from synthseg.labels.mapping import apply_mapping, load_mapping
from synthseg.labels.protocol import STRUCTURES
from synthseg.evaluation.metrics import dice, hausdorff95, volume_ml

UNMAPPED = 255


@dataclass
class CaseResult:
    case: str
    rows: list[dict]  # one per structure: structure, dice, hd95_mm, vol_pred_ml, vol_ref_ml, vol_diff_ml, vol_diff_pct


def _same_grid(a: Image, b: Image) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-4)


def onto_grid(moving: Image, fixed: Image) -> np.ndarray:
    """``moving``'s labels on ``fixed``'s grid (nearest neighbour by world coordinates)."""
    if _same_grid(moving, fixed):
        return np.asarray(moving.data)
    return resample_to_grid(np.asarray(moving.data, np.float32), moving.affine, fixed.shape, fixed.affine,
                            order=0).astype(np.int64)


def evaluate_pair(pred: Image, ref: Image, mapping: dict[int, int], hd95: bool = True,
                  case: str = "") -> CaseResult:
    """Per-structure metrics of a prediction (project ids) against a reference (any mapped codes)."""
    ref_ids = apply_mapping(np.asarray(ref.data).astype(np.int64), mapping, UNMAPPED)
    pred_ids = onto_grid(pred, ref).astype(np.int64)
    valid = ref_ids != UNMAPPED
    spacing = ref.spacing
    scored = sorted(set(mapping.values()) - {0})
    rows = []
    for s in STRUCTURES[1:]:
        if s.id not in scored:
            continue
        p_vol = volume_ml(np.where(valid, pred_ids, 0), s.id, spacing)
        r_vol = volume_ml(np.where(valid, ref_ids, 0), s.id, spacing)
        rows.append({
            "case": case, "structure": s.short, "id": s.id, "dice": dice(pred_ids, ref_ids, s.id, valid),
            "hd95_mm": hausdorff95(pred_ids, ref_ids, s.id, spacing, valid) if hd95 else float("nan"),
            "vol_pred_ml": round(p_vol, 3), "vol_ref_ml": round(r_vol, 3), "vol_diff_ml": round(p_vol - r_vol, 3),
            "vol_diff_pct": round(100 * (p_vol - r_vol) / r_vol, 2) if r_vol > 0 else float("nan"),
        })
    return CaseResult(case, rows)


def pair_paths(preds: Sequence[Path], refs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Pair by matching stems when every prediction finds one reference, else by order."""
    if len(preds) != len(refs):
        raise SynthSegError(f"{len(preds)} predictions but {len(refs)} references")

    def key(path: Path) -> str:
        name = path.name.lower()
        for cut in ("_dseg", "_dlmuse", "_seg", "_labels", ".nii.gz", ".nii", ".mgz", ".mgh"):
            name = name.split(cut)[0]
        return name

    by_key = {key(r): r for r in refs}
    if len(by_key) == len(refs) and all(key(p) in by_key for p in preds):
        return [(p, by_key[key(p)]) for p in preds]
    return list(zip(preds, refs))


def evaluate_files(preds: Sequence[Path], refs: Sequence[Path], mapping: str | Path = "siam",
                   hd95: bool = True, on_error: Callable[[SynthSegError], None] | None = None) -> list[CaseResult]:
    """Score each prediction against its reference (:func:`pair_paths`). A pair that cannot be read raises, or
    with ``on_error`` is handed to it and left out while the others are scored."""
    table = load_mapping(mapping)
    results = []
    for p, r in pair_paths([Path(x) for x in preds], [Path(x) for x in refs]):
        try:
            results.append(evaluate_pair(read_label_map(p, allow_empty=True), read_label_map(r, allow_empty=True),
                                         table, hd95, case=p.name))
        except SynthSegError as error:
            if on_error is None:
                raise
            on_error(error)
    return results


def consistency(paths: Sequence[Path], on_error: Callable[[SynthSegError], None] | None = None) -> list[dict]:
    """Pairwise Dice per structure between segmentations of one subject (e.g. T1, T2, FLAIR). A file that
    cannot be read raises, or with ``on_error`` is handed to it and left out while the others are compared."""
    images: list[tuple[str, Image]] = []
    for path in paths:
        try:
            images.append((Path(path).name, read_label_map(path, allow_empty=True)))
        except SynthSegError as error:
            if on_error is None:
                raise
            on_error(error)
    if len(images) < 2:
        raise SynthSegError(f"--consistency needs at least two readable segmentations ({len(images)} of "
                            f"{len(paths)} could be read)")
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(images, 2):
        b_on_a = onto_grid(b, a)
        for s in STRUCTURES[1:]:
            value = dice(np.asarray(a.data), b_on_a, s.id)
            if not math.isnan(value):
                rows.append({"a": name_a, "b": name_b, "structure": s.short, "dice": value})
    return rows


def summary(rows: Sequence[dict], key: str = "dice") -> dict[str, float]:
    """Mean of a metric per structure over cases (NaNs skipped)."""
    out: dict[str, list[float]] = {}
    for row in rows:
        value = row[key]
        if not (isinstance(value, float) and math.isnan(value)):
            out.setdefault(row["structure"], []).append(float(value))
    return {k: float(np.mean(v)) for k, v in out.items()}


def format_table(rows: Sequence[dict]) -> str:
    """Mean Dice / HD95 / volume difference per structure, plus the overall means."""
    d, h, v = summary(rows, "dice"), summary(rows, "hd95_mm"), summary(rows, "vol_diff_pct")
    lines = [f"{'structure':<11} {'Dice':>6} {'HD95 mm':>8} {'vol diff %':>10}"]
    for name in d:
        lines.append(f"{name:<11} {d[name]:>6.3f} {h.get(name, float('nan')):>8.2f} {v.get(name, float('nan')):>10.1f}")
    if d:
        lines.append(f"{'mean':<11} {np.mean(list(d.values())):>6.3f} "
                     f"{np.mean(list(h.values())) if h else float('nan'):>8.2f}")
    return "\n".join(lines)


def rows_to_csv(rows: Sequence[dict]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
