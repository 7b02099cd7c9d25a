"""Real scans re-sliced thicker: how much Dice a model loses when a real scan has thick slices.

The synthetic held-out set of `accuracy.py` already has 6 mm renders; this measures the same on real
images with references — FreeSurfer's bert (norm.mgz against aseg) and the first IXI T1 scans (against
their MUSE labels). Each scan is re-sliced retrospectively along one voxel axis at a time: every ``k``
consecutive slices are averaged (a rectangular slice profile, contiguous slices, as a 2D multi-slice
acquisition writes them) and the slab centres become the new voxel centres in the affine. The thick scan is
segmented as a user would give it, and Dice is measured on its own grid against the reference sampled at
the slab centres (``k`` is odd, so each centre is a reference slice). Each scan's first row is the scan as
acquired, so every figure has its reference run in the same process.

    python benchmarks/real_resolution.py [--model NAME] [--bert-factors 3,5,7] [--ixi 5] [--ixi-factors 3]
                                         [--tta] [--amp auto|off|bf16|fp16] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _common import SHARED, header
from synthseg.device import AMP_MODES

BRAIN = ["GM", "WM", "CSF", "CSFv", "cerGM", "Thal", "Pal", "Put", "Caud", "Accu", "Amyg", "Hippo"]
PLANES = {"L": "sagittal", "R": "sagittal", "A": "coronal", "P": "coronal", "S": "axial", "I": "axial"}


def odd_factors(text: str) -> list[int]:
    factors = [int(f) for f in text.split(",") if f.strip()]
    if any(f < 1 or f % 2 == 0 for f in factors):
        raise SystemExit(f"factors must be odd and >= 1 (each slab centre must be a reference slice): {text}")
    return factors


def reslice_thick(data: np.ndarray, affine: np.ndarray, axis: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Average every ``k`` slices along ``axis`` (the trailing partial slab dropped); the new affine puts
    each voxel at its slab's centre."""
    n = data.shape[axis] // k * k
    moved = np.moveaxis(np.asarray(data, np.float32), axis, 0)[:n]
    thick = moved.reshape(n // k, k, *moved.shape[1:]).mean(axis=1)
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, 3] += affine[:3, axis] * (k - 1) / 2
    new_affine[:3, axis] *= k
    return np.moveaxis(thick, 0, axis), new_affine


def centre_slices(labels: np.ndarray, axis: int, k: int) -> np.ndarray:
    """The reference at the slab centres of :func:`reslice_thick`."""
    n = labels.shape[axis] // k * k
    return np.take(labels, np.arange(k // 2, n, k), axis=axis)


def scan_rows(segmenter, name: str, scan, ref, mapping: str, factors: list[int]) -> list[dict]:
    """The scan as acquired, then re-sliced by each factor along each of its three axes."""
    import nibabel as nib

    from synthseg.evaluation.evaluate import evaluate_pair, onto_grid
    from synthseg.io.image import Image
    from synthseg.labels.mapping import load_mapping

    table = load_mapping(mapping)
    ref_on_scan = onto_grid(ref, scan)  # the reference on the scan's grid (the same grid for these data)
    codes = nib.aff2axcodes(scan.affine)
    rows = []
    for axis, k in [(None, 1)] + [(a, k) for k in factors for a in range(3)]:
        if axis is None:
            image, reference = scan, Image(ref_on_scan, scan.affine)
        else:
            data, affine = reslice_thick(scan.data, scan.affine, axis, k)
            image, reference = Image(data, affine), Image(centre_slices(ref_on_scan, axis, k), affine)
        result = segmenter.segment(image)
        labels = Image(np.asarray(result.labels.dataobj), image.affine)
        dice = {r["structure"]: r["dice"] for r in evaluate_pair(labels, reference, table, hd95=False).rows}
        spacing = "x".join(f"{s:.1f}" for s in image.spacing)
        plane = "as acquired" if axis is None else f"{PLANES[codes[axis]]} {image.spacing[axis]:g} mm"
        row = {"scan": name, "slices": plane, "voxel_mm": spacing, "mean12": float(np.mean([dice[s] for s in BRAIN])),
               "dice": dice, "route": result.expert["contrast"] if result.expert else "general",
               "seconds": result.timings["total_s"]}
        rows.append(row)
        print(f"  {name:<24} {plane:<14} {spacing:<13} mean-12 {row['mean12']:.3f}  route {row['route']}", flush=True)
    return rows


def summarise(rows: list[dict]) -> list[str]:
    """Mean-12 per re-slicing, each as a ratio to the same scans as acquired."""
    baseline = {r["scan"]: r["mean12"] for r in rows if r["slices"] == "as acquired"}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        group = "bert" if r["scan"] == "bert" else "ixi"
        groups.setdefault((group, r["slices"]), []).append(r)
    lines = [f"{'data':<5} {'slices':<14} {'n':>2} {'mean-12':>8} {'ratio':>6}  lowest structure"]
    for (group, plane), members in groups.items():
        value = float(np.mean([m["mean12"] for m in members]))
        ratio = float(np.mean([m["mean12"] / baseline[m["scan"]] for m in members]))
        per_structure = {s: np.mean([m["dice"][s] for m in members]) for s in BRAIN if s != "CSF" or group != "bert"}
        low = min(per_structure, key=per_structure.get)
        lines.append(f"{group:<5} {plane:<14} {len(members):>2} {value:>8.4f} {ratio:>6.3f}  {low} {per_structure[low]:.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--bert-factors", default="3,5,7", help="odd slab sizes for bert (1 mm voxels)")
    parser.add_argument("--ixi", type=int, default=5, help="how many IXI scans (sorted by name; 0: none)")
    parser.add_argument("--ixi-factors", default="3", help="odd slab sizes for IXI (2 mm voxels)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=False,
                        help="test-time augmentation as in `synthseg segment` (default here: one pass)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    bert_factors, ixi_factors = odd_factors(args.bert_factors), odd_factors(args.ixi_factors)
    header("real scans re-sliced thicker")
    from synthseg.inference.segmenter import Segmenter
    from synthseg.io.image import load_image

    bert_dir, ixi_dir = SHARED / "dev" / "freesurfer_bert", SHARED / "dev" / "ixi"
    if not bert_dir.is_dir():
        raise SystemExit(f"{bert_dir}: not found (the shared dev data are needed)")
    segmenter = Segmenter(args.model, device="cpu", tta=args.tta, amp=args.amp)
    print(f"model {segmenter.card['name']}, tta {args.tta}, amp {args.amp}")
    start = time.perf_counter()
    rows = scan_rows(segmenter, "bert", load_image(bert_dir / "norm.mgz"),
                     load_image(bert_dir / "aseg.mgz", labels=True), "aseg", bert_factors)
    for scan in sorted((ixi_dir / "t1").glob("*.nii.gz"))[:args.ixi]:
        stem = scan.name.split(".nii")[0]
        ref = next((ixi_dir / "dlmuse").glob(f"{stem}*"))
        rows += scan_rows(segmenter, stem, load_image(scan), load_image(ref, labels=True), "muse", ixi_factors)
    print("\n".join(summarise(rows)))
    print(f"{len(rows)} segmentations in {time.perf_counter() - start:.0f} s")
    if args.json:
        report = {"command": "python " + " ".join(sys.argv), "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
