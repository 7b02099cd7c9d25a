"""What contrast-expert routing costs: every MR network of a model on the held-out MR renders of
``accuracy.py``, against the network the routing rule picks, and each dev scan's route.

For each render it prints the mean Dice (all structures but dura, one pass, no TTA) of the general model
and of every MR expert, and the one routing chose; then the means of four policies: routing, each render
to its own contrast's expert, the best network per render (the ceiling), the general model alone.
``--json`` keeps each render's signature, so other rules can be scored without segmenting again;
``--draws v1,v2`` renders the same cases again from other seeds (``--skip-dev``: renders only).

    python benchmarks/routing.py [--model NAME] [--templates work/templates/aseg-charm] [--draws v1,v2]
                                 [--skip-dev] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import SHARED, header
from accuracy import USUAL_DRAW, describe_route, heldout_renders, mean, structure_dice

DEV_SCANS = [*sorted((SHARED / "dev" / "ixi" / "t1").glob("*.nii.gz")),
             *(SHARED / "dev" / "multicontrast_stroke" / f"stroke_{c}.nii.gz" for c in ("T1", "T2", "FLAIR")),
             SHARED / "dev" / "freesurfer_bert" / "norm.mgz", SHARED / "dev" / "wholehead" / "chris_t1.nii.gz"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--templates", default="work/templates/aseg-charm")
    parser.add_argument("--draws", default=USUAL_DRAW,
                        help="comma-separated draws of the held-out renders, as in accuracy.py (default: usual)")
    parser.add_argument("--skip-dev", action="store_true", help="no dev scan routes")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    header("routing")
    from synthseg.inference.segmenter import Segmenter

    segmenter = Segmenter(args.model, device="cpu", tta=False)
    networks = {"general": segmenter.loaded.network,
                **{e.contrast: e.network for e in segmenter.loaded.experts if e.signature is not None}}
    single = {name: Segmenter.from_network(net, segmenter.card) for name, net in networks.items()}
    renders: dict[str, dict] = {}
    print(f"{'render':<35}" + "".join(f"{n:>9}" for n in networks) + "   routed to")
    for draw in args.draws.split(","):
        for case, image, target, _ in heldout_renders(Path(args.templates), segmenter.card["holdout_templates"],
                                                      contrasts=("t1", "t2", "flair", "pd"), draw=draw):
            routed = segmenter.segment(image)  # its labels are those of the chosen network alone
            route = routed.expert["contrast"] if routed.expert else "general"
            scores = {}
            for name, one in single.items():
                labels = np.asarray((routed if name == route else one.segment(image)).labels.dataobj)
                scores[name] = mean(v for k, v in structure_dice(labels, target).items() if k != "Dura")
            renders[case] = {**scores, "route": route, "signature": routed.signature,
                             "correlation": routed.expert["correlation"] if routed.expert else None}
            print(f"{case:<35}" + "".join(f"{scores[n]:9.3f}" for n in networks) + f"   {describe_route(routed)}",
                  flush=True)
    policies = {"routing": mean(c[c["route"]] for c in renders.values()),
                "own contrast": mean(c[k.split("/")[1]] for k, c in renders.items()),
                "best per render": mean(max(c[n] for n in networks) for c in renders.values()),
                "general only": mean(c["general"] for c in renders.values())}
    print(f"mean Dice over {len(renders)} renders, all but dura: " + ", ".join(f"{k} {v:.4f}" for k, v in policies.items()))
    routes = {}
    for path in [] if args.skip_dev else DEV_SCANS:
        result = segmenter.segment(path)
        routes[path.name] = {"expert": result.expert, "signature": result.signature}
        print(f"  {path.name}: {describe_route(result)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"renders": renders, "policies": policies, "dev_routes": routes},
                                              indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
