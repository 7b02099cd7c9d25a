import nibabel as nib
import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.evaluation.evaluate import consistency, evaluate_files, evaluate_pair, pair_paths
from synthseg.io.image import Image
from synthseg.labels.mapping import ASEG
from tests.conftest import write_nifti


def _labels(seed=0):
    rng = np.random.default_rng(seed)
    a = np.zeros((16, 18, 20), np.uint8)
    a[3:12, 4:14, 5:15] = 2
    a[5:9, 6:10, 7:11] = 6
    a[rng.random(a.shape) > 0.97] = 1
    return a


def test_identical_maps_score_one_and_unmapped_codes_are_ignored():
    pred = _labels()
    aseg = np.select([pred == 2, pred == 6, pred == 1], [41, 10, 3], 0).astype(np.int16)
    aseg[0:2] = 999  # an unmapped code: left out of scoring
    ref = Image(aseg, np.eye(4))
    scrambled = pred.copy()
    scrambled[0:2] = 6  # errors inside the unmapped region do not count
    rows = evaluate_pair(Image(scrambled, np.eye(4)), ref, ASEG).rows
    scores = {r["structure"]: r["dice"] for r in rows}
    assert scores["WM"] == scores["Thal"] == scores["GM"] == 1.0
    assert all(r["vol_diff_ml"] == 0 for r in rows if not np.isnan(r["dice"]))


def test_grids_differing_only_by_orientation_evaluate_identically(tmp_path):
    pred, ref = _labels(0), _labels(1)
    affine = np.diag([1.0, 1.2, 1.5, 1.0])
    write_nifti(tmp_path / "ref.nii.gz", ref, affine)
    write_nifti(tmp_path / "a_dseg.nii.gz", pred, affine)
    flipped = nib.Nifti1Image(pred, affine).as_reoriented(np.array([[0, -1], [2, 1], [1, 1]]))
    nib.save(flipped, str(tmp_path / "b_dseg.nii.gz"))
    a = evaluate_files([tmp_path / "a_dseg.nii.gz"], [tmp_path / "ref.nii.gz"], "siam")[0].rows
    b = evaluate_files([tmp_path / "b_dseg.nii.gz"], [tmp_path / "ref.nii.gz"], "siam")[0].rows
    for ra, rb in zip(a, b):
        assert ra["dice"] == pytest.approx(rb["dice"], nan_ok=True)
        assert ra["hd95_mm"] == pytest.approx(rb["hd95_mm"], nan_ok=True)


def test_pairing_by_stem_then_by_order(tmp_path):
    preds = [tmp_path / "s2_dseg.nii.gz", tmp_path / "s1_dseg.nii.gz"]
    refs = [tmp_path / "s1.nii.gz", tmp_path / "s2.nii.gz"]
    assert pair_paths(preds, refs) == [(preds[0], refs[1]), (preds[1], refs[0])]
    other = [tmp_path / "x.nii.gz", tmp_path / "y.nii.gz"]
    assert pair_paths(preds, other) == list(zip(preds, other))


def test_consistency_of_identical_segmentations(tmp_path):
    paths = [write_nifti(tmp_path / f"{c}.nii.gz", _labels()) for c in ("t1", "t2", "flair")]
    rows = consistency(paths)
    assert len({(r["a"], r["b"]) for r in rows}) == 3 and all(r["dice"] == 1.0 for r in rows)


def test_consistency_leaves_out_an_unreadable_file_only_when_told_to(tmp_path):
    paths = [write_nifti(tmp_path / f"{c}.nii.gz", _labels()) for c in ("t1", "t2")]
    broken = tmp_path / "flair.nii.gz"
    broken.write_bytes(b"not a nifti")
    with pytest.raises(SynthSegError, match="flair.nii.gz"):
        consistency([paths[0], broken, paths[1]])
    failed = []
    rows = consistency([paths[0], broken, paths[1]], on_error=failed.append)
    assert {(r["a"], r["b"]) for r in rows} == {("t1.nii.gz", "t2.nii.gz")} and len(failed) == 1
    with pytest.raises(SynthSegError, match="1 of 2 could be read"):
        consistency([paths[0], broken], on_error=failed.append)


def test_an_intensity_image_given_as_a_reference_is_refused(tmp_path):
    labels = write_nifti(tmp_path / "seg.nii.gz", _labels())
    scan = write_nifti(tmp_path / "scan.nii.gz", _labels().astype(np.float32) + 0.25)
    with pytest.raises(SynthSegError, match="scan.nii.gz: label map has non-integer values"):
        evaluate_files([labels], [scan], hd95=False)
