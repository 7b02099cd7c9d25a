"""CT stored in other scales than Hounsfield units: how each dev scan's values read, and what converting buys.

1. For every dev scan: the share of its voxels above air (>= 200) that fall in the brain band of each scale
   (HU + 1024, Cormack units), what ``ct_scale`` would call it, and the ``--modality auto`` decision;
2. the Cormack template ``dev/ct_template/scct_cormack`` (no reference labels) segmented under ``auto`` (MR
   path), under ``ct`` (converted), and as HU + 1024 under ``auto``: the agreement (Dice of the 12 brain
   structures) of each with the labels of its skull-stripped HU twin ``scct_stripped_hu`` under ``ct``.
   One pass, fp32.

    python benchmarks/ct_scales.py [--model NAME]
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import SHARED, dev_scans, header
from accuracy import BRAIN, mean, structure_dice


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    header("CT scales")
    from synthseg.inference.preprocessing import brain_band_shares, ct_scale, looks_like_ct, to_hounsfield
    from synthseg.inference.segmenter import Segmenter
    from synthseg.io.image import load_image

    print("1. brain-band shares above air (HU+1024, Cormack), ct_scale, auto decision")
    for path in dev_scans():
        data = np.asarray(load_image(path).data, np.float32)
        shares = brain_band_shares(data)
        print(f"  {path.name:<40} {shares['hu+1024']:.3f} {shares['cormack']:.3f}  {ct_scale(data):<8} "
              f"{'CT' if looks_like_ct(data) else 'MR'}", flush=True)

    print("2. scct_cormack: brain-12 agreement with scct_stripped_hu (ct)")
    segmenter = Segmenter(args.model, device="cpu", tta=False, amp="off")
    folder = SHARED / "dev" / "ct_template"
    cormack = load_image(folder / "scct_cormack.nii.gz")
    offset = cormack.with_data(to_hounsfield(cormack.data, "cormack") + 1024)

    def labels(image, modality: str) -> np.ndarray:
        segmenter.modality = modality
        result = segmenter.segment(image)
        return np.asarray(result.labels.dataobj), result.modality, result.warnings

    reference = labels(load_image(folder / "scct_stripped_hu.nii.gz"), "ct")[0]
    for name, image, modality in (("Cormack, auto", cormack, "auto"), ("Cormack, ct", cormack, "ct"),
                                  ("HU + 1024, auto", offset, "auto")):
        found, read_as, warnings = labels(image, modality)
        scores = structure_dice(found, reference)
        print(f"  {name:<16} read as {read_as}: {mean(scores[k] for k in BRAIN):.3f}  "
              + " ".join(f"{k} {scores[k]:.2f}" for k in BRAIN) + (f"  ({warnings[0]})" if warnings else ""),
              flush=True)


if __name__ == "__main__":
    main()
