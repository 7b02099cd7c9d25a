"""Generator speed vs an equivalent TorchIO chain, in one process, at 160³ (1 mm) on the CPU.

Both chains start from the same 1 mm template label map: ours (every stage on at the default
probabilities, per-stage timings printed) and TorchIO's RandomLabelsToImage, RandomAffine,
RandomElasticDeformation, RandomBiasField, RandomGamma, RandomNoise, RandomAnisotropy, RandomMotion
on a 160³ crop. Prints seconds per sample, the ratio, and peak RSS after each.

    python benchmarks/generator_speed.py [--samples 8] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from _common import SHARED, Timer, header, peak_rss_gb


def load_template():
    from synthseg.io.image import read_label_map
    from synthseg.templates.library import phantom_templates, Template
    from synthseg.templates.recipe import load_recipe
    from synthseg.io.geometry import to_canonical

    path = SHARED / "templates" / "synthseg" / "training_seg_01.nii.gz"
    if path.exists():
        recipe = load_recipe("aseg-charm")
        image = to_canonical(read_label_map(path))
        return [Template("training_seg_01", image.data, image.affine, {})], recipe, "training_seg_01 (256³ 1 mm)"
    templates, recipe = phantom_templates(1.0)
    return templates, recipe, "built-in phantom (1 mm)"


def ours(templates, recipe, n: int, device: str) -> tuple[float, dict]:
    from synthseg.synthesis.config import GeneratorConfig
    from synthseg.synthesis.generator import Generator

    config = dataclasses.replace(GeneratorConfig(), patch_size=(160, 160, 160), spacing=1.0)
    generator = Generator(templates, recipe, config, device=device, seed=0)
    generator.render(generator.sample_params(0))  # warm-up
    stages: dict[str, float] = {}
    with Timer() as t:
        for seed in range(1, n + 1):
            generator.render(generator.sample_params(seed), stages)
    return t.seconds / n, {k: v / n for k, v in stages.items()}


def torchio_chain(templates, n: int) -> float:
    import torchio as tio

    labels = templates[0].labels
    centre = np.asarray(labels.shape) // 2
    crop = labels[tuple(slice(c - 80, c + 80) for c in centre)].astype(np.int64)
    subject = tio.Subject(label=tio.LabelMap(tensor=torch.from_numpy(crop)[None], affine=templates[0].affine))
    chain = tio.Compose([
        tio.RandomLabelsToImage(label_key="label", image_key="image"),
        tio.RandomAffine(scales=0.15, degrees=15, translation=10),
        tio.RandomElasticDeformation(),
        tio.RandomBiasField(),
        tio.RandomGamma(),
        tio.RandomNoise(),
        tio.RandomAnisotropy(),
        tio.RandomMotion(),
    ])
    chain(subject)  # warm-up
    with Timer() as t:
        for _ in range(n):
            chain(subject)
    return t.seconds / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    header("generator speed at 160³")
    templates, recipe, name = load_template()
    print(f"template: {name}")
    mine, stages = ours(templates, recipe, args.samples, args.device)
    rss_ours = peak_rss_gb()
    print(f"synthseg generator ({args.device}): {mine:.3f} s/sample, peak RSS so far {rss_ours:.2f} GB")
    for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:<22} {seconds:.3f} s")
    reference = torchio_chain(templates, max(2, args.samples // 2))
    print(f"TorchIO chain (cpu): {reference:.3f} s/sample, peak RSS so far {peak_rss_gb():.2f} GB")
    print(f"speed-up: {reference / mine:.1f}x (target >= 10x); synthseg peak RSS {rss_ours:.2f} GB (target <= 3 GB)")


if __name__ == "__main__":
    main()
