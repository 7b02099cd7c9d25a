"""Does the segmenter tell a scan that holds the whole brain from one whose field of view cuts it?

Every scan of ``../shared/data/dev`` is segmented as acquired, and some of them again cut the way partial-coverage
acquisitions are: an axial or coronal slab of 30–90 mm centred on the brain, or the slices beyond a plane 20 or
40 mm inside the brain's top (vertex) or bottom (cerebellum) removed. The cuts are placed on the scan's own labels
(the extent of cortex and cerebellar cortex along the voxel axis nearest to the world axis), so scans without a
reference can be cut too. With ``--nan-fill`` each cut is also kept on the scan's whole grid with NaN beyond it,
as SPM writes a partial-coverage scan resliced into another space (the cut then lies inside the grid), and the scan
with its zeros as NaN (a skull-stripped scan's background, as a masking tool may write it: no cut). Each row gives
the largest brain area on a face of the field of view (the grid, or the box the scan's finite values fill)
(``synthseg.inference.coverage.brain_at_edges``), the sides the segmenter reports as cut at its threshold, and the
skull-stripping verdict with the volume ratio test alone (``looks_skull_stripped``), which a slab's thin ring of
skull and scalp fools, against the one reported (undecided, ``None``, where the brain is cut).

    python benchmarks/coverage.py [--model NAME] [--cut-scans chris_t1,norm,IXI012,IXI051,IXI083] [--tta]
                                  [--nan-fill] [--amp auto|off|bf16|fp16]
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


def zeros_as_nan(data, affine, ref):
    """A skull-stripped scan's zero background as NaN (an SPM-style mask): around the brain, not a cut."""
    data = np.asarray(data, np.float32)
    return np.where(data == 0, np.float32(np.nan), data), affine, None, None


def nan_filled(change):
    """``change`` (a crop) undone onto the scan's own grid: what it keeps in place, NaN where it cut."""
    def filled(data, affine, ref):
        where = np.arange(data.size, dtype=np.float64).reshape(data.shape)  # each voxel's flat index, exact
        kept = change(where, affine, ref)[0].astype(np.int64).ravel()
        out = np.full(data.size, np.nan, np.float32)
        out[kept] = np.asarray(data, np.float32).ravel()[kept]
        return out.reshape(data.shape), affine, None, None
    return filled


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--cut-scans", default="chris_t1,norm,IXI012,IXI051,IXI083",
                        help="scans (name prefixes) also segmented cut")
    parser.add_argument("--tta", action="store_true", help="the default test-time augmentation (default: one pass)")
    parser.add_argument("--nan-fill", action="store_true", help="each cut also with NaN beyond it on the scan's whole grid, and the scan with its zeros as NaN")
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

    def report(name: str, image, cut: bool) -> np.ndarray:
        result = segmenter.segment(image)
        labels = np.asanyarray(result.labels.dataobj)
        outside = ~np.isfinite(np.asarray(image.data, np.float32))  # NaN beyond a cut inside the grid
        largest = max(brain_at_edges(labels, result.labels.affine, min_cm2=0.0, outside=outside).values(),
                      default=0.0)
        rows.append((name, largest, result.brain_at_edges, cut))
        sides = ", ".join(f"{side} {area:g}" for side, area in result.brain_at_edges.items()) or "-"
        print(f"{name:<42} {largest:>8.1f} {sides:<36} {looks_skull_stripped(result.volumes)!s:>6} "
              f"{result.skull_stripped!s:>6}", flush=True)
        return labels

    print(f"{'scan':<42} {'max cm2':>8} {'cut (cm2 of brain at the edge)':<36} {'ratio':>6} {'says':>6}")
    for path in dev_scans():
        image = load_image(path)
        name = path.name.split(".")[0]
        labels = report(name, image, cut=False)
        if any(name.startswith(prefix) for prefix in prefixes):
            extent = np.isin(labels, EXTENT_IDS)
            changes = [(label, change, True) for label, change in CUTS]
            if args.nan_fill:
                changes += [(f"{label}, NaN beyond", nan_filled(change), True) for label, change in CUTS]
                changes.append(("zeros as NaN", zeros_as_nan, False))
            for label, change, cut in changes:
                data, affine, _, _ = change(np.asarray(image.data), image.affine, extent)
                report(f"{name} {label}", Image(data, affine), cut)

    whole = [largest for _, largest, _, cut in rows if not cut]
    cuts = [(name, edges) for name, _, edges, cut in rows if cut]
    print(f"whole brains: {len(whole)} scans, largest brain area on a face {max(whole):.1f} cm² "
          f"(threshold {BRAIN_AT_EDGE_CM2:g}); cut: {sum(bool(e) for _, e in cuts)} of {len(cuts)} reported cut; "
          f"not reported: {', '.join(name for name, edges in cuts if not edges) or 'none'}")


if __name__ == "__main__":
    main()
