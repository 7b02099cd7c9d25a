"""Labels of a thick-slice scan on its own grid or on a 1 mm grid (``--voxel-size``), scored at 1 mm.

FreeSurfer's bert (norm.mgz) is re-sliced thick along one voxel axis at a time (every ``k`` slices averaged,
as `real_robustness.py` does) and segmented twice: with the labels on the thick grid the scan comes on (the
default) and on an isotropic grid of ``--voxel-size`` mm over the same field of view. Both label maps are
scored against aseg on its own 1 mm grid (nearest neighbour by world position): what a user gets who needs
the anatomy at 1 mm from a clinical thick-slice scan. The scan at 1 mm (``k`` = 1) is the reference row.

    python benchmarks/output_grid.py [--model NAME] [--thickness 5,7] [--voxel-size 1] [--tta]
                                     [--amp auto|off|bf16|fp16] [--json OUT]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from _common import SHARED, header
from accuracy import BRAIN
from real_robustness import numbers, reslice_thick
from synthseg.device import AMP_MODES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--thickness", default="5,7", help="slab sizes in slices of bert's 1 mm grid")
    parser.add_argument("--voxel-size", type=float, default=1.0, help="the isotropic output grid's voxel size (mm)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--amp", default="off", choices=AMP_MODES)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    header("thick-slice labels on their own grid or on an isotropic one, scored at 1 mm")
    from synthseg.evaluation.evaluate import evaluate_pair
    from synthseg.inference.segmenter import Segmenter
    from synthseg.io.image import Image, load_image
    from synthseg.labels.mapping import ASEG

    bert = SHARED / "dev" / "freesurfer_bert"
    scan, reference = load_image(bert / "norm.mgz"), load_image(bert / "aseg.mgz")
    options = {"model": args.model, "device": "cpu", "tta": args.tta, "amp": args.amp}
    segmenters = {"scan grid": Segmenter(**options), f"{args.voxel_size:g} mm grid":
                  Segmenter(**options, voxel_size=args.voxel_size)}
    names = [s for s in BRAIN if s != "CSF"]  # aseg labels almost no CSF outside the ventricles
    rows = []
    print(f"{'scan':<18}{'labels on':<12}{'mean-11':>8}{'|vol err|':>10}  " + " ".join(f"{s:>6}" for s in names))
    for k in [1, *numbers(args.thickness)]:
        for axis in (0, 1, 2) if k > 1 else (0,):
            data, affine = ((np.asarray(scan.data, np.float32), scan.affine) if k == 1
                            else reslice_thick(scan.data, scan.affine, axis, k))
            for grid, segmenter in segmenters.items():
                labels = segmenter.segment(Image(data, affine)).labels
                result = evaluate_pair(Image(np.asarray(labels.dataobj), labels.affine), reference, ASEG, hd95=False)
                by_name = {r["structure"]: r for r in result.rows}
                row = {"thickness_mm": k, "axis": axis, "labels_on": grid,
                       "dice": {s: by_name[s]["dice"] for s in names},
                       "volume_error_pct": {s: by_name[s]["vol_diff_pct"] for s in names}}
                row["mean_dice"] = float(np.mean(list(row["dice"].values())))
                row["mean_abs_volume_error_pct"] = float(np.mean(np.abs(list(row["volume_error_pct"].values()))))
                rows.append(row)
                case = "1 mm as acquired" if k == 1 else f"{k} mm, axis {axis}"
                print(f"{case:<18}{grid:<12}{row['mean_dice']:>8.4f}{row['mean_abs_volume_error_pct']:>9.1f}%  "
                      + " ".join(f"{row['dice'][s]:>6.3f}" for s in names), flush=True)
    for grid in segmenters:
        thick = [r["mean_dice"] for r in rows if r["labels_on"] == grid and r["thickness_mm"] > 1]
        print(f"thick scans, labels on the {grid}: mean-11 {np.mean(thick):.4f} ({min(thick):.4f}-{max(thick):.4f})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": rows, "options": vars(args)}, handle, indent=2)


if __name__ == "__main__":
    main()
