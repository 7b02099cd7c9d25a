"""Structure volumes of label maps already written: the statistics without segmenting again.

``synthseg segment`` reports expected volumes under the network's probabilities; a label map on disk — perhaps
corrected by hand since, or written by another tool in this protocol — has only its voxels. These are counted
here (ml, ``|det|`` of the affine per voxel, so sheared grids count right), with the brain structures per side
where the map's ``_hemi`` file from ``segment --hemispheres`` lies beside it, and the sides where the field of view
cuts the brain (:func:`synthseg.inference.coverage.brain_at_edges`: those volumes cover only the part in view). Rows
come in the layout of ``segment --volumes`` (:func:`volumes_csv`, which writes both).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from synthseg.errors import SynthSegError
from synthseg.inference.coverage import brain_at_edges
from synthseg.inference.hemispheres import LATERALISED_IDS, LEFT, RIGHT
from synthseg.inference.result import output_paths
from synthseg.io.geometry import voxel_volume_ml
from synthseg.io.image import Image, read_label_map
from synthseg.io.lists import is_list_file, read_path_list
from synthseg.labels.protocol import INTRACRANIAL, NUM_CLASSES, STRUCTURES

SIDE_STRUCTURES = [STRUCTURES[i] for i in LATERALISED_IDS]  # the structures a hemisphere map splits


def label_volumes(labels: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """Volume (ml) of each of the 16 structures, and ICV, by counting the voxels of ``labels``."""
    counts = np.bincount(labels.ravel(), minlength=NUM_CLASSES).astype(np.float64)
    voxel_ml = voxel_volume_ml(affine)
    volumes = {s.short: round(float(counts[s.id]) * voxel_ml, 3) for s in STRUCTURES[1:]}
    volumes["ICV"] = round(float(counts[list(INTRACRANIAL)].sum()) * voxel_ml, 3)
    return volumes


def side_volumes(labels: np.ndarray, sides: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """``{"<structure>_left": ml, "<structure>_right": ml}`` for the brain structures, from a hemisphere map
    (``sides``: ``LEFT`` 1, ``RIGHT`` 2) on the labels' grid."""
    left = label_volumes(np.where(sides == LEFT, labels, 0), affine)
    right = label_volumes(np.where(sides == RIGHT, labels, 0), affine)
    return {f"{s.short}_{side}": volumes[s.short] for s in SIDE_STRUCTURES
            for side, volumes in (("left", left), ("right", right))}


def label_maps_in(specs: Sequence[str | Path], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """The label maps named by ``specs``: files as they are, folders for the ``*_dseg.nii[.gz]`` files that
    ``segment`` writes (``recursive``: in sub-folders too), list files (``.txt``, ``.csv``, ...: one path per
    line or a column, as :func:`synthseg.io.lists.listed_paths` reads them) for the maps they name; one-line
    errors for what names none."""
    found: list[Path] = []
    errors: list[str] = []
    for spec in map(Path, specs):
        if spec.is_dir():
            pattern = "**/*_dseg.nii*" if recursive else "*_dseg.nii*"
            maps = sorted(p for p in spec.glob(pattern) if p.name.endswith(("_dseg.nii", "_dseg.nii.gz")))
            if not maps:
                errors.append(f"{spec}: folder holds no *_dseg.nii.gz label maps")
            found.extend(maps)
        elif spec.exists() and is_list_file(spec):
            try:
                found.extend(read_path_list(spec))
            except SynthSegError as error:
                errors.append(str(error))
        elif spec.exists():
            found.append(spec)
        else:
            errors.append(f"{spec}: no such file or folder")
    return list(dict.fromkeys(found)), errors


def stored_volumes(label_path: str | Path) -> dict[str, object]:
    """One row for a label map on disk: ``input`` (its path), the 16 structures' and ICV's volumes,
    ``brain_at_edges_cm2`` (where the field of view cuts the brain, as ``segment`` reports it) and, when its
    hemisphere map lies beside it, the brain structures' volumes per side. :class:`SynthSegError` (one line,
    naming the file) for anything that is not a label map of the 16 structures."""
    label_path = Path(label_path)
    image = read_label_map(label_path, allow_empty=True)
    labels = np.asarray(image.data)
    if labels.max() >= NUM_CLASSES:
        raise SynthSegError(f"holds code {int(labels.max())}, not one of the {NUM_CLASSES - 1} structures' ids "
                            "(0-16); is this another protocol's label map?", label_path)
    row: dict[str, object] = {"input": str(label_path), **label_volumes(labels, image.affine),
                              "brain_at_edges_cm2": brain_at_edges(labels, image.affine)}
    hemi_path = output_paths(label_path, "")["hemispheres"] if label_path.name.endswith((".nii", ".nii.gz")) else None
    if hemi_path is not None and hemi_path.exists():
        row.update(side_volumes(labels, _hemisphere_map(hemi_path, image), image.affine))
    return row


def _hemisphere_map(path: Path, labels: Image) -> np.ndarray:
    sides = read_label_map(path, allow_empty=True)
    if sides.shape != labels.shape or not np.allclose(sides.affine, labels.affine, atol=1e-3):
        raise SynthSegError(f"is not on its label map's grid ({'x'.join(map(str, sides.shape))} against "
                            f"{'x'.join(map(str, labels.shape))}, or another affine)", path)
    if sides.data.max() > max(LEFT, RIGHT):
        raise SynthSegError(f"holds value {int(sides.data.max())}; a hemisphere map holds 0, {LEFT} (left), "
                            f"{RIGHT} (right)", path)
    return np.asarray(sides.data)


def volumes_csv(rows: Sequence[dict]) -> str:
    """One row per input: the 16 structures' volumes and ICV (ml), ``brain_cut`` (the sides of the head where the
    field of view cuts the brain, from each row's ``brain_at_edges_cm2``, space-separated; empty when the brain is
    whole), then, where any row has them, the brain structures' volumes per hemisphere (``--hemispheres``; empty for
    an input without a split)."""
    columns = ["input"] + [s.short for s in STRUCTURES[1:]] + ["ICV", "brain_cut"]
    columns += [f"{s.short}_{side}" for s in SIDE_STRUCTURES for side in ("left", "right")
                if any(f"{s.short}_{side}" in row for row in rows)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["input"]):
        writer.writerow({**row, "brain_cut": " ".join(row["brain_at_edges_cm2"])})
    return buffer.getvalue()
