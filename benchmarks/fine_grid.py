"""What a contrast expert's fine grid adds to the default test-time augmentation, paired on fine data: each case is
segmented with the default TTA once without and once with the fine grid, and the seconds each took are shown. The
cases: the held-out templates rendered in that contrast at 1 mm (mean Dice over all structures but dura, as
``benchmarks/accuracy.py`` scores them); for T1, FreeSurfer's bert (1 mm, against aseg, mean of the 12 brain
structures); for T1, T2 and FLAIR, the stroke patient's agreement (measurement 3: the mean over the three pairs of
the T1 / T2 / FLAIR labels, the other two contrasts segmented as the model does).

    python benchmarks/fine_grid.py [--contrast t1] [--model NAME] [--fine FOLDER] [--draws usual,v1,v2]

``--fine FOLDER`` tries another fine network (an exported model folder, e.g. ``synthseg export CKPT -o FOLDER`` of a
run on a finer grid) in place of the model's own: how a candidate is judged before ``synthseg export CKPT -o MODEL
--expert CONTRAST --fine`` ships it. Renders the model routes to another network are listed and left out of the means.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _common import SHARED, Timer, header
from synthseg.device import AMP_MODES
from synthseg.synthesis.tissues import CONTRASTS
from accuracy import (BRAIN, STROKE, STROKE_CONTRASTS, bert_scores, brain_means, heldout_renders, mean, no_dura,
                      pair_dice, structure_dice)

BERT = SHARED / "dev" / "freesurfer_bert"


def bert_mean_12(result, folder: Path) -> float:
    scores = bert_scores(result, folder)
    return mean(scores[s] for s in BRAIN)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contrast", default="t1", choices=CONTRASTS,
                        help="the expert whose fine grid is judged (default: t1)")
    parser.add_argument("--model", default=None, help="model folder or name (default: the shipped model)")
    parser.add_argument("--fine", default=None, help="model folder of another fine network to try")
    parser.add_argument("--templates", default="work/templates/aseg-charm")
    parser.add_argument("--draws", default="usual,v1,v2")
    parser.add_argument("--amp", default="off", choices=AMP_MODES)
    args = parser.parse_args()
    header(f"the {args.contrast} expert's fine grid in the test-time augmentation")

    import torch

    from synthseg.inference.experts import FineGrid
    from synthseg.inference.model import load_model
    from synthseg.inference.segmenter import Segmenter

    segmenter = Segmenter(args.model, tta=True, amp=args.amp)
    expert = next((e for e in segmenter.loaded.experts if e.contrast == args.contrast), None)
    if expert is None:
        raise SystemExit(f"the model has no {args.contrast} expert")
    if args.fine:
        fine = load_model(args.fine, torch.device("cpu"), experts=False)
        expert.fine = FineGrid(fine.network.to(segmenter.device), float(fine.card["spacing_mm"]))
    if expert.fine is None:
        raise SystemExit(f"the model's {args.contrast} expert has no fine grid; name one with --fine FOLDER")
    source = args.fine or "the model's own"
    print(f"fine grid: {expert.fine.spacing_mm} mm ({source})")
    fine_grid = expert.fine

    def both(scan, score):
        """(without, with) scores and seconds of one scan, and where it went instead when the fine grid was not used
        (None: it was; a scan routed to another network is not segmented a second time)."""
        scores, seconds = [], []
        try:
            for grid in (None, fine_grid):
                expert.fine = grid
                with Timer() as timer:
                    result = segmenter.segment(scan)
                route = result.expert or {"contrast": "the general network"}
                if route["contrast"] != args.contrast or (grid is not None and "fine_grid_mm" not in route):
                    return scores, seconds, route["contrast"]
                scores.append(score(result))
                seconds.append(timer.seconds)
            return scores, seconds, None
        finally:
            expert.fine = fine_grid

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.contrast == "t1" and (BERT / "norm.mgz").exists():
            rows.append(("bert (mean-12 vs aseg)", *both(BERT / "norm.mgz", lambda r: bert_mean_12(r, tmp))))
        stroke = {c: STROKE / f"stroke_{c}.nii.gz" for c in STROKE_CONTRASTS}
        tested = args.contrast.upper()
        if tested in stroke and all(path.exists() for path in stroke.values()):
            others = {c: segmenter.segment(path).save(tmp / "stroke")["labels"]
                      for c, path in stroke.items() if c != tested}

            def agreement(result) -> float:
                labels = result.save(tmp / "stroke")["labels"]
                return mean(brain_means(pair_dice([others.get(c, labels) for c in STROKE_CONTRASTS])).values())

            rows.append((f"stroke agreement ({tested} changed)", *both(stroke[tested], agreement)))
    render_cases = set()
    for draw in args.draws.split(","):
        for case, image, target, _ in heldout_renders(Path(args.templates), ["training_seg_15", "training_seg_16"],
                                                      contrasts=(args.contrast,), draw=draw):
            if "thick" in case:  # fine scans only: the fine grid is not used on 6 mm slices
                continue
            rows.append((case, *both(image, lambda r: no_dura(structure_dice(np.asarray(r.labels.dataobj),
                                                                              target)))))
            render_cases.add(case)
    skipped = [f"{case} (routed to {missed})" for case, _, _, missed in rows if missed]
    rows = [row for row in rows if not row[3]]
    print(f"{'case':<36} {'without':>8} {'with':>8} {'change':>8} {'s without':>10} {'s with':>8}")
    for case, (before, after), (s_before, s_after), _ in rows:
        print(f"{case:<36} {before:8.4f} {after:8.4f} {after - before:+8.4f} {s_before:10.1f} {s_after:8.1f}")
    if skipped:
        print("not routed to the expert, left out: " + "; ".join(skipped))
    renders = [r for r in rows if r[0] in render_cases]
    if renders:
        before, after = (mean(r[1][i] for r in renders) for i in (0, 1))
        print(f"held-out {args.contrast} renders at 1 mm ({len(renders)}): {before:.4f} -> {after:.4f} "
              f"({after - before:+.4f}), {sum(r[1][1] > r[1][0] for r in renders)} of {len(renders)} up")
    time_ratio = sum(r[2][1] for r in rows) / sum(r[2][0] for r in rows)
    print(f"wall-time ratio with / without the fine grid: {time_ratio:.2f}")


if __name__ == "__main__":
    main()
