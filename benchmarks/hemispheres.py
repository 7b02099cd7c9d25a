"""How well ``--hemispheres`` tells left from right, against references that do.

The output structures join left and right; `synthseg.inference.hemispheres` splits the brain volumes by a
mid-sagittal plane found for mirror symmetry. Here the plane of each segmented scan is scored against the
lateralised reference labels of the dev scans — FreeSurfer's bert (aseg's Left-/Right- codes) and the IXI T1 scans
(DLMUSE codes whose names end in _L / _R):

- *side accuracy*: of a structure's reference voxels, the share the plane puts on their own side (the plane's
  error alone, whatever the segmentation's);
- *split cost*: per bilateral structure, the Dice of the merged structure minus the Dice of (predicted structure ∩
  side) against the reference's structure on that side, both sides averaged — what lateralising costs on top of
  the segmentation's own error (the reference's midline parts without a side, brain stem in WM, 3rd/4th
  ventricles, vermis, left out of both);
- *asymmetry*: per structure, the correlation across the IXI scans between the predicted asymmetry index
  (left − right over their mean, from the split expected volumes) and the reference's — whether the split
  carries the subjects' own asymmetries or only noise — and both indices' means (a network that draws one side
  larger than the other shows here; the flip of the test-time augmentation cancels that);
- *map side accuracy*: of a structure's lateralised reference voxels that the ``_hemi.nii.gz`` map
  (``result.hemisphere_map``, on the scan's grid) marks as brain, the share it marks on their own side;
- *turned heads*: the same scans resampled turned about the anterior-posterior (roll) and inferior-superior (yaw)
  axes, which turn the plane in voxel space (`real_robustness.py`'s ``tilt``);
- *contrast*: the planes of the co-registered stroke T1 / T2 / FLAIR (no lateral reference): the angle between
  them and how far apart they pass the brain's centre.

    python benchmarks/hemispheres.py [--model NAME] [--ixi 21] [--tilts 20] [--tta] [--amp off] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from _common import SHARED, header
from real_robustness import TILTS, numbers, tilt
from synthseg.device import AMP_MODES

ASEG_LEFT = {2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 17, 18, 26, 28, 31}
ASEG_RIGHT = {41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60, 63}
BILATERAL = ("GM", "WM", "CSFv", "cerGM", "Thal", "Pal", "Put", "Caud", "Accu", "Amyg", "Hippo")


def muse_sides() -> dict[int, str]:
    """DLMUSE code → "left" / "right", from the names in the dev set's MUSE table."""
    sides = {}
    with open(SHARED / "dev" / "ixi" / "list_MUSE_all.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"].endswith(("_L", "_R")):
                sides[int(row["Index"])] = "left" if row["Name"].endswith("_L") else "right"
    return sides


def reference_sides(ref: np.ndarray, mapping: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference on the 16 structures' ids, and its side per voxel (0 none, 1 left, 2 right)."""
    from synthseg.labels.mapping import apply_mapping, load_mapping

    sides = ({c: "left" for c in ASEG_LEFT} | {c: "right" for c in ASEG_RIGHT}) if mapping == "aseg" else muse_sides()
    codes = np.unique(ref)
    side = np.zeros(ref.shape, np.uint8)
    for code in codes:
        if int(code) in sides:
            side[ref == code] = 1 if sides[int(code)] == "left" else 2
    return apply_mapping(ref, load_mapping(mapping)), side


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else float("nan")


def score(result, affine: np.ndarray, ref_ids: np.ndarray, ref_side: np.ndarray, ref_affine: np.ndarray) -> dict:
    """Side accuracy, lateral and merged Dice per bilateral structure, and the reference's volumes per side."""
    from synthseg.evaluation.evaluate import onto_grid
    from synthseg.inference.hemispheres import MidsagittalPlane
    from synthseg.io.geometry import voxel_volume_ml
    from synthseg.io.image import Image
    from synthseg.labels.protocol import STRUCTURES

    right = MidsagittalPlane.from_dict(result.hemispheres["plane"]).right_of(ref_ids.shape, ref_affine)
    pred = onto_grid(Image(np.asarray(result.labels.dataobj), affine), Image(ref_ids, ref_affine))
    marked = onto_grid(Image(np.asarray(result.hemisphere_map.dataobj), affine), Image(ref_ids, ref_affine))
    voxel_ml = voxel_volume_ml(ref_affine)
    ids = {s.short: s.id for s in STRUCTURES}
    rows = {}
    for short in BILATERAL:
        # the reference's own midline parts (brain stem, 3rd/4th ventricles, vermis) have no side: left out of both
        lateral = ~((ref_ids == ids[short]) & (ref_side == 0))
        ref_s, pred_s = (ref_ids == ids[short]) & lateral, (pred == ids[short]) & lateral
        left, right_ref = ref_s & (ref_side == 1), ref_s & (ref_side == 2)
        on_side = int((left & ~right).sum()) + int((right_ref & right).sum())
        on_map = int((left & (marked == 1)).sum()) + int((right_ref & (marked == 2)).sum())
        rows[short] = {"side_accuracy": on_side / max(1, int(left.sum() + right_ref.sum())),
                       "map_side_accuracy": on_map / max(1, int(((left | right_ref) & (marked > 0)).sum())),
                       "lateral_dice": (dice(pred_s & ~right, left) + dice(pred_s & right, right_ref)) / 2,
                       "merged_dice": dice(pred_s, ref_s),
                       "ref_ml": {"left": float(left.sum()) * voxel_ml, "right": float(right_ref.sum()) * voxel_ml},
                       "pred_ml": {side: result.hemispheres[side][short] for side in ("left", "right")}}
    return rows


def centroid_only(result, ref_ids: np.ndarray, ref_side: np.ndarray, ref_affine: np.ndarray) -> dict[str, float]:
    """Side accuracy per bilateral structure of the search's start alone: the plane through the structures'
    centroids (here from the output labels), without the refinement for symmetry."""
    from synthseg.inference.hemispheres import MidsagittalPlane, centroid_plane
    from synthseg.labels.protocol import STRUCTURES

    normal, offset = centroid_plane(np.asarray(result.labels.dataobj).astype(np.int64), result.labels.affine)
    right = MidsagittalPlane(tuple(normal), offset, float("nan")).right_of(ref_ids.shape, ref_affine)
    ids = {s.short: s.id for s in STRUCTURES}
    accuracy = {}
    for short in BILATERAL:
        left, right_ref = (ref_ids == ids[short]) & (ref_side == 1), (ref_ids == ids[short]) & (ref_side == 2)
        accuracy[short] = (int((left & ~right).sum()) + int((right_ref & right).sum())) / max(
            1, int(left.sum() + right_ref.sum()))
    return accuracy


def asymmetry(volumes: dict) -> float:
    return (volumes["left"] - volumes["right"]) / ((volumes["left"] + volumes["right"]) / 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--ixi", type=int, default=21, help="how many IXI scans (sorted by name)")
    parser.add_argument("--tilts", default="20", help="degrees of roll and of yaw per scan ('': as acquired only)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=False,
                        help="test-time augmentation as in `synthseg segment` (default here: one pass)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    header("left and right by the mid-sagittal plane")
    from synthseg.inference.segmenter import Segmenter
    from synthseg.io.image import Image, load_image

    dev = SHARED / "dev"
    if not (dev / "freesurfer_bert").is_dir():
        raise SystemExit(f"{dev}: not found (the shared dev data are needed)")
    segmenter = Segmenter(args.model, device="cpu", tta=args.tta, amp=args.amp, hemispheres=True)
    print(f"model {segmenter.card['name']}, tta {args.tta}, amp {args.amp}")
    cases = [("bert", dev / "freesurfer_bert" / "norm.mgz", dev / "freesurfer_bert" / "aseg.mgz", "aseg")]
    for scan in sorted((dev / "ixi" / "t1").glob("*.nii.gz"))[:args.ixi]:
        stem = scan.name.split(".nii")[0]
        cases.append((stem, scan, next((dev / "ixi" / "dlmuse").glob(f"{stem}*")), "muse"))
    changes = [("as acquired", None)] + [(f"{name} {d}°", tilt(TILTS[name], d)) for d in numbers(args.tilts)
                                        for name in ("roll", "yaw")]
    rows, start = [], time.perf_counter()
    for name, scan_path, ref_path, mapping in cases:
        scan, ref = load_image(scan_path), load_image(ref_path, labels=True)
        ref_ids, ref_side = reference_sides(np.asarray(ref.data), mapping)
        for change_name, change in changes:
            data, affine = np.asarray(scan.data), scan.affine
            if change is not None:
                data, affine, _, _ = change(data, affine, ref_ids)
            result = segmenter.segment(Image(data, affine))
            if result.hemispheres is None:
                print(f"  {name:<20} {change_name:<12} no plane: {result.warnings}")
                rows.append({"scan": name, "change": change_name, "plane": None})
                continue
            structures = score(result, affine, ref_ids, ref_side, ref.affine)
            row = {"scan": name, "change": change_name, "plane": result.hemispheres["plane"],
                   "seconds": result.timings["hemispheres_s"], "structures": structures,
                   "centroid_plane_side_accuracy": centroid_only(result, ref_ids, ref_side, ref.affine)}
            rows.append(row)
            accuracy = min(s["side_accuracy"] for s in structures.values())
            cost = np.mean([s["merged_dice"] - s["lateral_dice"] for s in structures.values()])
            print(f"  {name:<20} {change_name:<12} lowest side accuracy {accuracy:.4f}  split cost {cost:+.4f}  "
                  f"tilt {row['plane']['tilt_degrees']:5.1f}°  {row['seconds']:.2f} s", flush=True)
    print("\n".join(summary(rows)))
    stroke = stroke_planes(segmenter)
    print(stroke["line"])
    print(f"{len(rows) + 3} segmentations in {time.perf_counter() - start:.0f} s")
    if args.json:
        report = {"command": "python " + " ".join(sys.argv), "rows": rows, "stroke": stroke}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def summary(rows: list[dict]) -> list[str]:
    """Per change: side accuracy and split cost per structure (mean over scans), then the asymmetry correlations."""
    lines = []
    found = [r for r in rows if r["plane"] is not None]
    for change in dict.fromkeys(r["change"] for r in rows):
        these = [r for r in found if r["change"] == change]
        missing = sum(1 for r in rows if r["change"] == change and r["plane"] is None)
        lines.append(f"{change}: {len(these)} scans with a plane, {missing} without")
        lines.append("  " + " ".join(f"{s:>7}" for s in ("", *BILATERAL)))
        if change == "as acquired":
            lines.append("  centroid plane alone, side:" if these else "")
            lines.append("  " + " " * 7 + " ".join(
                f"{np.mean([r['centroid_plane_side_accuracy'][s] for r in these]):7.4f}" for s in BILATERAL))
        for key, label in (("side_accuracy", "side"), ("map_side_accuracy", "map"), ("split", "cost")):
            values = [np.mean([(r["structures"][s]["merged_dice"] - r["structures"][s]["lateral_dice"])
                               if key == "split" else r["structures"][s][key] for r in these]) for s in BILATERAL]
            lines.append(f"  {label:>7}" + " ".join(f"{v:7.4f}" for v in values))
    ixi = [r for r in found if r["change"] == "as acquired" and r["scan"] != "bert"]
    if len(ixi) > 2:
        correlations = [np.corrcoef([asymmetry(r["structures"][s]["pred_ml"]) for r in ixi],
                                    [asymmetry(r["structures"][s]["ref_ml"]) for r in ixi])[0, 1] for s in BILATERAL]
        lines.append(f"asymmetry index, predicted vs reference, correlation over {len(ixi)} IXI scans:")
        lines.append("  " + " ".join(f"{s}: {c:+.2f}" for s, c in zip(BILATERAL, correlations)))
        lines.append("mean asymmetry index, predicted / reference:")
        lines.append("  " + " ".join(
            f"{s}: {np.mean([asymmetry(r['structures'][s]['pred_ml']) for r in ixi]):+.3f} / "
            f"{np.mean([asymmetry(r['structures'][s]['ref_ml']) for r in ixi]):+.3f}" for s in BILATERAL))
    return lines


def stroke_planes(segmenter) -> dict:
    """The planes of the co-registered stroke T1/T2/FLAIR: pairwise angle, and distance at the centre of the
    field of view (the scans are brain-extracted and centred on the brain)."""
    from synthseg.io.image import load_image

    folder = SHARED / "dev" / "multicontrast_stroke"
    planes = {}
    for contrast in ("T1", "T2", "FLAIR"):
        scan = load_image(folder / f"stroke_{contrast}.nii.gz")
        result = segmenter.segment(scan)
        planes[contrast] = result.hemispheres["plane"] if result.hemispheres else None
    centre = scan.affine @ np.append((np.asarray(scan.data.shape[:3]) - 1) / 2, 1.0)
    if any(p is None for p in planes.values()):
        return {"planes": planes, "line": f"stroke: a contrast without a plane: {planes}"}
    normals = {c: np.asarray(p["normal_ras"]) for c, p in planes.items()}
    centre = centre[:3]
    pairs = {}
    for a, b in (("T1", "T2"), ("T1", "FLAIR"), ("T2", "FLAIR")):
        angle = float(np.degrees(np.arccos(np.clip(normals[a] @ normals[b], -1, 1))))
        apart = abs((centre @ normals[a] - planes[a]["offset_mm"]) - (centre @ normals[b] - planes[b]["offset_mm"]))
        pairs[f"{a}-{b}"] = {"degrees": round(angle, 2), "mm_apart_at_centre": round(float(apart), 2)}
    line = "stroke T1/T2/FLAIR planes: " + ", ".join(
        f"{k} {v['degrees']:.1f}° and {v['mm_apart_at_centre']:.1f} mm apart" for k, v in pairs.items())
    return {"planes": planes, "pairs": pairs, "line": line}


if __name__ == "__main__":
    main()
