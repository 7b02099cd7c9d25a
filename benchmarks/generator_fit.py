"""How well does a model fit the generator's own distribution? Dice of a model on fresh samples from
the *training* templates of a config, per sample, then grouped by what was drawn (contrast family,
resolution, partial volume), plus a clean group: noise-, bias- and blur-free T1 renders.

A model that scores low on clean renders of its training templates is limited by fitting (steps,
distribution breadth, capacity), not by a domain gap; one whose clean score is high but whose
blurred/random-contrast groups are low is limited by those draws.

    python benchmarks/generator_fit.py [--model NAME] [--config configs/shipped-2mm.yaml] [--samples 30]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from _common import header

STRUCTURES = {1: "GM", 2: "WM", 3: "CSF"}
BRAIN = range(1, 13)


def clean_t1(config):
    """The config's generator with every acquisition effect off and a fixed T1 contrast."""
    return dataclasses.replace(
        config, mode="t1", prior_jitter=0.0, std=(0.0, 1.0), noise_probability=0.0, bias_probability=0.0,
        texture_probability=0.0, gamma_std=0.0, resolution_native_probability=1.0,
        resolution_isotropic_probability=0.0, motion_probability=0.0, fov_cut_probability=0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--config", default="configs/shipped-2mm.yaml")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    header("model fit on the generator's training distribution")
    from synthseg.evaluation.metrics import dice_per_label
    from synthseg.inference.model import load_model
    from synthseg.synthesis.generator import Generator
    from synthseg.training.config import load_config
    from synthseg.training.trainer import load_template_split

    config = load_config(args.config)
    train, _, recipe = load_template_split(config)
    network = load_model(args.model, torch.device("cpu")).network
    print(f"model {args.model or 'default'}, {len(train)} training templates of {args.config}")
    groups: dict[str, list[np.ndarray]] = {}
    for family, generator_config in (("drawn", config.generator), ("clean T1", clean_t1(config.generator))):
        generator = Generator(train, recipe, generator_config, seed=args.seed)
        for i in range(args.samples if family == "drawn" else max(2, args.samples // 5)):
            params = generator.sample_params(args.seed * 100_000 + i)
            image, target = generator.render(params)
            with torch.no_grad():
                labels = network(image[None, None]).argmax(1)[0].numpy()
            scores = dice_per_label(labels[None], target.numpy()[None], BRAIN)
            row = np.array([scores[k] for k in STRUCTURES] + [np.nanmean([scores[k] for k in BRAIN])])
            blurred = max(params.low_res) > 1.1 * config.generator.spacing
            keys = [family]
            if family == "drawn":
                contrast = params.modality if params.modality in ("ct", "random") else "prior MR"
                keys += [contrast, "blurred" if blurred else "native resolution",
                         "partial volume" if params.partial_volume else "nearest labels"]
            for key in keys:
                groups.setdefault(key, []).append(row)
    print(f"{'group':<20} {'n':>3} " + " ".join(f"{s:>6}" for s in [*STRUCTURES.values(), "brain"]))
    for key, rows in groups.items():
        means = np.nanmean(np.stack(rows), 0)
        print(f"{key:<20} {len(rows):>3} " + " ".join(f"{v:6.3f}" for v in means))


if __name__ == "__main__":
    main()
