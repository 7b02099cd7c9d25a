"""Batch segmentation behind ``synthseg segment``: input discovery, one failure never stops the
others, skip/overwrite rules, a volumes CSV for the whole batch, a provenance JSON, torchrun split."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from synthseg import __version__
from synthseg.errors import SynthSegError
from synthseg.io.image import IMAGE_SUFFIXES, is_dicom_folder, is_image_path, write_atomic
from synthseg.io.lists import is_list_file, read_path_list
from synthseg.labels.protocol import structure_table
from synthseg.inference.result import names_label_file, output_paths, output_stem
from synthseg.inference.segmenter import Segmenter


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)  # input → what was done to it and its timings


def collect_inputs(specs: Sequence[str | Path], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Expand files, folders (images inside, or one DICOM series) and list files into input paths."""
    found: list[Path] = []
    errors: list[str] = []
    for spec in specs:
        path = Path(spec)
        if not path.exists() and not path.is_symlink():
            errors.append(f"{path}: no such file or folder")
        elif path.is_symlink() and not path.exists():
            errors.append(f"{path}: broken symbolic link")
        elif path.is_dir():
            if is_dicom_folder(path):
                found.append(path)
                continue
            pattern = path.rglob("*") if recursive else path.iterdir()
            images = sorted(p for p in pattern if is_image_path(p) and not _is_output(p))
            if not images:
                errors.append(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(images)
        elif is_list_file(path):
            try:
                found.extend(read_path_list(path))
            except SynthSegError as error:
                errors.append(str(error))
        else:
            found.append(path)
    unique: list[Path] = []
    for p in found:
        if p not in unique:
            unique.append(p)
    return unique, errors


def _is_output(path: Path) -> bool:
    name = path.name.lower()
    return any(ending in name for ending in ("_dseg.", "_probseg.", "_hemi."))


def output_targets(path: Path, out: Path | None) -> dict[str, Path]:
    """The output files of one input: in ``out`` (a folder or the label map's own path) or next to the input."""
    return output_paths(out if out is not None else (path if path.is_dir() else path.parent), output_stem(path))


def check_output(out: Path | None, n_inputs: int) -> None:
    """Refuse an output file name that cannot be honoured (several inputs, or a non-NIfTI suffix)."""
    if out is not None and names_label_file(out) and n_inputs > 1:
        raise SynthSegError(f"names one output file but {n_inputs} inputs were given; name a folder", out)


def run_batch(inputs: Sequence[Path], out: Path | None, make_segmenter: Callable[[], Segmenter], *,
              posteriors: bool = False, qc: bool = False, png: bool = False, skip_existing: bool = False,
              overwrite: bool = False, progress: bool = True, rank: int = 0, world: int = 1,
              announce: Callable[[str], None] = print) -> BatchReport:
    """Segment every input; an input's failure is collected as a one-line reason, never raised.

    ``out`` is a folder, or the label map's own ``.nii``/``.nii.gz`` path when there is one input
    (anything else raises before any work starts: :func:`check_output`).
    """
    report = BatchReport()
    check_output(out, len(inputs))
    mine = list(inputs)[rank::world]
    todo: list[tuple[Path, dict[str, Path]]] = []
    for path in mine:
        targets = output_targets(path, out)
        _remove_stale_temporaries(targets.values())
        if targets["labels"].exists() and skip_existing:
            report.skipped.append(path)
        elif targets["labels"].exists() and not overwrite:
            report.failed.append(f"{targets['labels']}: output exists (use --overwrite or --skip-existing)")
        else:
            todo.append((path, targets))
    if not todo:
        return report
    segmenter = make_segmenter()
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="scan", dynamic_ncols=True, disable=not sys.stderr.isatty())
    for path, targets in todo:
        try:
            result = segmenter.segment(path, posteriors=posteriors)
            if png:
                _write_png(path, result, targets["png"])
            paths = result.save(targets["labels"], qc=qc)
            _write_label_table(targets["labels"].parent)
            report.done.append(paths["labels"])
            report.rows.append({"input": str(path), **result.volumes, "brain_at_edges_cm2": result.brain_at_edges,
                                **result.hemisphere_volumes})
            report.files[str(path)] = {**result.what_was_done(), "timings": result.timings}
            for warning in result.warnings:
                announce(f"{path}: warning: {warning}")
            flagged = [k for k, v in result.qc.items() if v.get("volume_flag", "ok") != "ok"]
            if qc and flagged:
                announce(f"{path}: QC volume flags for {', '.join(flagged)}")
        except SynthSegError as error:
            report.failed.append(str(error))
        except MemoryError:
            report.failed.append(f"{path}: out of memory; try a smaller field of view or more RAM")
        except OSError as error:
            report.failed.append(f"{path}: {error.strerror or error}")
        except Exception as error:  # a batch over thousands of files must not die on one
            report.failed.append(f"{path}: unexpected error ({type(error).__name__}: {error})")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return report


def _remove_stale_temporaries(outputs: Iterable[Path]) -> None:
    """Temporaries of an earlier run that was killed mid-write (outputs only ever appear by rename)."""
    for output in outputs:
        if output.parent.is_dir():
            for stale in output.parent.glob(f".{output.name}.*.tmp*"):
                stale.unlink(missing_ok=True)


def _write_label_table(folder: Path) -> None:
    table = folder / "dseg.tsv"
    if not table.exists():
        write_atomic(table, lambda tmp: tmp.write_text(structure_table("tsv"), encoding="utf-8"))


def _write_png(path: Path, result, png: Path) -> None:
    import nibabel as nib

    from synthseg.inference.preprocessing import finite_values
    from synthseg.io.geometry import resample_to_grid
    from synthseg.io.image import load_image
    from synthseg.viz import montage, save_png

    image = load_image(path)
    data = finite_values(image.data)[0]
    if data.shape != result.labels.shape:  # labels on another grid (voxel_size): the scan shown on theirs
        data = resample_to_grid(data, image.affine, result.labels.shape, result.labels.affine, order=1)
    canon = nib.as_closest_canonical(nib.Nifti1Image(data, result.labels.affine))
    labels = nib.as_closest_canonical(result.labels)
    save_png([montage(np.asarray(canon.dataobj)), montage(np.asarray(canon.dataobj), np.asarray(labels.dataobj))],
             png)


def provenance(options: dict, segmenter_card: dict | None, device: str, report: BatchReport,
               started: float) -> dict:
    import monai
    import nibabel
    import torch

    return {
        "synthseg": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "monai": monai.__version__, "nibabel": nibabel.__version__, "platform": platform.platform(),
        "model": None if segmenter_card is None else {
            "name": segmenter_card.get("name"), "sha256": segmenter_card.get("sha256"),
            "experts": [e["contrast"] for e in segmenter_card.get("experts", [])]},
        "options": options, "device": device, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": round(time.time() - started, 2), "outputs": [str(p) for p in report.done],
        "skipped": [str(p) for p in report.skipped], "failures": report.failed, "files": report.files,
        "host": os.uname().nodename if hasattr(os, "uname") else "",
    }


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, default=str) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
