"""How ``--modality auto`` treats skull-stripped CT, and what the CT path is worth for it.

1. The auto decision (``looks_like_ct``) and its inputs (share of zero voxels, median and share of
   negative values among the others) for every dev scan and for the held-out renders of
   ``accuracy.py``, whole and skull-stripped to a zero background (everything outside labels 1-14 set to 0);
2. the held-out CT renders stripped that way, segmented through the MR path and through the CT path
   (one pass, fp32): mean Dice of the 12 brain structures against the stripped labels.

    python benchmarks/stripped_ct.py [--model NAME] [--templates work/templates/aseg-charm]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import dev_scans, header
from accuracy import BRAIN, heldout_renders, mean, structure_dice


def describe(name: str, data: np.ndarray) -> None:
    """The auto decision for one array, with the three figures it rests on."""
    from synthseg.inference.preprocessing import looks_like_ct

    foreground = data[data != 0]
    print(f"  {name:<40} {'CT' if looks_like_ct(data) else 'MR'}  zero {np.mean(data == 0):.2f}  "
          f"median {np.median(foreground):8.1f}  negative {np.mean(foreground < 0):.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--templates", default="work/templates/aseg-charm")
    args = parser.parse_args()
    header("skull-stripped CT under --modality auto")
    from synthseg.inference.segmenter import Segmenter
    from synthseg.labels.protocol import INTRACRANIAL
    from synthseg.io.image import Image, load_image

    print("1. auto decision")
    for path in dev_scans():
        describe(path.name, np.asarray(load_image(path).data, np.float32))
    stripped_ct = []
    for case, image, target, _ in heldout_renders(Path(args.templates), ["training_seg_15", "training_seg_16"]):
        inside = np.isin(target, INTRACRANIAL)
        stripped = np.where(inside, image.data, 0).astype(np.float32)
        describe(case, np.asarray(image.data, np.float32))
        describe(case + " stripped", stripped)
        if "/ct/" in case:
            stripped_ct.append((case, Image(stripped, image.affine), np.where(inside, target, 0)))

    print("2. stripped CT renders, brain-12 Dice through each path (one pass, fp32)")
    segmenter = Segmenter(args.model, device="cpu", tta=False, amp="off")
    totals: dict[str, list[float]] = {"mr": [], "ct": []}
    for case, image, target in stripped_ct:
        line = f"  {case:<28}"
        for modality in totals:
            segmenter.modality = modality
            result = segmenter.segment(image)
            scores = structure_dice(np.asarray(result.labels.dataobj), target)
            totals[modality].append(mean(scores[k] for k in BRAIN))
            route = result.expert["contrast"] if result.expert else "general"
            line += f"  {modality}: {totals[modality][-1]:.3f} ({route})"
        print(line, flush=True)
    print("  mean" + "".join(f"  {m}: {mean(v):.3f}" for m, v in totals.items()))


if __name__ == "__main__":
    main()
