"""The demo's head: the built-in phantom rendered as `synthseg demo` renders it, segmented by a model.

Per seed and contrast: the route the scan took (expert, correlation), the head pose read, and Dice per structure
against the phantom's truth; then the means over all renders (16 structures, and the 12 brain structures).
What a new user sees first, measured; the phantom is procedural, so these figures say nothing about real scans.

    python benchmarks/demo_phantom.py [--model NAME] [--seeds 0,1,2,3] [--contrasts t1] [--tta]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _common import header
from synthseg.evaluation.metrics import dice
from synthseg.inference.segmenter import Segmenter
from synthseg.io.image import save_image
from synthseg.labels.protocol import STRUCTURES
from synthseg.synthesis.scans import render_scan
from synthseg.templates.library import phantom_templates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--contrasts", default="t1")
    parser.add_argument("--tta", action="store_true", help="the demo's default; off: one pass")
    args = parser.parse_args()
    header("demo phantom")
    segmenter = Segmenter(args.model, tta=args.tta)
    means16, means12 = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            templates, recipe = phantom_templates(1.0, seeds=(seed,))
            for contrast in args.contrasts.split(","):
                scan, truth = render_scan(templates[0], recipe, contrast, seed)  # as `synthseg demo` renders it
                path = save_image(scan, Path(tmp) / f"phantom_{seed}_{contrast}.nii.gz")
                result = segmenter.segment(path)
                labels = np.asanyarray(result.labels.dataobj)
                scores = {s.short: dice(labels, truth, s.id) for s in STRUCTURES[1:]}
                means16.append(np.mean(list(scores.values())))
                means12.append(np.mean([scores[s.short] for s in STRUCTURES[1:13]]))
                done = result.what_was_done()
                pose = done["pose"] or {}
                print(f"seed {seed} {contrast}: mean-16 {means16[-1]:.3f} mean-12 {means12[-1]:.3f}; expert "
                      f"{done['expert']}; pose {pose.get('degrees')}° (residual {pose.get('residual_mm')} mm, "
                      f"turned {pose.get('turned')})", flush=True)
                print("   " + " ".join(f"{k} {v:.2f}" for k, v in scores.items()), flush=True)
    print(f"mean over {len(means16)} renders: mean-16 {np.mean(means16):.3f}, mean-12 {np.mean(means12):.3f}")


if __name__ == "__main__":
    main()
