import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.inference.result import SegmentationResult, output_paths, output_stem
from synthseg.labels.protocol import STRUCTURES


def _result(source: Path | None = None, posteriors: bool = False) -> SegmentationResult:
    """A result made by hand: labels 0-16 along the first axis, confidence 0.5 + id / 100 per structure."""
    affine = np.diag([1.5, 1.0, 1.0, 1.0])
    labels = np.repeat(np.arange(17, dtype=np.uint8), 4).reshape(17, 2, 2)
    probs = np.full(labels.shape + (17,), 255 // 17, np.uint8) if posteriors else None
    qc = {s.short: {"mean_confidence": 0.5 + s.id / 100} for s in STRUCTURES}
    return SegmentationResult(
        labels=nib.Nifti1Image(labels, affine), volumes={s.short: 1.0 for s in STRUCTURES}, qc=qc, modality="mr",
        timings={}, posteriors=None if probs is None else nib.Nifti1Image(probs, affine), source=source)


@pytest.mark.parametrize("destination, expected", [
    ("out", {"labels": "out/scan_dseg.nii.gz", "posteriors": "out/scan_probseg.nii.gz", "qc": "out/scan_qc.json"}),
    ("out/sub01_dseg.nii.gz", {"labels": "out/sub01_dseg.nii.gz", "posteriors": "out/sub01_probseg.nii.gz",
                               "hemispheres": "out/sub01_hemi.nii.gz"}),
    ("out/seg.nii", {"labels": "out/seg.nii", "qc": "out/seg_qc.json", "png": "out/seg_dseg.png"}),
])
def test_output_paths_for_a_folder_or_the_label_file_itself(destination, expected):
    paths = output_paths(destination, "scan")
    assert {k: str(paths[k]) for k in expected} == expected
    with pytest.raises(SynthSegError, match="NIfTI"):
        output_paths("out/seg.mgz", "scan")


@pytest.mark.parametrize("name, stem", [("sub-01_T1w.nii.gz", "sub-01_T1w"), ("scan.hdr.gz", "scan"),
                                        ("brain.mgz", "brain"), ("a.b.nii", "a.b"), (None, "segmentation")])
def test_output_stem_drops_every_image_suffix(name, stem):
    assert output_stem(None if name is None else Path("in") / name) == stem


def test_brain_confidence_is_the_mean_over_the_twelve_brain_structures():
    assert _result().brain_confidence == pytest.approx(0.5 + np.mean(range(1, 13)) / 100, abs=1e-3)


def test_save_writes_every_output_with_the_labels_header_and_the_qc_summary(tmp_path):
    result = _result(source=tmp_path / "scan.nii.gz", posteriors=True)
    sides = np.isin(np.asarray(result.labels.dataobj), range(1, 13)).astype(np.uint8)
    result.hemisphere_map = nib.Nifti1Image(sides, result.labels.affine)
    paths = result.save(tmp_path / "out", qc=True)
    assert set(paths) == {"labels", "posteriors", "hemispheres", "qc"} and all(p.is_file() for p in paths.values())
    assert paths["hemispheres"].name == "scan_hemi.nii.gz"
    assert np.array_equal(np.asarray(nib.load(str(paths["hemispheres"])).dataobj), sides)
    labels = nib.load(str(paths["labels"]))
    assert labels.get_data_dtype() == np.uint8 and np.allclose(labels.affine, result.labels.affine)
    assert np.array_equal(np.asarray(labels.dataobj), np.asarray(result.labels.dataobj))
    summary = json.loads(paths["qc"].read_text())
    assert summary["brain_confidence"] == result.brain_confidence and summary["modality"] == "mr"
    assert set(summary["structures"]) == {s.short for s in STRUCTURES}


def test_save_refuses_to_overwrite_its_own_input(tmp_path):
    source = tmp_path / "scan_dseg.nii.gz"
    source.write_bytes(b"the input")
    with pytest.raises(SynthSegError):
        _result(source=source).save(source)
    assert source.read_bytes() == b"the input"
