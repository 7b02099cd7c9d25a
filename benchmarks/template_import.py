"""Importing one 256³ shared label map (crop, dura synthesis, manifest): time and peak RSS in a
fresh process; then the volume table of an imported template folder.

    python benchmarks/template_import.py [--folder work/templates/aseg-charm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import SHARED, header

CHILD = """
import json, sys, time, resource
from pathlib import Path
t = time.perf_counter()
from synthseg.templates.library import import_template
from synthseg.templates.recipe import load_recipe
m = import_template(Path(sys.argv[1]), load_recipe("aseg-charm"), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", default="work/templates/aseg-charm")
    args = parser.parse_args()
    header("template import")
    source = SHARED / "templates" / "synthseg" / "training_seg_01.nii.gz"
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, str(source), tmp], capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"import of one 256³ map: {r['seconds']:.1f} s (target <= 20 s), peak RSS {r['peak_rss_gb']:.2f} GB "
          "(target <= 2 GB)")
    folder = Path(args.folder)
    if folder.is_dir():
        from synthseg.labels.protocol import STRUCTURES

        print("\n| template | " + " | ".join(s.short for s in STRUCTURES[1:]) + " | brain |")
        print("|---" * 18 + "|")
        for manifest in sorted(folder.glob("*.json")):
            m = json.loads(manifest.read_text(encoding="utf-8"))
            vols = " | ".join(f"{m['volumes_ml'][str(i)]:.1f}" for i in range(1, 17))
            print(f"| {m['name']} | {vols} | {m['brain_volume_ml']:.0f} |")


if __name__ == "__main__":
    main()
