"""What one segmentation returns, and where its files go: ``SegmentationResult`` (labels, volumes, QC, optional
posteriors, how the scan was read) and the output naming shared by the Python API and the batch front end."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from synthseg.errors import SynthSegError
from synthseg.io.image import Image, save_image, strip_image_suffix, write_atomic
from synthseg.labels.protocol import BRAIN_STRUCTURE_IDS, STRUCTURES


@dataclass
class SegmentationResult:
    """Labels on the output grid (the input's, unless ``voxel_size``), plus expected volumes (ml,
    :func:`synthseg.inference.segmenter.soft_volumes`), QC and (optionally) posteriors."""

    labels: nib.Nifti1Image
    volumes: dict[str, float]
    qc: dict[str, dict]
    modality: str
    timings: dict[str, float]
    posteriors: nib.Nifti1Image | None = None
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)
    # {"contrast", "correlation"} of the second pass ({"contrast", "named": True} when the user named the contrast),
    # None = general model only
    expert: dict | None = None
    # mean normalised intensity per experts.SIGNATURE_IDS structure under the first pass, which chose
    # the expert (None: no MR experts, or CT); kept so a route can be checked and rules compared
    signature: list[float | None] | None = None
    # too little skull and scalp found: extra-cerebral volumes are not meaningful; None when the field of view cuts
    # the brain (a slab's ring of skull and scalp says nothing either way)
    skull_stripped: bool | None = False
    # {side: cm²} of brain structures on the faces of the label map's grid where the field of view cuts the brain
    # (:func:`synthseg.inference.coverage.brain_at_edges`): their volumes cover only the part in view; {} when whole
    brain_at_edges: dict[str, float] = field(default_factory=dict)
    bias_corrected: bool = False  # divided by its N4 bias field before segmenting (bias_correct=True, MR)
    # the head's turn from the model's reference pose ({"degrees" and "residual_mm" of the last read, "reads":
    # the angle of every read — the first grid's, then each turned grid's — and "turned": segmented again on
    # working grids turned with it}), None when the model has no reference pose or pose=False
    pose: dict | None = None
    # hemispheres=True: {"plane": the mid-sagittal plane (MidsagittalPlane.as_dict), "left"/"right": the brain
    # structures' expected volumes (ml) on either side}; None when not asked for or no plane was found
    hemispheres: dict | None = None
    # with it, the labels' sides on the output grid (uint8: 1 left, 2 right, 0 outside the 12 brain structures;
    # :func:`synthseg.inference.hemispheres.hemisphere_map`), written as ``_hemi.nii.gz``
    hemisphere_map: nib.Nifti1Image | None = None

    @property
    def brain_confidence(self) -> float:
        """Mean of the 12 brain structures' (ids 1-12) mean confidence: one quality figure per scan, to sort a batch
        by (it tracked IXI's mean-12 Dice at r = 0.78 across thick slices, noise and bias fields;
        benchmarks/RESULTS.md, "Confidence as a quality check")."""
        confidences = [self.qc[STRUCTURES[i].short]["mean_confidence"] for i in BRAIN_STRUCTURE_IDS]
        return round(float(np.mean(confidences)), 3)

    @property
    def hemisphere_volumes(self) -> dict[str, float]:
        """``{"<structure>_left": ml, "<structure>_right": ml}`` for the brain structures (the volumes CSV's extra
        columns); empty without a hemisphere split."""
        if self.hemispheres is None:
            return {}
        return {f"{short}_{side}": self.hemispheres[side][short] for short in self.hemispheres["left"]
                for side in ("left", "right")}

    def what_was_done(self) -> dict:
        """How this scan was read and segmented (modality, network, pose, bias correction, warnings), whether it holds
        the whole brain, and how sure the network was of it: the head of ``_qc.json`` and each input's entry in the
        batch provenance."""
        return {"modality": self.modality, "expert": self.expert, "contrast_signature": self.signature,
                "skull_stripped": self.skull_stripped, "brain_at_edges_cm2": self.brain_at_edges, "pose": self.pose,
                "bias_corrected": self.bias_corrected, "warnings": self.warnings,
                "brain_confidence": self.brain_confidence}

    def save(self, destination: str | Path, stem: str | None = None, qc: bool = False) -> dict[str, Path]:
        """Write the labels (plus posteriors, the hemisphere map and ``_qc.json`` when present/asked) where
        :func:`output_paths` says.

        ``destination`` is a folder, or the label map's own ``.nii``/``.nii.gz`` path. The label map is
        written last, so its presence means the whole output is complete.
        """
        paths = output_paths(destination, stem or output_stem(self.source))
        protect = (self.source,) if self.source else ()
        written: dict[str, Path] = {}
        paths["labels"].parent.mkdir(parents=True, exist_ok=True)
        if self.posteriors is not None:
            written["posteriors"] = paths["posteriors"]
            write_atomic(paths["posteriors"], lambda tmp: nib.save(self.posteriors, str(tmp)), suffix=".nii.gz")
        if self.hemisphere_map is not None:
            written["hemispheres"] = paths["hemispheres"]
            save_image(Image(np.asanyarray(self.hemisphere_map.dataobj), self.hemisphere_map.affine,
                             self.hemisphere_map.header), paths["hemispheres"], dtype=np.uint8, protect=protect)
        if qc:
            written["qc"] = paths["qc"]
            summary = {**self.what_was_done(), "volumes_ml": self.volumes, "structures": self.qc}
            if self.hemispheres is not None:
                summary["hemispheres"] = self.hemispheres
            text = json.dumps(summary, indent=2) + "\n"
            write_atomic(paths["qc"], lambda tmp: tmp.write_text(text, encoding="utf-8"))
        written["labels"] = paths["labels"]
        labels = Image(np.asanyarray(self.labels.dataobj), self.labels.affine, self.labels.header)
        save_image(labels, paths["labels"], dtype=np.uint8, protect=protect)
        return written


def output_stem(path: Path | None) -> str:
    if path is None:
        return "segmentation"
    return strip_image_suffix(Path(path).name)


def names_label_file(destination: str | Path) -> bool:
    """Whether an output destination is the label map's own file rather than a folder (MGH names refused)."""
    name = Path(destination).name.lower()
    if name.endswith((".mgz", ".mgh")):
        raise SynthSegError("label maps are written as NIfTI; name a .nii/.nii.gz file or a folder", destination)
    return name.endswith((".nii", ".nii.gz"))


def output_paths(destination: str | Path, stem: str) -> dict[str, Path]:
    """Where a result's files go (labels, posteriors, hemispheres, qc, png).

    A folder gets ``<stem>_dseg.nii.gz``, ``<stem>_probseg.nii.gz``, ``<stem>_hemi.nii.gz``, ``<stem>_qc.json``,
    ``<stem>_dseg.png``.
    A ``.nii``/``.nii.gz`` path is the label map itself; the other files go beside it, named after it
    (``seg.nii.gz`` → ``seg_probseg.nii.gz``; a ``_dseg`` ending is dropped first, as in BIDS).
    """
    destination = Path(destination)
    if names_label_file(destination):
        folder, labels = destination.parent, destination
        stem = output_stem(destination)
        stem = stem[: -len("_dseg")] if stem.endswith("_dseg") else stem
    else:
        folder, labels = destination, destination / f"{stem}_dseg.nii.gz"
    return {"labels": labels, "posteriors": folder / f"{stem}_probseg.nii.gz",
            "hemispheres": folder / f"{stem}_hemi.nii.gz", "qc": folder / f"{stem}_qc.json",
            "png": folder / f"{stem}_dseg.png"}
