"""Which working grids test-time augmentation should average: real-T1 Dice on the 21 IXI scans (MUSE
references, mean over the 12 brain structures) for each grid alone and for averages of several, and the
time each grid costs.

A grid is a factor of the model's working spacing (1.0 = the model's own, 0.9 = 10 % finer). On every grid
the network runs on the scan and its mirror, as the default TTA does; the default averages the grids of
``TTA_SPACING_FACTORS`` in ``synthseg/inference/segmenter.py``. Averages are taken of the 8-bit probabilities
on the scan's grid (as ``--posteriors`` writes them), then argmax, then Dice as ``benchmarks/accuracy.py``
scores IXI. Each grid is one ``segment`` call, so its contrast expert is chosen on that grid, where the default
chooses on the first and reuses it (on IXI every grid picks the T1 expert, and the 1.0+0.9 average equals the
default's score); the seconds per grid therefore include the general network's routing pass.

    python benchmarks/tta_grids.py --factors 1.0 0.9 0.95 --groups 1.0 1.0+0.9 1.0+0.95 [--model DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import SHARED, Timer, header
from synthseg.device import AMP_MODES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 0.9])
    parser.add_argument("--groups", nargs="+", default=["1.0", "1.0+0.9"],
                        help="averages to score, factors joined by '+'")
    parser.add_argument("--amp", default="off", choices=AMP_MODES)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    groups = {g: [float(f) for f in g.split("+")] for g in args.groups}
    missing = {f for members in groups.values() for f in members} - set(args.factors)
    if missing:
        parser.error(f"--groups use factors not in --factors: {sorted(missing)}")
    header("test-time augmentation grids on IXI")

    import synthseg.inference.segmenter as segmenter_module
    from synthseg.evaluation.evaluate import evaluate_pair
    from synthseg.io.image import Image, load_image
    from synthseg.labels.mapping import load_mapping

    images = sorted((SHARED / "dev" / "ixi" / "t1").glob("*.nii.gz"))
    refs = sorted((SHARED / "dev" / "ixi" / "dlmuse").glob("*.nii.gz"))
    if not images or len(images) != len(refs):
        raise SystemExit(f"IXI scans and references not found under {SHARED / 'dev' / 'ixi'}")
    mapping = load_mapping("muse")
    segmenter = segmenter_module.Segmenter(args.model, tta=True, amp=args.amp)
    seconds = dict.fromkeys(args.factors, 0.0)
    dice: dict[str, list[dict[str, float]]] = {g: [] for g in groups}
    for image_path, ref_path in zip(images, refs):
        posteriors = {}
        for factor in args.factors:
            segmenter_module.TTA_SPACING_FACTORS = (factor,)
            with Timer() as timer:
                result = segmenter.segment(image_path, posteriors=True)
            seconds[factor] += timer.seconds
            posteriors[factor] = np.asarray(result.posteriors.dataobj)
        ref = load_image(ref_path, labels=True)
        line = []
        for name, members in groups.items():
            labels = sum(posteriors[f].astype(np.uint16) for f in members).argmax(-1)
            pred = Image(labels.astype(np.uint8), result.labels.affine)
            case = {r["structure"]: r["dice"] for r in evaluate_pair(pred, ref, mapping, hd95=False).rows}
            dice[name].append(case)
            line.append(f"{name} {np.mean(list(case.values())):.4f}")
        print(f"{image_path.name}: {' | '.join(line)}", flush=True)

    report = {"seconds_per_grid": {str(f): round(s, 1) for f, s in seconds.items()}, "groups": {}}
    print("seconds per grid, all scans: " + ", ".join(f"{f}: {s:.0f}" for f, s in seconds.items()))
    for name, cases in dice.items():
        per_structure = {k: float(np.mean([c[k] for c in cases])) for k in cases[0]}
        mean_12 = float(np.mean(list(per_structure.values())))
        report["groups"][name] = {"mean_12": mean_12, "per_structure": per_structure}
        print(f"{name}: mean-12 {mean_12:.4f} | "
              + ", ".join(f"{k} {v:.3f}" for k, v in per_structure.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
