"""Real scans acquired differently: how much Dice a model loses to thick slices or a tilted head.

The synthetic held-out set of `accuracy.py` has 6 mm renders but no real scan changed in a known way; here
real images with references — FreeSurfer's bert (norm.mgz against aseg) and the IXI T1 scans (against their
MUSE labels) — are changed retrospectively, and the reference with them:

- *thick slices*: along one voxel axis at a time, every ``k`` consecutive slices are averaged (a rectangular
  slice profile, contiguous slices, as a 2D multi-slice acquisition writes them) and the slab centres become
  the voxel centres in the affine; the reference is taken at the slab centres (``k`` odd: each centre is a
  reference slice), so Dice is measured on the thick grid the user gets labels on;
- *tilt*: the scan is resampled (cubic) on a grid turned about its centre, about one world axis at a time
  (pitch about left-right, roll about anterior-posterior, yaw about inferior-superior), with the turned
  affine: the head sits tilted in voxel space — as a head positioned at an angle in the scanner, or an
  oblique acquisition, shows it to a network — while world positions stay right, so the prediction is
  scored on the untouched reference (brought onto its grid by world position, nearest neighbour);
- *cut field of view*: the slices beyond a plane through the brain removed along the voxel axis nearest to
  inferior-superior, ``mm`` of the brain (the reference's extent) lost at its top (vertex) or at its bottom
  (cerebellum), as a slab that does not cover the whole head shows it; scored on the cut grid;
- *noise*: Rician noise (the magnitude of the scan plus complex Gaussian noise) of a standard deviation given in
  percent of the scan's 99.5th percentile — the generator's own unit, whose training range is 0–6 % — as a
  faster or lower-field acquisition adds it on top of the scan's own;
- *bias field*: the scan multiplied by a smooth field, ``exp`` of a random 4×4×4 grid of standard deviation
  ``s`` upsampled over the grid (the generator's model and training range, ``s`` 0–0.5, but upsampled cubic where
  the generator's ``smooth_field`` is trilinear: a smoother field; the session-41/42 figures were measured with
  it), as a receive coil's inhomogeneity left uncorrected shows it.

Noise and bias fields are drawn from a seed fixed per scan, so reruns and models see the same ones.

Each scan's first row is the scan as acquired, so every figure has its reference run in the same process. Every
row also keeps the confidence the segmenter reports, and the end prints how well it tracks Dice across the IXI rows.

    python benchmarks/real_robustness.py [--model NAME] [--bert-factors 3,5,7] [--ixi 21] [--ixi-factors 3]
                                         [--tilts 15,30] [--round-trip] [--cuts 20,40] [--noise 3,6,12]
                                         [--bias 20,40] [--bias-correct] [--tta]
                                         [--amp auto|off|bf16|fp16] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from _common import SHARED, header
from accuracy import BRAIN, describe_pose
from synthseg.device import AMP_MODES

PLANES = {"L": "sagittal", "R": "sagittal", "A": "coronal", "P": "coronal", "S": "axial", "I": "axial"}
TILTS = {"pitch": 0, "roll": 1, "yaw": 2}  # the RAS world axis each rotation turns about

# a change of acquisition: (image data, affine, reference labels) -> the image's data and affine after it,
# and the reference and its affine to score against
Change = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def numbers(text: str, odd: bool = False) -> list[int]:
    values = [int(f) for f in text.split(",") if f.strip()]
    if odd and any(v < 1 or v % 2 == 0 for v in values):
        raise SystemExit(f"slab sizes must be odd and >= 1 (each slab centre must be a reference slice): {text}")
    return values


def reslice_thick(data: np.ndarray, affine: np.ndarray, axis: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Average every ``k`` slices along ``axis`` (the trailing partial slab dropped); the new affine puts
    each voxel at its slab's centre."""
    n = data.shape[axis] // k * k
    moved = np.moveaxis(np.asarray(data, np.float32), axis, 0)[:n]
    thick = moved.reshape(n // k, k, *moved.shape[1:]).mean(axis=1)
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, 3] += affine[:3, axis] * (k - 1) / 2
    new_affine[:3, axis] *= k
    return np.moveaxis(thick, 0, axis), new_affine


def thick_slices(axis: int, k: int) -> Change:
    def change(data, affine, ref):
        thick, new_affine = reslice_thick(data, affine, axis, k)
        n = ref.shape[axis] // k * k
        return thick, new_affine, np.take(ref, np.arange(k // 2, n, k), axis=axis), new_affine
    return change


def tilt(world_axis: int, degrees: float, round_trip: bool = False) -> Change:
    """The head turned by ``degrees`` about a world axis through the grid's centre, in voxel space: the
    new grid's voxels sample the scan along rotated lines (cubic) and its affine says where, so the world
    positions — and the reference, untouched — stay right. To the network (which reads voxel space) it is
    a tilted head; to the header an oblique acquisition. ``round_trip``: resampled back onto the scan's own
    grid (cubic again), the head as acquired with the tilt's interpolation losses twice — the floor a
    perfect undoing of the tilt could reach."""
    def change(data, affine, ref):
        from synthseg.io.geometry import resample_to_grid

        angle = np.deg2rad(degrees)
        a, b = [i for i in range(3) if i != world_axis]
        rotation = np.eye(4)
        rotation[[a, a, b, b], [a, b, a, b]] = [np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)]
        centre = affine @ np.append((np.asarray(data.shape) - 1) / 2, 1)
        to_centre, back = np.eye(4), np.eye(4)
        to_centre[:3, 3], back[:3, 3] = -centre[:3], centre[:3]
        tilted = back @ rotation @ to_centre @ affine
        low, high = float(data.min()), float(data.max())
        image = resample_to_grid(data.astype(np.float32), affine, data.shape, tilted, order=3, fill=low)
        image = np.clip(image, low, high)  # no cubic overshoot below the air
        if not round_trip:
            return image, tilted, ref, affine
        again = resample_to_grid(image, tilted, data.shape, affine, order=3, fill=low)
        return np.clip(again, low, high), affine, ref, affine
    return change


def _brain_along(affine: np.ndarray, ref: np.ndarray, world_axis: int) -> tuple[int, float, np.ndarray]:
    """The voxel axis nearest to ``world_axis``, its spacing (mm) and the indices along it of the slices that hold
    some of the reference."""
    axis = int(np.argmax(np.abs(np.asarray(affine)[world_axis, :3])))
    spacing = float(np.linalg.norm(np.asarray(affine)[:3, axis]))
    brain = np.flatnonzero(np.moveaxis(ref > 0, axis, 0).reshape(ref.shape[axis], -1).any(axis=1))
    return axis, spacing, brain


def _slices_kept(data, affine, ref, axis: int, start: int, stop: int):
    """The slices ``start``..``stop`` along ``axis`` of the scan and the reference, the affine moved with the first."""
    index = np.arange(start, stop)
    new_affine = np.array(affine, dtype=float)
    new_affine[:3, 3] += affine[:3, axis] * start
    return np.take(data, index, axis=axis), new_affine, np.take(ref, index, axis=axis), new_affine


def cut_fov(side: str, mm: float) -> Change:
    """The field of view cut ``mm`` into the brain at its ``side`` ("top" or "bottom", along the voxel axis
    nearest to inferior-superior): the slices beyond the cut dropped from the scan and the reference, the
    affine moved with a cut at the axis's low end."""
    def change(data, affine, ref):
        axis, spacing, brain = _brain_along(affine, ref, 2)
        upward = affine[2, axis] > 0  # voxel index grows toward superior
        keep = int(round(mm / spacing))
        if (side == "top") == upward:  # the cut removes the high-index end
            return _slices_kept(data, affine, ref, axis, 0, brain[-1] + 1 - keep)
        return _slices_kept(data, affine, ref, axis, brain[0] + keep, ref.shape[axis])
    return change


def slab(world_axis: int, mm: float) -> Change:
    """Only a slab of ``mm`` kept, centred on the brain (the reference's extent) along the voxel axis nearest to
    ``world_axis`` (2: an axial slab, 1: a coronal one), as a partial-coverage acquisition shows it; the reference
    cut alike, the affine moved with the slab's first slice."""
    def change(data, affine, ref):
        axis, spacing, brain = _brain_along(affine, ref, world_axis)
        steps = int(round(mm / spacing))
        start = max(0, (brain[0] + brain[-1]) // 2 - steps // 2)
        return _slices_kept(data, affine, ref, axis, start, min(ref.shape[axis], start + steps))
    return change


def noise(percent: float, seed: int) -> Change:
    """Rician noise of ``percent`` of the scan's 99.5th percentile added to the scan (magnitude of the scan plus
    complex Gaussian noise)."""
    def change(data, affine, ref):
        rng = np.random.default_rng(seed)
        sigma = percent / 100 * float(np.percentile(data, 99.5))
        real = data.astype(np.float32) + rng.normal(0, sigma, data.shape).astype(np.float32)
        imaginary = rng.normal(0, sigma, data.shape).astype(np.float32)
        return np.sqrt(real ** 2 + imaginary ** 2), affine, ref, affine
    return change


def bias_field(shape: Sequence[int], std: float, seed: int) -> np.ndarray:
    """``exp`` of a random 4×4×4 grid of standard deviation ``std`` upsampled (cubic) over ``shape``."""
    from scipy.ndimage import zoom

    coarse = np.random.default_rng(seed).normal(0, std, (4, 4, 4))
    log_field = zoom(coarse, [n / 4 for n in shape], order=3, mode="nearest", grid_mode=True)
    return np.exp(log_field[tuple(slice(0, n) for n in shape)]).astype(np.float32)


def bias(percent: float, seed: int) -> Change:
    """The scan multiplied by a smooth field whose log has a standard deviation of ``percent`` / 100 at the
    coarse grid's nodes."""
    def change(data, affine, ref):
        return data.astype(np.float32) * bias_field(data.shape, percent / 100, seed), affine, ref, affine
    return change


def changes(affine: np.ndarray, factors: list[int], tilts: list[int], round_trip: bool = False,
            cuts: Sequence[int] = (), noises: Sequence[int] = (), biases: Sequence[int] = (),
            seed: int = 0, slabs: Sequence[int] = ()) -> list[tuple[str, Change | None]]:
    import nibabel as nib

    codes = nib.aff2axcodes(affine)
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    out: list[tuple[str, Change | None]] = [("as acquired", None)]
    out += [(f"{PLANES[codes[a]]} {k * spacing[a]:g} mm", thick_slices(a, k)) for k in factors for a in range(3)]
    out += [(f"{name} {d} deg", tilt(axis, d)) for d in tilts for name, axis in TILTS.items()]
    if round_trip:
        out += [(f"{name} {d} deg back", tilt(axis, d, True)) for d in tilts for name, axis in TILTS.items()]
    out += [(f"{side} cut {mm} mm", cut_fov(side, mm)) for mm in cuts for side in ("top", "bottom")]
    out += [(f"{plane} slab {mm} mm", slab(axis, mm)) for mm in slabs for plane, axis in (("axial", 2), ("coronal", 1))]
    out += [(f"noise {p} %", noise(p, seed)) for p in noises]
    out += [(f"bias {p / 100:g}", bias(p, seed)) for p in biases]
    return out


def scan_rows(segmenter, name: str, scan, ref, mapping: str, factors: list[int], tilts: list[int],
              round_trip: bool = False, cuts: Sequence[int] = (), noises: Sequence[int] = (),
              biases: Sequence[int] = (), slabs: Sequence[int] = ()) -> list[dict]:
    """The scan as acquired, then under each change (random ones seeded by the scan's name)."""
    from synthseg.evaluation.evaluate import evaluate_pair, onto_grid
    from synthseg.io.image import Image
    from synthseg.labels.mapping import load_mapping

    table = load_mapping(mapping)
    ref_on_scan = onto_grid(ref, scan)  # the reference on the scan's grid (the same grid for these data)
    rows = []
    seed = zlib.crc32(name.encode())
    for label, change in changes(scan.affine, factors, tilts, round_trip, cuts, noises, biases, seed, slabs):
        data, affine, labels, ref_affine = np.asarray(scan.data), scan.affine, ref_on_scan, scan.affine
        if change is not None:
            data, affine, labels, ref_affine = change(data, affine, labels)
        result = segmenter.segment(Image(data, affine))
        pred = Image(np.asarray(result.labels.dataobj), affine)  # onto the reference's grid by world position
        scored = evaluate_pair(pred, Image(labels, ref_affine), table, hd95=False)
        dice = {r["structure"]: r["dice"] for r in scored.rows}
        # a structure a slab leaves out of the reference and the labels alike has no Dice (NaN) and does not count
        row = {"scan": name, "change": label, "mean12": float(np.nanmean([dice[s] for s in BRAIN])), "dice": dice,
               "route": result.expert["contrast"] if result.expert else "general", "pose": result.pose,
               "seconds": result.timings["total_s"], "brain_confidence": result.brain_confidence,
               "confidence": {s: result.qc[s]["mean_confidence"] for s in BRAIN},
               "brain_at_edges": result.brain_at_edges}
        rows.append(row)
        print(f"  {name:<20} {label:<16} mean-12 {row['mean12']:.3f}  route {row['route']}  {describe_pose(result)}",
              flush=True)
    return rows


def summarise(rows: list[dict]) -> list[str]:
    """Mean-12 per change and data set, with its ratio to the same scans as acquired."""
    baseline = {r["scan"]: r["mean12"] for r in rows if r["change"] == "as acquired"}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault(("bert" if r["scan"] == "bert" else "ixi", r["change"]), []).append(r)
    lines = [f"{'data':<5} {'change':<16} {'n':>2} {'mean-12':>8} {'ratio':>6}  lowest structure"]
    for (group, label), members in groups.items():
        value = float(np.mean([m["mean12"] for m in members]))
        ratio = float(np.mean([m["mean12"] / baseline[m["scan"]] for m in members]))
        per_structure = {s: np.nanmean([m["dice"][s] for m in members]) for s in BRAIN
                         if (s != "CSF" or group != "bert") and not all(np.isnan(m["dice"][s]) for m in members)}
        low = min(per_structure, key=per_structure.get)
        lines.append(f"{group:<5} {label:<16} {len(members):>2} {value:>8.4f} {ratio:>6.3f}  {low} {per_structure[low]:.3f}")
    return lines


def confidence_lines(rows: list[dict]) -> list[str]:
    """How well the reported confidence tracks Dice across the IXI cases: per structure, and the scan's
    ``brain_confidence`` against its mean-12."""
    if len(rows) < 3:
        return []
    lines = ["confidence against Dice across the IXI cases (Pearson r): " + ", ".join(
        f"{s} {np.corrcoef([r['confidence'][s] for r in rows], [r['dice'][s] for r in rows])[0, 1]:+.2f}"
        for s in BRAIN)]
    confidence, dice = [r["brain_confidence"] for r in rows], [r["mean12"] for r in rows]
    lines.append(f"brain_confidence against mean-12: r = {np.corrcoef(confidence, dice)[0, 1]:+.2f} over {len(rows)} "
                 f"cases (confidence {min(confidence):.3f}-{max(confidence):.3f}, Dice {min(dice):.3f}-{max(dice):.3f})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--bert-factors", default="3,5,7", help="odd slab sizes for bert (1 mm voxels)")
    parser.add_argument("--ixi", type=int, default=21, help="how many IXI scans (sorted by name; 0: none)")
    parser.add_argument("--ixi-factors", default="3", help="odd slab sizes for IXI (2 mm voxels)")
    parser.add_argument("--tilts", default="15,30", help="head tilts in degrees, each about three axes ('' : none)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=False,
                        help="test-time augmentation as in `synthseg segment` (default here: one pass)")
    parser.add_argument("--pose", action=argparse.BooleanOptionalAction, default=True,
                        help="turned working grids for turned heads, as in `synthseg segment` (default: on)")
    parser.add_argument("--bias-correct", action=argparse.BooleanOptionalAction, default=False,
                        help="N4 bias-field correction first, as `synthseg segment --bias-correct` (default: off)")
    parser.add_argument("--round-trip", action="store_true",
                        help="also each tilt resampled back onto the scan's grid: its interpolation losses alone")
    parser.add_argument("--cuts", default="",
                        help="mm of brain cut from the field of view, at the top and at the bottom ('': none)")
    parser.add_argument("--slabs", default="",
                        help="mm of an axial and of a coronal slab kept, centred on the brain ('': none)")
    parser.add_argument("--noise", default="",
                        help="Rician noise, in percent of the scan's 99.5th percentile ('': none; training 0-6)")
    parser.add_argument("--bias", default="",
                        help="bias fields, log standard deviation x 100 ('': none; training 0-50)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    bert_factors, ixi_factors = numbers(args.bert_factors, odd=True), numbers(args.ixi_factors, odd=True)
    tilts, cuts, noises, biases = numbers(args.tilts), numbers(args.cuts), numbers(args.noise), numbers(args.bias)
    slabs = numbers(args.slabs)
    header("real scans acquired differently")
    from synthseg.inference.segmenter import Segmenter
    from synthseg.io.image import load_image

    bert_dir, ixi_dir = SHARED / "dev" / "freesurfer_bert", SHARED / "dev" / "ixi"
    if not bert_dir.is_dir():
        raise SystemExit(f"{bert_dir}: not found (the shared dev data are needed)")
    segmenter = Segmenter(args.model, device="cpu", tta=args.tta, amp=args.amp, pose=args.pose,
                          bias_correct=args.bias_correct)
    print(f"model {segmenter.card['name']}, tta {args.tta}, amp {args.amp}, pose {args.pose}, "
          f"bias correction {args.bias_correct}")
    start = time.perf_counter()
    rows = scan_rows(segmenter, "bert", load_image(bert_dir / "norm.mgz"),
                     load_image(bert_dir / "aseg.mgz", labels=True), "aseg", bert_factors, tilts, args.round_trip, cuts,
                     noises, biases, slabs)
    for scan in sorted((ixi_dir / "t1").glob("*.nii.gz"))[:args.ixi]:
        stem = scan.name.split(".nii")[0]
        ref = next((ixi_dir / "dlmuse").glob(f"{stem}*"))
        rows += scan_rows(segmenter, stem, load_image(scan), load_image(ref, labels=True), "muse", ixi_factors, tilts,
                          args.round_trip, cuts, noises, biases, slabs)
    print("\n".join(summarise(rows)))
    print("\n".join(confidence_lines([r for r in rows if r["scan"] != "bert"])))
    print(f"{len(rows)} segmentations in {time.perf_counter() - start:.0f} s")
    if args.json:
        report = {"command": "python " + " ".join(sys.argv), "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
