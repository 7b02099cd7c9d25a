"""Argument parsing for ``synthseg``. Nothing heavy is imported here, so ``--help`` is instant;
each sub-command's handler in :mod:`synthseg.cli.commands` imports what it needs."""

from __future__ import annotations

import argparse
import sys

from synthseg import __version__
from synthseg.errors import SynthSegError
from synthseg.synthesis.tissues import CONTRASTS

# commands that run torch on large volumes: they get glibc's memory reuse (synthseg.device.retain_freed_memory)
HEAVY_COMMANDS = ("segment", "train", "demo", "generate", "calibrate")


def whole_number(minimum: int):
    """An argparse type: an integer of at least ``minimum``, refused with a one-line usage error otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthseg", description="Contrast-agnostic whole-head segmentation into 16 structures "
        "(any MR contrast or CT, any orientation and resolution, no preprocessing).")
    parser.add_argument("--version", action="version", version=f"synthseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("segment", help="segment head scans (files, folders, list files, DICOM folders)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="a .nii/.nii.gz/.mgz/.mgh scan (or a NIfTI .hdr/.img "
                   "pair, gzipped or not), a folder of them, a folder holding one DICOM series, or a list file: .txt "
                   "with one path per line, or .csv (its first column, or the column a header row names path, image, "
                   "input, file, filename or scan); relative paths in a list are read from the list's folder")
    p.add_argument("-o", "--output", help="output folder (default: next to each input), or for one input the "
                   "label map's own .nii/.nii.gz path (other outputs beside it)")
    p.add_argument("--model", help="shipped model name or a folder with model.json (default: shipped default)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps (default: auto)")
    p.add_argument("--threads", type=whole_number(0), help="CPU threads (default or 0: torch's default)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                   help="test-time augmentation: left/right flip and a second working grid 10%% finer than the model's "
                        "(default: on, but one pass, with a warning, for a scan whose TTA would not fit in the "
                        "memory left; --no-tta: one pass per network, the fastest)")
    p.add_argument("--experts", action=argparse.BooleanOptionalAction, default=True,
                   help="second pass by the model's contrast expert for the scan, when it has one (default: on)")
    p.add_argument("--contrast", default="auto",
                   help="an MR scan's contrast, to segment it with that expert of the model (t1, t2, flair, pd for the "
                        "shipped one) instead of the one its contrast signature picks (default: auto)")
    p.add_argument("--cleanup", action=argparse.BooleanOptionalAction, default=True,
                   help="give stray islands of cortex, white matter, cerebellar cortex and deep nuclei the label "
                        "around them (default: on; posteriors are left as the network gave them)")
    p.add_argument("--pose", action=argparse.BooleanOptionalAction, default=True,
                   help="segment a head turned more than 12 degrees from the model's training pose again on a "
                        "working grid turned with it (default: on)")
    p.add_argument("--bias-correct", action=argparse.BooleanOptionalAction, default=False,
                   help="divide an MR scan by the smooth bias field N4 (SimpleITK) fits inside its brain (found by "
                        "a first pass) before segmenting it: for scans with a strong uncorrected field (surface "
                        "coils, 7 T); adds 4-10 s a scan (default: off)")
    p.add_argument("--voxel-size", type=float, metavar="MM",
                   help="write labels and posteriors on an isotropic grid of MM mm over the scan's field of view, "
                        "along its axes, e.g. 1 for the anatomy of a thick-slice scan at 1 mm (default: the scan's "
                        "own grid; volumes do not depend on it)")
    p.add_argument("--hemispheres", action="store_true",
                   help="also split the 12 brain structures' volumes into left and right by the mid-sagittal plane "
                        "(found for mirror symmetry; the volumes CSV gains <structure>_left/_right columns, _qc.json "
                        "the plane, and <stem>_hemi.nii.gz marks each brain voxel 1 left or 2 right); about 1 s a "
                        "scan, and the left/right mirrored pass even with --no-tta")
    p.add_argument("--modality", default="auto", choices=["auto", "mr", "ct"],
                   help="intensity handling: auto recognises CT from its Hounsfield range; ct also reads "
                        "HU + 1024 and Cormack units")
    # synthseg.device.AMP_MODES, spelled out here: importing it would load torch before --help
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"],
                   help="autocast: auto = bf16 on GPUs and on CPUs with native bf16, else fp32")
    p.add_argument("--volumes", metavar="CSV", help="write structure volumes (ml) of the whole batch to CSV")
    p.add_argument("--posteriors", action="store_true", help="also write class probabilities (_probseg)")
    p.add_argument("--qc", action="store_true", help="write per-structure confidence and volume flags (_qc.json)")
    p.add_argument("--png", action="store_true", help="write a 3-view montage with the label overlay")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--recursive", action="store_true", help="search input folders recursively")

    p = sub.add_parser("volumes", help="structure volumes of label maps already written (counted voxels; per side "
                                       "with their _hemi map), as segment --volumes writes them")
    p.add_argument("inputs", nargs="+", metavar="LABELS",
                   help="label maps, folders of *_dseg.nii.gz files, or .txt/.csv lists of label maps")
    p.add_argument("-o", "--output", help="CSV file to write (default: print the CSV)")
    p.add_argument("--recursive", action="store_true", help="look for label maps in sub-folders too")

    p = sub.add_parser("labels", help="print the 16 output structures (or a viewer LUT)")
    p.add_argument("--format", default="text", choices=["text", "json", "tsv", "fslut", "itksnap"])

    p = sub.add_parser("models", help="list the shipped models (reads model cards only)")

    p = sub.add_parser("demo", help="segment a synthetic head made from the built-in phantom (no data needed)")
    p.add_argument("-o", "--output", default="synthseg-demo", help="output folder (default: ./synthseg-demo)")
    p.add_argument("--model", help="model name or folder (default: shipped default)")
    p.add_argument("--contrast", default="t1", choices=["t1", "t2", "flair", "pd", "ct"])
    p.add_argument("--seed", type=whole_number(0), default=0, help="which phantom head and which appearance")
    p.add_argument("--device", default="auto")

    t = sub.add_parser("templates", help="import, list and inspect template label maps")
    tsub = t.add_subparsers(dest="templates_command", metavar="ACTION")
    p = tsub.add_parser("import", help="import label maps through a recipe (crop, dura synthesis, manifest)")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--recipe", required=True, help="shipped recipe name (aseg-charm, siam16) or a YAML file")
    p.add_argument("-o", "--output", required=True, help="template folder to write")
    p.add_argument("--spacing", type=float, help="resample to this voxel size (mm, nearest neighbour)")
    p.add_argument("--dura-thickness", type=float, default=1.0, help="mm, for synthesised dura (default 1)")
    p.add_argument("--margin", type=float, default=4.0, help="mm kept around the head when cropping")
    p.add_argument("--unknown", default="error", choices=["error", "background"],
                   help="codes missing from the recipe: refuse (default) or map to background")
    p = tsub.add_parser("list", help="list the templates of a folder with their volumes")
    p.add_argument("folder")
    p = tsub.add_parser("show", help="targets and volumes of one template, optionally a PNG montage")
    p.add_argument("template", help="template .nii.gz inside a template folder")
    p.add_argument("--png", help="write a 3-view montage here")
    p = tsub.add_parser("recipes", help="list the shipped recipes")

    p = sub.add_parser("generate", help="write synthetic image/label pairs and a PNG montage")
    p.add_argument("--templates", required=True, help="template folder, or 'phantom'")
    p.add_argument("-n", type=whole_number(1), default=8, help="number of samples")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--mode", default="mixed", choices=["mixed", "mr", "ct", "t1", "t2", "flair", "pd"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="training YAML whose generator section to use")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. generator.spacing=1")
    p.add_argument("--device", default="auto")
    p.add_argument("--params", action="store_true", help="also write each sample's parameters as JSON")

    p = sub.add_parser("train", help="train a model on an endless synthetic stream")
    p.add_argument("--templates", help="template folder (overrides data.templates), or 'phantom'")
    p.add_argument("--config", help="YAML config (default: the shipped default.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--resume", nargs="?", const="latest", help="resume from the latest checkpoint or CKPT")
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints, logs)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    p = sub.add_parser("export", help="export a checkpoint as model weights + model card")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="model folder, e.g. models/NAME")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    p.add_argument("--evaluation", help="JSON file of evaluation results to embed in the card")
    p.add_argument("--notes", default="", help="free text for the model card")
    p.add_argument("--expert", choices=CONTRASTS,
                   help="add the checkpoint to the model folder -o as its expert for this contrast")
    p.add_argument("--fine", action="store_true",
                   help="with --expert: add the checkpoint, trained on a working grid finer than the model's, as that "
                        "expert's fine grid (in the test-time augmentation of fine scans)")

    p = sub.add_parser("average", help="average the weights of training checkpoints of one network (e.g. runs "
                       "continued side by side from one start) into one checkpoint to export")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT")
    p.add_argument("-o", "--output", required=True, help="the averaged checkpoint (.pt)")

    p = sub.add_parser("calibrate", help="fit how a model folder routes MR scans among its contrast experts "
                       "(again after exporting a new general network) and store its templates' head pose")
    p.add_argument("model", help="model folder with model.json and at least two MR experts")
    p.add_argument("--draws", type=whole_number(1), default=1,
                   help="renders of each training template per expert contrast and slice regime (default: 1)")
    p.add_argument("--templates", help="template folder the model was trained on (default: data.templates of its "
                   "card), or 'phantom'")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps (default: auto)")
    p.add_argument("--threads", type=whole_number(0), help="CPU threads (default or 0: torch's default)")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"],
                   help="autocast of the general network's passes, as in segment (default: auto)")
    p.add_argument("--pose-only", action="store_true",
                   help="only store the training templates' reference head pose (seconds; routing kept)")

    p = sub.add_parser("evaluate", help="Dice, HD95 and volume differences against reference labels")
    p.add_argument("predictions", nargs="+", metavar="PRED")
    p.add_argument("--reference", nargs="+", metavar="REF", help="reference label maps")
    p.add_argument("--mapping", default="siam", help="reference codes: siam | aseg | muse | FILE (default: siam)")
    p.add_argument("--csv", help="write one row per case and structure")
    p.add_argument("--consistency", action="store_true",
                   help="pairwise Dice between the given segmentations of one subject (no reference)")
    p.add_argument("--no-hd95", action="store_true", help="skip the (slower) Hausdorff distance")
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # non-ASCII paths must never crash an ASCII terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "templates" and args.templates_command is None:
        parser.parse_args(["templates", "--help"])
    from synthseg.cli import commands  # heavy imports start here, after parsing

    if args.command in HEAVY_COMMANDS:
        from synthseg.device import retain_freed_memory

        retain_freed_memory()

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return int(handler(args) or 0)
    except SynthSegError as error:
        print(f"synthseg {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"synthseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
