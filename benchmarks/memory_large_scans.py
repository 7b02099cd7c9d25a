"""Peak memory of `synthseg segment` on one head made large in both ways a scan can be: finer voxels and a larger
field of view of zeros (more scan voxels), and tissue tiled over a larger field of view (a larger head crop) —
against `synthseg.inference.memory.memory_needed`'s estimate, and as ratios to the head at 1 mm.

    python benchmarks/memory_large_scans.py [--scan ../shared/data/dev/ixi/t1/IXI012-HH-1211_T1.nii.gz]
        [--options "" --no-tta --posteriors]

Each segmentation runs in its own `synthseg segment` process (the shipped model) whose peak resident memory is read
from the kernel (wait4); the estimate is `memory_needed` (which counts the network's workspace) on top of that
process's peak on a 16³ scan less the workspace (the model loaded, nothing to speak of segmented). The inputs are made, and their head crops measured, in a child process too: a child's peak counts the
memory of the process it was forked from, so this one stays small (no volumes, no network).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED, header

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCAN = SHARED / "dev" / "ixi" / "t1" / "IXI012-HH-1211_T1.nii.gz"


def make_inputs(scan: Path, folder: Path) -> None:
    """Write the inputs into ``folder`` with ``inputs.json``: per input its path, scan voxels and head crop voxels on
    the 1.8 and the 2 mm working grid. The head at 1 mm (the reference), at 0.7 mm, at 1 mm inside a 400 mm cube of
    zeros, tiled to fill a 300 and a 400 mm cube at 2 mm; and a 16³ scan of noise for the loaded model alone."""
    import nibabel as nib
    import numpy as np
    from scipy.ndimage import zoom

    source = nib.load(str(scan))
    data = np.asarray(source.dataobj, np.float32)
    spacing = float(np.mean(source.header.get_zooms()[:3]))
    one_mm = zoom(data, spacing, order=1)
    padded = np.zeros((400, 400, 400), np.float32)
    corner = [(400 - n) // 2 for n in one_mm.shape]
    padded[tuple(slice(c, c + n) for c, n in zip(corner, one_mm.shape))] = one_mm
    two_mm = zoom(data, spacing / 2, order=1)
    made = {"model only": (np.random.default_rng(0).random((16, 16, 16), dtype=np.float32), 1.0),
            "head 1 mm": (one_mm, 1.0), "head 0.7 mm": (zoom(one_mm, 1 / 0.7, order=1), 0.7),
            "head in a 400 mm cube": (padded, 1.0)}
    for mm in (300, 400):
        n = mm // 2
        reps = [int(np.ceil(n / s)) for s in two_mm.shape]
        made[f"tissue over {mm} mm"] = (np.tile(two_mm, reps)[:n, :n, :n], 2.0)
    inputs = {}
    for name, (array, voxel) in made.items():
        affine = np.diag([voxel, voxel, voxel, 1.0])
        affine[:3, 3] = -np.array(array.shape) * voxel / 2
        path = folder / (name.replace(" ", "_") + ".nii")
        nib.save(nib.Nifti1Image(array, affine), str(path))
        inputs[name] = {"path": str(path), "scan": int(array.size), "crops": head_crops(path)}
    (folder / "inputs.json").write_text(json.dumps(inputs), encoding="utf-8")


def head_crops(path: Path) -> dict[str, int]:
    """The head crop's voxels on the 1.8 mm (finest, with TTA) and the 2 mm working grid."""
    from synthseg.inference.segmenter import Segmenter
    from synthseg.io.geometry import to_canonical
    from synthseg.io.image import load_image

    image = load_image(path)
    data, modality, _ = Segmenter._values(image, "auto")
    canonical = to_canonical(image.with_data(data))
    return {"tta": int(Segmenter._prepare(Segmenter._antialiased(canonical, 1.8), modality, 1.8)[0].size),
            "one": int(Segmenter._prepare(Segmenter._antialiased(canonical, 2.0), modality, 2.0)[0].size)}


def peak(path: str, options: list[str], out: Path) -> tuple[float, float, int]:
    """Peak resident bytes, wall seconds and exit code of one `synthseg segment` process (into a fresh ``out``)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "segment", path, "-o", str(out), *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    return usage.ru_maxrss * 1024.0, time.perf_counter() - start, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scan", type=Path, default=DEFAULT_SCAN)
    parser.add_argument("--options", nargs="*", default=["", "--no-tta"],
                        help="option sets to measure ('' = the defaults)")
    parser.add_argument("--make-inputs", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.make_inputs:
        make_inputs(args.scan, args.make_inputs)
        return
    header("peak memory of large scans")
    from synthseg.inference.memory import WORKSPACE_BYTES, memory_needed

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--scan", str(args.scan), "--make-inputs", tmp], check=True)
        inputs = json.loads((Path(tmp) / "inputs.json").read_text(encoding="utf-8"))
        model_only = inputs.pop("model only")
        for option in args.options:
            flags = option.split()
            tta, posteriors = "--no-tta" not in flags, "--posteriors" in flags
            base = peak(model_only["path"], flags, Path(tmp) / "out")[0]
            print(f"\noptions: {option or '(defaults)'}; the model alone {base / 1e9:.2f} GB")
            print(f"{'input':<24} {'scan M':>7} {'crop M':>7} {'peak GB':>8} {'estimate':>9} {'ratio':>6} {'wall s':>7}")
            reference = None
            for name, entry in inputs.items():
                crop = entry["crops"]["tta" if tta else "one"]
                rss, wall, code = peak(entry["path"], flags, Path(tmp) / "out")
                estimate = base - WORKSPACE_BYTES + memory_needed(entry["scan"], crop, tta, posteriors)
                reference = reference or rss
                print(f"{name:<24} {entry['scan'] / 1e6:>7.1f} {crop / 1e6:>7.2f} {rss / 1e9:>8.2f} "
                      f"{estimate / 1e9:>9.2f} {rss / reference:>6.2f} {wall:>7.1f}" + (f"  exit {code}" if code else ""),
                      flush=True)


if __name__ == "__main__":
    main()
