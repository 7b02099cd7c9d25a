"""Structure volumes against the truth: the volumes `synthseg segment` reports (expected volumes under the
network's probabilities, ``soft_volumes``) and the label map's voxel counts, on cases whose true volumes are known.

- the held-out templates rendered in five contrasts at 1 mm and with 6 mm slices (as `accuracy.py` renders
  them): the truth is the render's own label map, every structure but dura;
- FreeSurfer's bert (norm.mgz) as acquired and re-sliced to 5 and 7 mm slices along its third axis: the truth
  is aseg at 1 mm, the 12 brain structures but CSF (aseg labels almost none outside the ventricles).

Printed per case: the mean |volume error| in percent of the true volume (structures of at least 0.5 ml), from
the reported volumes and from the label counts, then the means per group.

    python benchmarks/volume_accuracy.py [--model NAME] [--templates DIR] [--no-tta] [--amp auto|off|bf16|fp16]
                                         [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import SHARED, header
from accuracy import BRAIN, heldout_renders
from real_robustness import reslice_thick
from synthseg.device import AMP_MODES


def label_volumes(labels: np.ndarray, spacing) -> dict[int, float]:
    """ml per label id, counted."""
    counts = np.bincount(np.asarray(labels, np.int64).reshape(-1), minlength=17)
    return {i: float(counts[i]) * float(np.prod(spacing)) / 1000 for i in range(17)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--templates", default="work/templates/aseg-charm")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--amp", default="off", choices=AMP_MODES)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    header("structure volumes against the truth: reported (soft) and counted from the labels")
    from synthseg.inference.segmenter import Segmenter
    from synthseg.io.image import Image, load_image
    from synthseg.labels.mapping import ASEG, apply_mapping
    from synthseg.labels.protocol import STRUCTURES

    segmenter = Segmenter(args.model, device="cpu", tta=args.tta, amp=args.amp)
    ids = {s.short: s.id for s in STRUCTURES[1:]}
    rows = []

    def score(case: str, group: str, image, modality: str, truth: dict[int, float], names: list[str]) -> None:
        segmenter.modality = modality
        result = segmenter.segment(image)
        labels = result.labels
        counted = label_volumes(np.asarray(labels.dataobj), labels.header.get_zooms()[:3])
        kept = [n for n in names if truth[ids[n]] >= 0.5]
        errors = {"reported": {n: 100 * (result.volumes[n] - truth[ids[n]]) / truth[ids[n]] for n in kept},
                  "counted": {n: 100 * (counted[ids[n]] - truth[ids[n]]) / truth[ids[n]] for n in kept}}
        means = {k: float(np.mean(np.abs(list(v.values())))) for k, v in errors.items()}
        rows.append({"case": case, "group": group, "errors_pct": errors, "mean_abs_error_pct": means})
        print(f"  {case:<34} mean |error| reported {means['reported']:5.1f} %, counted {means['counted']:5.1f} %",
              flush=True)

    names = [s.short for s in STRUCTURES[1:] if s.short != "Dura"]
    for case, image, target, modality in heldout_renders(Path(args.templates), ["training_seg_15", "training_seg_16"]):
        group = "synthetic 1 mm" if "/1mm" in case else "synthetic 6 mm slices"
        score(case, group, image, modality, label_volumes(target, image.spacing), names)
    bert = SHARED / "dev" / "freesurfer_bert"
    scan, aseg = load_image(bert / "norm.mgz"), load_image(bert / "aseg.mgz")
    truth = label_volumes(apply_mapping(np.asarray(aseg.data).astype(np.int64), ASEG), aseg.spacing)
    brain = [n for n in BRAIN if n != "CSF"]
    score("bert 1 mm", "bert", scan, "auto", truth, brain)
    for k in (5, 7):
        data, affine = reslice_thick(scan.data, scan.affine, 2, k)
        score(f"bert {k} mm slices (axis 2)", "bert", Image(data, affine), "auto", truth, brain)
    summary = {}
    for group in dict.fromkeys(r["group"] for r in rows):
        chosen = [r for r in rows if r["group"] == group]
        summary[group] = {k: float(np.mean([r["mean_abs_error_pct"][k] for r in chosen]))
                          for k in ("reported", "counted")}
        better = sum(r["mean_abs_error_pct"]["reported"] < r["mean_abs_error_pct"]["counted"] for r in chosen)
        print(f"{group}: mean |volume error| reported {summary[group]['reported']:.1f} %, counted from the labels "
              f"{summary[group]['counted']:.1f} % (reported closer in {better} of {len(chosen)})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"summary": summary, "rows": rows, "options": vars(args)}, handle, indent=2)


if __name__ == "__main__":
    main()
