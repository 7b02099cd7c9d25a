"""Does the segmenter tell a scan that holds the whole brain from one whose field of view cuts it?

Every scan of ``../shared/data/dev`` is segmented as acquired, and some of them again cut the way partial-coverage
acquisitions are: an axial or coronal slab of 30–90 mm centred on the brain, or the slices beyond a plane 20 or
40 mm inside the brain's top (vertex) or bottom (cerebellum) removed. The cuts are placed on the scan's own labels
(the extent of cortex and cerebellar cortex along the voxel axis nearest to the world axis), so scans without a
reference can be cut too. Each row gives the largest brain area on a face of the label map's grid
(``synthseg.inference.coverage.brain_at_edges``), the sides the segmenter reports as cut at its threshold, and the
skull-stripping verdict with the volume ratio test alone (``looks_skull_stripped``), which a slab's thin ring of
skull and scalp fools, against the one reported (undecided, ``None``, where the brain is cut).

    python benchmarks/coverage.py [--model NAME] [--cut-scans chris_t1,norm,IXI012,IXI051,IXI083] [--tta]
                                  [--amp auto|off|bf16|fp16]
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import dev_scans, header
from real_robustness import cut_fov, slab
from synthseg.device import AMP_MODES

EXTENT_IDS = (1, 5)  # cortex and cerebellar cortex: the brain's extent without the brainstem down the neck
# real_robustness's changes, placed on the scan's own labels (an extent mask in place of a reference)
CUTS = [(f"axial slab {mm} mm", slab(2, mm)) for mm in (30, 60, 90)]
CUTS += [(f"coronal slab {mm} mm", slab(1, mm)) for mm in (30, 60)]
CUTS += [(f"{side} cut {mm} mm", cut_fov(side, mm)) for side in ("top", "bottom") for mm in (20, 40)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--cut-scans", default="chris_t1,norm,IXI012,IXI051,IXI083",
                        help="scans (name prefixes) also segmented cut")
    parser.add_argument("--tta", action="store_true", help="the default test-time augmentation (default: one pass)")
    parser.add_argument("--amp", choices=AMP_MODES, default="auto")
    args = parser.parse_args()

    from synthseg.device import retain_freed_memory
    from synthseg.inference.coverage import BRAIN_AT_EDGE_CM2, brain_at_edges
    from synthseg.inference.segmenter import Segmenter, looks_skull_stripped
    from synthseg.io.image import Image, load_image

    retain_freed_memory()
    header("field of view coverage")
    segmenter = Segmenter(args.model, device="cpu", tta=args.tta, amp=args.amp)
    prefixes = [p for p in args.cut_scans.split(",") if p]
    rows = []

    def report(name: str, image) -> np.ndarray:
        result = segmenter.segment(image)
        labels = np.asanyarray(result.labels.dataobj)
        largest = max(brain_at_edges(labels, result.labels.affine, min_cm2=0.0).values(), default=0.0)
        rows.append((name, largest, result.brain_at_edges))
        sides = ", ".join(f"{side} {area:g}" for side, area in result.brain_at_edges.items()) or "-"
        print(f"{name:<42} {largest:>8.1f} {sides:<36} {looks_skull_stripped(result.volumes)!s:>6} "
              f"{result.skull_stripped!s:>6}", flush=True)
        return labels

    print(f"{'scan':<42} {'max cm2':>8} {'cut (cm2 of brain at the edge)':<36} {'ratio':>6} {'says':>6}")
    for path in dev_scans():
        image = load_image(path)
        name = path.name.split(".")[0]
        labels = report(name, image)
        if any(name.startswith(prefix) for prefix in prefixes):
            extent = np.isin(labels, EXTENT_IDS)
            for label, change in CUTS:
                data, affine, _, _ = change(np.asarray(image.data), image.affine, extent)
                report(f"{name} {label}", Image(data, affine))

    whole = [largest for name, largest, _ in rows if " " not in name]
    cuts = [(name, edges) for name, _, edges in rows if " " in name]
    print(f"as acquired: {len(whole)} scans, largest brain area on a face {max(whole):.1f} cm² "
          f"(threshold {BRAIN_AT_EDGE_CM2:g}); cut: {sum(bool(e) for _, e in cuts)} of {len(cuts)} reported cut; "
          f"not reported: {', '.join(name for name, edges in cuts if not edges) or 'none'}")


if __name__ == "__main__":
    main()
