"""The best any network on a coarser working grid can score: each held-out template's exact class
fractions on that grid (block means of the one-hot labels), resampled back to the template's grid the way
inference resamples probabilities (linear, then argmax), scored with Dice against the labels.

A model far below this ceiling is limited by fitting, not by its grid. A row "centre" scores the label at
each coarse voxel's centre instead (one-hot, resampled the same way): what a network that answered with hard
labels, as its training targets are, would reach. For even factors a row "+half" averages two grids, the
second shifted by half a coarse voxel along each axis, as inference's test-time augmentation did until
session 24 (its second grid is now a finer one: ``benchmarks/tta_grids.py``).

    python benchmarks/grid_ceiling.py [--config configs/shipped-2mm.yaml] [--factors 2 3]
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import header


def class_fractions(labels: np.ndarray, factor: int, classes: int) -> np.ndarray:
    """``(classes, X/f, Y/f, Z/f)`` share of each class in every ``factor``³ block (zero-padded to fit)."""
    shape = [-(-n // factor) * factor for n in labels.shape]
    padded = np.zeros(shape, labels.dtype)
    padded[tuple(slice(0, n) for n in labels.shape)] = labels
    blocks = [shape[0] // factor, factor, shape[1] // factor, factor, shape[2] // factor, factor]
    return np.stack([(padded == k).reshape(blocks).mean((1, 3, 5), dtype=np.float32) for k in range(classes)])


def centre_labels(labels: np.ndarray, factor: int, classes: int) -> np.ndarray:
    """``(classes, X/f, Y/f, Z/f)`` one-hot of the label at the centre of every ``factor``³ block (odd factors)
    or at its first voxel (even ones: the generator's targets, one point of the 2x finer render grid)."""
    point = labels[tuple(slice(factor // 2 if factor % 2 else 0, None, factor) for _ in range(3))]
    return np.stack([(point == k).astype(np.float32) for k in range(classes)])


def coarse_affine(affine: np.ndarray, factor: int) -> np.ndarray:
    """Affine of the block grid: voxels ``factor`` times larger, centred on their blocks (aligned to the
    template's first voxel, unlike ``grid_for_spacing``'s centred grid, so that block means are exact)."""
    out = np.array(affine, dtype=float)
    out[:3, :3] = affine[:3, :3] * factor
    out[:3, 3] = affine[:3, :3] @ np.full(3, (factor - 1) / 2) + affine[:3, 3]
    return out


def shifted_fractions(labels: np.ndarray, affine: np.ndarray, factor: int, classes: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Class fractions and affine of the block grid shifted by half a block along each axis."""
    shift = factor // 2
    padded = np.pad(labels, [(shift, 0)] * 3)
    origin = np.array(affine, dtype=float)
    origin[:3, 3] = affine[:3, :3] @ np.full(3, -shift) + affine[:3, 3]
    return class_fractions(padded, factor, classes), coarse_affine(origin, factor)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/shipped-2mm.yaml")
    parser.add_argument("--factors", type=int, nargs="+", default=[2, 3],
                        help="working voxel size as a multiple of the templates' voxel size")
    args = parser.parse_args()
    header("working-grid ceiling on the held-out templates")
    from synthseg.evaluation.metrics import dice_per_label
    from synthseg.io.geometry import argmax_to_grid, voxel_sizes
    from synthseg.labels.protocol import NUM_CLASSES, STRUCTURES
    from synthseg.training.config import load_config
    from synthseg.training.trainer import load_template_split

    _, held, recipe = load_template_split(load_config(args.config))
    names = [s.short for s in STRUCTURES[1:]]
    print(f"{'template':<18} {'grid':>5} {'no-dura':>8} {'brain-12':>8} " + " ".join(f"{n[:6]:>6}" for n in names))
    for template in held:
        labels = recipe.lookup(template.labels, "target").astype(np.uint8)
        voxel = float(voxel_sizes(template.affine).max())
        for factor in args.factors:
            sources = [(class_fractions(labels, factor, NUM_CLASSES), coarse_affine(template.affine, factor))]
            grids = [(f"{factor * voxel:.1f}m", sources)]
            point_affine = np.array(template.affine, dtype=float)
            point_affine[:3, :3] *= factor
            if factor % 2:
                point_affine = coarse_affine(template.affine, factor)
            grids.append(("centre", [(centre_labels(labels, factor, NUM_CLASSES), point_affine)]))
            if factor % 2 == 0:
                grids.append(("+half", sources + [shifted_fractions(labels, template.affine, factor, NUM_CLASSES)]))
            for grid, chosen in grids:
                predicted = argmax_to_grid(chosen, labels.shape, template.affine)
                scores = dice_per_label(predicted, labels, range(1, NUM_CLASSES))
                values = [scores[s.id] for s in STRUCTURES[1:]]
                no_dura = np.mean([v for n, v in zip(names, values) if n != "Dura"])
                print(f"{template.name:<18} {grid:>5} {no_dura:8.3f} {np.mean(values[:12]):8.3f} "
                      + " ".join(f"{v:6.2f}" for v in values))


if __name__ == "__main__":
    main()
