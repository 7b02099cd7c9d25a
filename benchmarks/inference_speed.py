"""Inference time and peak RSS per input size: a 1 mm 256³ whole head, a 0.7 mm whole head and a
thick-slice (1×1×5 mm) head, each in a fresh process so the RSS is its own. Inputs are made from
``../shared/data/dev/wholehead/chris_t1.nii.gz`` (a real whole-head T1). Each child runs as the
library does by default (test-time augmentation on); the 1 mm case runs once more with freed memory
retained, as `synthseg segment` runs (``synthseg.device.retain_freed_memory``), once in one pass
(``tta=False``, `--no-tta`), once with N4 first (``bias_correct=True``, `--bias-correct`) and once writing
the class probabilities too (``posteriors=True``, `--posteriors`), and the ratios to the default run are printed.

    python benchmarks/inference_speed.py [--model NAME] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import SHARED, header

CHILD = """
import json, sys, time, resource
t = time.perf_counter()
if sys.argv[4] == "retain":
    from synthseg.device import retain_freed_memory
    retain_freed_memory()
from synthseg.inference.segmenter import Segmenter
seg = Segmenter(sys.argv[2] or None, device=sys.argv[3], tta=sys.argv[4] != "one-pass",
                bias_correct=sys.argv[4] == "bias-correct")
load = time.perf_counter() - t
result = seg.segment(sys.argv[1], posteriors=sys.argv[4] == "posteriors")
print(json.dumps({"wall_s": time.perf_counter() - t, "model_load_s": load, **result.timings,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}))
"""


def make_inputs(folder: Path) -> dict[str, Path]:
    from synthseg.io.geometry import resample_to_grid
    from synthseg.io.image import Image, save_image, load_image

    source = load_image(SHARED / "dev" / "wholehead" / "chris_t1.nii.gz")
    data = np.asarray(source.data, np.float32)
    centre = source.affine @ np.append((np.asarray(source.shape) - 1) / 2, 1)
    inputs = {}
    for name, shape, spacing in [("1mm_256cube", (256, 256, 256), (1.0, 1.0, 1.0)),
                                 ("0.7mm_whole_head", (240, 330, 270), (0.7, 0.7, 0.7)),
                                 ("thick_1x1x5mm", (180, 240, 40), (1.0, 1.0, 5.0))]:
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = centre[:3] - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
        resampled = resample_to_grid(data, source.affine, shape, affine, order=1)
        inputs[name] = save_image(Image(resampled.astype(np.float32), affine), folder / f"{name}.nii.gz")
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    header("inference time and memory per input size")
    import nibabel as nib

    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp))
        runs = [(name, path, "default") for name, path in inputs.items()]
        runs += [("1mm_256cube", inputs["1mm_256cube"], mode) for mode in ("retain", "one-pass", "bias-correct",
                                                                                  "posteriors")]
        walls = {}
        for name, path, mode in runs:
            shape = nib.load(str(path)).shape
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), args.model, args.device, mode],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{name}: failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            walls[(name, mode)] = r["wall_s"]
            label = name if mode == "default" else f"{name}, {mode}"
            print(f"{label:<28} {str(shape):<16} {np.prod(shape) / 1e6:5.1f} M voxels: wall {r['wall_s']:5.1f} s "
                  f"(load model {r['model_load_s']:.1f}, preprocess {r['preprocess_s']:.1f}, network "
                  f"{r['inference_s']:.1f}, resample back {r['resample_s']:.1f}, island clean-up "
                  f"{r.get('cleanup_s', 0.0):.1f}), peak RSS {r['peak_rss_gb']:.2f} GB")
        for mode, meaning in (("retain", "with freed memory retained"), ("one-pass", "in one pass (--no-tta)"),
                              ("bias-correct", "with N4 first (--bias-correct)"),
                              ("posteriors", "with class probabilities (--posteriors)")):
            if ("1mm_256cube", mode) in walls and ("1mm_256cube", "default") in walls:
                print(f"1 mm 256³ {meaning}: wall-time ratio to the default "
                      f"{walls[('1mm_256cube', mode)] / walls[('1mm_256cube', 'default')]:.2f}")
    print("targets: 1 mm 256³ <= 30 s wall and <= 4 GB peak RSS on 2 CPU cores")


if __name__ == "__main__":
    main()
