"""What the T1 expert's fine grid adds to the default test-time augmentation, paired on fine T1 data: FreeSurfer's bert
(1 mm, against aseg, mean of the 12 brain structures) and the held-out templates rendered as T1 at 1 mm (mean Dice
over all structures but dura, as ``benchmarks/accuracy.py`` scores them), each segmented with the default TTA once
without and once with the fine grid, and the seconds each took.

    python benchmarks/fine_grid.py [--model NAME] [--fine FOLDER] [--draws usual,v1,v2]

``--fine FOLDER`` tries another fine network (an exported model folder, e.g. ``synthseg export CKPT -o FOLDER`` of a
T1 run on a finer grid) in place of the model's own: how a candidate is judged before ``synthseg export CKPT -o MODEL
--expert t1 --fine`` ships it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _common import SHARED, Timer, header
from accuracy import BRAIN, bert_scores, heldout_renders, mean, no_dura, structure_dice

BERT = SHARED / "dev" / "freesurfer_bert"


def bert_mean_12(result, folder: Path) -> float:
    scores = bert_scores(result, folder)
    return mean(scores[s] for s in BRAIN)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model folder or name (default: the shipped model)")
    parser.add_argument("--fine", default=None, help="model folder of another fine T1 network to try")
    parser.add_argument("--templates", default="work/templates/aseg-charm")
    parser.add_argument("--draws", default="usual,v1,v2")
    parser.add_argument("--amp", default="off", choices=("auto", "off", "bf16", "fp16"))
    args = parser.parse_args()
    header("the T1 expert's fine grid in the test-time augmentation")

    import torch

    from synthseg.inference.experts import FineGrid
    from synthseg.inference.model import load_model
    from synthseg.inference.segmenter import Segmenter

    segmenter = Segmenter(args.model, tta=True, amp=args.amp)
    t1 = next((e for e in segmenter.loaded.experts if e.contrast == "t1"), None)
    if t1 is None:
        raise SystemExit("the model has no T1 expert")
    if args.fine:
        fine = load_model(args.fine, torch.device("cpu"), experts=False)
        t1.fine = FineGrid(fine.network.to(segmenter.device), float(fine.card["spacing_mm"]))
    if t1.fine is None:
        raise SystemExit("the model's T1 expert has no fine grid; name one with --fine FOLDER")
    source = args.fine or "the model's own"
    print(f"fine grid: {t1.fine.spacing_mm} mm ({source})")
    fine_grid = t1.fine

    def both(scan, score):
        """(without, with) scores and seconds of one scan."""
        scores, seconds = [], []
        for grid in (None, fine_grid):
            t1.fine = grid
            with Timer() as timer:
                result = segmenter.segment(scan)
            if grid is not None and "fine_grid_mm" not in (result.expert or {}):
                raise SystemExit(f"the fine grid was not used on {getattr(scan, 'path', scan) or 'a render'}: "
                                 f"routed to {result.expert}")
            scores.append(score(result))
            seconds.append(timer.seconds)
        return scores, seconds

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if (BERT / "norm.mgz").exists():
            scores, seconds = both(BERT / "norm.mgz", lambda r: bert_mean_12(r, Path(tmp)))
            rows.append(("bert (mean-12 vs aseg)", scores, seconds))
    for draw in args.draws.split(","):
        for case, image, target, _ in heldout_renders(Path(args.templates), ["training_seg_15", "training_seg_16"],
                                                      contrasts=("t1",), draw=draw):
            if "thick" not in case:  # fine scans only: the fine grid is not used on 6 mm slices
                scores, seconds = both(image, lambda r: no_dura(structure_dice(np.asarray(r.labels.dataobj),
                                                                               target)))
                rows.append((case, scores, seconds))
    print(f"{'case':<32} {'without':>8} {'with':>8} {'change':>8} {'s without':>10} {'s with':>8}")
    for case, (before, after), (s_before, s_after) in rows:
        print(f"{case:<32} {before:8.4f} {after:8.4f} {after - before:+8.4f} {s_before:10.1f} {s_after:8.1f}")
    renders = [r for r in rows if not r[0].startswith("bert")]
    if renders:
        before, after = (mean(r[1][i] for r in renders) for i in (0, 1))
        print(f"held-out T1 renders at 1 mm ({len(renders)}): {before:.4f} -> {after:.4f} ({after - before:+.4f}), "
              f"{sum(r[1][1] > r[1][0] for r in renders)} of {len(renders)} up")
    time_ratio = sum(r[2][1] for r in rows) / sum(r[2][0] for r in rows)
    print(f"wall-time ratio with / without the fine grid: {time_ratio:.2f}")


if __name__ == "__main__":
    main()
