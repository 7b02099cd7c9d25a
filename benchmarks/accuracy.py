"""Accuracy of a model (default: the shipped one) — the five measurements of the model card:

1. synthetic held-out: the held-out templates rendered as T1/T2/FLAIR/PD/CT at 1 mm and with
   thick slices (6 mm along one axis, sampled on that thick grid), Dice per structure;
2. real T1: the 21 IXI scans against their MUSE labels, Dice per brain structure;
3. contrast invariance: Dice between the T1, T2 and FLAIR results of one stroke patient;
4. FreeSurfer "bert": norm.mgz against aseg.mgz;
5. a PNG of the whole-head T1 ``chris_t1`` with the label overlay.

    python benchmarks/accuracy.py [--model NAME] [--templates work/templates/aseg-charm] [--json OUT] [--no-tta]
                                  [--draws usual,v1,v2]
                                  [--skip-synthetic | --skip-real | --agreement-only] [--amp auto|off|bf16|fp16]

The JSON holds every case; its ``"card"`` entry is the summary stored as ``evaluation`` in a model's
``model.json``, and the last line printed gives the four numbers the ship rule compares.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from _common import SHARED, header
from synthseg.device import AMP_MODES

BRAIN = ["GM", "WM", "CSF", "CSFv", "cerGM", "Thal", "Pal", "Put", "Caud", "Accu", "Amyg", "Hippo"]


def mean(values) -> float:
    values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


USUAL_DRAW = "usual"  # the seeds the card's history was measured on


def heldout_renders(folder: Path, names: list[str], contrasts=("t1", "t2", "flair", "pd", "ct"),
                    draw: str = USUAL_DRAW):
    """The held-out templates rendered in each contrast at 1 mm and with 6 mm thick slices, each case
    from a seed fixed by its name (and by ``draw``: any other name gives other seeds for the same cases):
    yields ``(case, image, target, modality)`` with the image an :class:`Image`."""
    from synthseg.synthesis.scans import render_scan
    from synthseg.templates.library import load_templates

    templates, recipe = load_templates(folder, names=names)
    for template in templates:
        for contrast in contrasts:
            for regime in ("1mm", "thick6mm"):
                # a seed fixed per case (Python's str hash() changes from process to process)
                case = f"{template.name}/{contrast}/{regime}" + (f"/{draw}" if draw != USUAL_DRAW else "")
                image, target = render_scan(template, recipe, contrast, zlib.crc32(case.encode()) % 10_000,
                                            thick_mm=6.0 if regime != "1mm" else None)
                yield case, image, target, "ct" if contrast == "ct" else "auto"


def structure_dice(labels: np.ndarray, target: np.ndarray) -> dict[str, float]:
    from synthseg.evaluation.metrics import dice
    from synthseg.labels.protocol import STRUCTURES

    return {s.short: dice(labels, target, s.id) for s in STRUCTURES[1:]}


def synthetic_heldout(segmenter, folder: Path, names: list[str], draws: list[str]) -> dict:
    results = {}
    for draw in draws:
        for case, image, target, modality in heldout_renders(folder, names, draw=draw):
            segmenter.modality = modality
            result = segmenter.segment(image)
            scores = structure_dice(np.asarray(result.labels.dataobj), target)
            results[case] = scores
            name, contrast, regime = case.split("/")[:3]
            print(f"  {name} {contrast:<5} {regime:<8} {draw:<6} mean Dice {mean(scores.values()):.3f} "
                  f"(no dura {mean(v for k, v in scores.items() if k != 'Dura'):.3f}) {describe_route(result)}",
                  flush=True)
    segmenter.modality = "auto"
    return results


def structure_means(cases) -> dict[str, float]:
    """Mean Dice per structure over cases (a structure absent from a case does not count there)."""
    cases = list(cases)
    return {s: mean(r[s] for r in cases) for s in cases[0]}


def no_dura(per_structure: dict[str, float]) -> float:
    """The synthetic figure of the card: the mean over all structures but dura."""
    return mean(v for k, v in per_structure.items() if k != "Dura")


def draw_of(case: str) -> str:
    """The draw a held-out case was rendered from."""
    parts = case.split("/")
    return parts[3] if len(parts) > 3 else USUAL_DRAW


def describe_route(result) -> str:
    """Which network gave the labels: the general model or a contrast expert (with its correlation), and the
    head's pose read (turned: segmented on turned working grids)."""
    route = f"expert {result.expert['contrast']} (r {result.expert['correlation']:.2f})" if result.expert else "general"
    return f"{route}, {describe_pose(result)}" if result.pose else route


def describe_pose(result) -> str:
    """The head's pose read, and whether the scan was segmented on turned working grids ('' : not read)."""
    return f"pose {result.pose['degrees']:.1f} deg{' turned' if result.pose['turned'] else ''}" if result.pose else ""


def real_t1(segmenter, tmp: Path) -> tuple[dict, dict]:
    """Dice per case and structure, and each structure's total predicted / reference volume over the
    21 scans (a ratio far from 1 is a systematic bias, or a labelling convention unlike the templates')."""
    from synthseg.evaluation.evaluate import evaluate_files

    images = sorted((SHARED / "dev" / "ixi" / "t1").glob("*.nii.gz"))
    refs = sorted((SHARED / "dev" / "ixi" / "dlmuse").glob("*.nii.gz"))
    results = [segmenter.segment(p) for p in images]
    passes = collections.Counter(f"expert {r.expert['contrast']}" if r.expert else "general" for r in results)
    print(f"  {', '.join(f'{name}: {n}' for name, n in passes.items())}", flush=True)
    poses = [r.pose for r in results if r.pose]
    if poses:
        print(f"  pose read {min(p['degrees'] for p in poses):.1f}-{max(p['degrees'] for p in poses):.1f} deg, "
              f"{sum(p['turned'] for p in poses)} turned", flush=True)
    preds = [r.save(tmp / "ixi")["labels"] for r in results]
    rows = [r for case in evaluate_files(preds, refs, "muse", hd95=False) for r in case.rows]
    per_case, volumes = {}, collections.defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        per_case.setdefault(r["case"], {})[r["structure"]] = r["dice"]
        volumes[r["structure"]][0] += r["vol_pred_ml"]
        volumes[r["structure"]][1] += r["vol_ref_ml"]
    return per_case, {s: round(pred / ref, 3) for s, (pred, ref) in volumes.items() if ref > 0}


STROKE = SHARED / "dev" / "multicontrast_stroke"
STROKE_CONTRASTS = ("T1", "T2", "FLAIR")


def contrast_consistency(segmenter, tmp: Path) -> dict:
    paths = []
    for contrast in STROKE_CONTRASTS:
        result = segmenter.segment(STROKE / f"stroke_{contrast}.nii.gz")
        print(f"  stroke {contrast}: {describe_route(result)}", flush=True)
        paths.append(result.save(tmp / "stroke")["labels"])
    return pair_dice(paths)


def pair_dice(paths: list[Path]) -> dict:
    """Dice per structure between each pair of the stroke labels (saved as ``stroke_<contrast>...``)."""
    from synthseg.evaluation.evaluate import consistency

    rows = consistency(paths)
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(f"{r['a'].split('_')[1]}-{r['b'].split('_')[1]}", {})[r["structure"]] = r["dice"]
    return out


def brain_means(pairs: dict) -> dict[str, float]:
    """Each pair's mean Dice over the brain structures: measurement 3 is their mean."""
    return {p: mean(v[s] for s in BRAIN if s in v) for p, v in pairs.items()}


def bert(segmenter, tmp: Path) -> dict:
    result = segmenter.segment(SHARED / "dev" / "freesurfer_bert" / "norm.mgz")
    print(f"  bert: {describe_route(result)}", flush=True)
    return bert_scores(result, tmp)


def bert_scores(result, tmp: Path) -> dict:
    """Dice per structure of a segmentation of bert's norm.mgz against its aseg (saved under ``tmp`` to be read)."""
    from synthseg.evaluation.evaluate import evaluate_files

    pred = result.save(tmp / "bert")["labels"]
    rows = evaluate_files([pred], [SHARED / "dev" / "freesurfer_bert" / "aseg.mgz"], "aseg", hd95=False)[0].rows
    return {r["structure"]: r["dice"] for r in rows}


def card_summary(report: dict, command: str) -> dict:
    """The report without its per-case rows: what a model card stores as ``evaluation``."""
    summary = {"date": report["date"], "command": command}
    if "synthetic_heldout" in report:
        synth = report["synthetic_heldout"]
        summary["synthetic_heldout"] = {k: synth[k] for k in ("per_structure", "mean_no_dura", "mean_no_dura_per_draw")}
        summary["synthetic_heldout_per_case_mean"] = {case: round(mean(dice.values()), 4)
                                                      for case, dice in synth["cases"].items()}
    if "real_t1_ixi" in report:
        summary["real_t1_ixi"] = {k: report["real_t1_ixi"][k] for k in ("per_structure", "mean_12", "min_structure",
                                                                         "volume_ratio")}
        summary["freesurfer_bert"] = report["bert"]
        summary["freesurfer_bert_mean_12"] = mean(report["bert"][s] for s in BRAIN)
    if "contrast_consistency" in report:
        summary["contrast_consistency"] = {k: report["contrast_consistency"][k] for k in ("pairs_mean_brain", "mean")}
    return summary


def ship_figures(summary: dict) -> dict[str, float]:
    """The four numbers the ship rule compares, those ``summary`` (a card summary) holds, by name."""
    figures = {}
    if "synthetic_heldout" in summary:
        figures["synthetic"] = summary["synthetic_heldout"]["mean_no_dura"]
    if "real_t1_ixi" in summary:
        figures["IXI"] = summary["real_t1_ixi"]["mean_12"]
    if "contrast_consistency" in summary:
        figures["agreement"] = summary["contrast_consistency"]["mean"]
    if "freesurfer_bert_mean_12" in summary:
        figures["bert"] = summary["freesurfer_bert_mean_12"]
    return figures


def headline(summary: dict) -> str:
    """The four numbers the ship rule compares (those measured), on one line."""
    parts = []
    for name, value in ship_figures(summary).items():
        parts.append(f"{name} {value:.5f}" if name == "agreement" else f"{name} {value:.4f}")
        if name == "IXI":
            parts[-1] += f" (lowest {summary['real_t1_ixi']['min_structure']:.3f})"
    return " | ".join(parts) or "nothing measured"


def wholehead_png(segmenter, png: Path) -> Path:
    import nibabel as nib

    from synthseg.viz import montage, save_png

    source = SHARED / "dev" / "wholehead" / "chris_t1.nii.gz"
    result = segmenter.segment(source)
    image = np.asarray(nib.as_closest_canonical(nib.load(str(source))).dataobj, np.float32)
    labels = np.asarray(nib.as_closest_canonical(result.labels).dataobj)
    return save_png([montage(image), montage(image, labels)], png)


def synthetic_measurement(segmenter, templates: Path, draws: list[str], report: dict) -> None:
    """Measurement 1 (the held-out templates rendered in every contrast) added to ``report``."""
    holdout = segmenter.card.get("holdout_templates")
    if not holdout:
        print("1. synthetic held-out: skipped, the model's card names no template held out of its training")
        return
    print("1. synthetic held-out templates", holdout)
    synth = synthetic_heldout(segmenter, templates, holdout, draws)
    per_structure = structure_means(synth.values())
    per_draw = {d: no_dura(structure_means(r for case, r in synth.items() if draw_of(case) == d)) for d in draws}
    report["synthetic_heldout"] = {"per_structure": per_structure, "mean_no_dura": no_dura(per_structure),
                                   "mean_no_dura_per_draw": per_draw, "cases": synth}
    print(f"   mean Dice over all structures but dura: {report['synthetic_heldout']['mean_no_dura']:.3f} "
          f"({', '.join(f'{d} {v:.4f}' for d, v in per_draw.items())})")


def agreement(segmenter, tmp: Path, report: dict) -> None:
    """Measurement 3 (stroke T1/T2/FLAIR agreement) added to ``report``."""
    print("3. contrast consistency (stroke T1/T2/FLAIR)")
    pairs = contrast_consistency(segmenter, tmp)
    brain_pairs = brain_means(pairs)
    report["contrast_consistency"] = {"pairs_mean_brain": brain_pairs, "mean": mean(brain_pairs.values()),
                                      "per_pair": pairs}
    print("   " + ", ".join(f"{k} {v:.5f}" for k, v in brain_pairs.items()))


def real_measurements(segmenter, tmp: Path, report: dict) -> None:
    """Measurements 2-4 (IXI, stroke agreement, bert) added to ``report``."""
    print("2. real T1 (IXI, 21 scans, MUSE references)")
    cases, volume_ratio = real_t1(segmenter, tmp)
    per_structure = {s: mean(c[s] for c in cases.values()) for s in BRAIN}
    report["real_t1_ixi"] = {"per_structure": per_structure, "mean_12": mean(per_structure.values()),
                             "min_structure": min(per_structure.values()), "volume_ratio": volume_ratio,
                             "cases": cases}
    print("   " + ", ".join(f"{k} {v:.3f}" for k, v in per_structure.items()))
    print("   volume predicted / reference: " + ", ".join(f"{k} {v:.2f}" for k, v in volume_ratio.items()))
    print(f"   mean over the 12 brain structures {report['real_t1_ixi']['mean_12']:.3f}")
    agreement(segmenter, tmp, report)
    print("4. FreeSurfer bert (norm.mgz vs aseg)")
    report["bert"] = bert(segmenter, tmp)
    print("   " + ", ".join(f"{k} {v:.3f}" for k, v in report["bert"].items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--templates", default="work/templates/aseg-charm")
    parser.add_argument("--json", default=None)
    parser.add_argument("--png", default=None)
    parser.add_argument("--draws", default=USUAL_DRAW,
                        help="comma-separated draws of the held-out renders: 'usual' (the seeds the card's history "
                             "was measured on) and any other names for other seeds, e.g. usual,v1,v2")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--skip-synthetic", action="store_true", help="measurements 2-4 only")
    only.add_argument("--skip-real", action="store_true", help="synthetic held-out only (measurements 2-4 off)")
    only.add_argument("--agreement-only", action="store_true",
                      help="measurement 3 alone (stroke T1/T2/FLAIR agreement): what a T2 or FLAIR expert can change "
                           "on real scans")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                        help="test-time augmentation: mirror and a second, finer working grid "
                             "(default: on, like `synthseg segment`)")
    parser.add_argument("--experts", action=argparse.BooleanOptionalAction, default=True,
                        help="second pass by the model's contrast experts (default: on, like `synthseg segment`)")
    parser.add_argument("--cleanup", action=argparse.BooleanOptionalAction, default=True,
                        help="stray islands take the label around them (default: on, like `synthseg segment`)")
    parser.add_argument("--bias-correct", action=argparse.BooleanOptionalAction, default=False,
                        help="N4 bias-field correction of MR scans first (default: off, like `synthseg segment`)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES,
                        help="inference precision as in `synthseg segment` (auto: bf16 on CPUs with native bf16); "
                             "compare models at the same setting")
    args = parser.parse_args()
    header("accuracy")
    from synthseg.inference.segmenter import Segmenter

    segmenter = Segmenter(args.model, device="cpu", tta=args.tta, experts=args.experts, amp=args.amp,
                          cleanup=args.cleanup, bias_correct=args.bias_correct)
    card = segmenter.card
    print(f"model {card['name']} ({card['training']['steps']} steps, sha256 {card['sha256'][:12]}…)")
    report: dict = {"model": card["name"], "sha256": card["sha256"], "date": time.strftime("%Y-%m-%d"),
                    "tta": args.tta, "amp": args.amp, "cleanup": args.cleanup,
                    "bias_correct": args.bias_correct}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.agreement_only:
            agreement(segmenter, tmp, report)
        else:
            if not args.skip_synthetic:
                synthetic_measurement(segmenter, Path(args.templates), args.draws.split(","), report)
            if not args.skip_real:
                real_measurements(segmenter, tmp, report)
    if args.png:
        print(f"5. whole-head PNG: {wholehead_png(segmenter, Path(args.png))}")
    report["card"] = card_summary(report, "python benchmarks/accuracy.py " + " ".join(sys.argv[1:]))
    print(headline(report["card"]))  # bert here: the mean over the 12 brain structures
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
