import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from synthseg.cli.main import main
from synthseg.errors import SynthSegError
from synthseg.evaluation.volumes import label_maps_in, label_volumes, side_volumes, stored_volumes, volumes_csv
from tests.conftest import write_nifti

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 µl a voxel


def _labels() -> np.ndarray:
    """Eight voxels of each structure 1-16: five at x = id - 1, three at x = id + 3; background elsewhere."""
    labels = np.zeros((20, 8, 3), np.uint8)
    for structure in range(1, 17):
        labels[structure - 1, :5, 0] = structure
        labels[structure + 3, 5:, 1] = structure  # shifted, so each structure crosses x = 10
    return labels


def test_volumes_count_voxels_times_the_voxel_volume_of_any_affine():
    volumes = label_volumes(_labels(), AFFINE)
    assert volumes["GM"] == volumes["Head"] == pytest.approx(8 * 0.008)
    assert volumes["ICV"] == pytest.approx(14 * 8 * 0.008)  # ids 1-14: everything inside the skull
    sheared = AFFINE.copy()
    sheared[0, 1] = 1.5  # a gantry tilt: same voxel volume
    assert label_volumes(_labels(), sheared) == volumes


def test_side_volumes_split_the_brain_structures_and_add_up():
    labels = _labels()
    sides = np.where(np.isin(labels, range(1, 13)), 1, 0).astype(np.uint8)
    sides[10:][sides[10:] == 1] = 2  # x ≥ 10 is right
    split = side_volumes(labels, sides, AFFINE)
    assert list(split)[:4] == ["GM_left", "GM_right", "WM_left", "WM_right"] and len(split) == 24
    total = label_volumes(labels, AFFINE)
    for short in ("GM", "Pal", "Hippo"):
        assert split[f"{short}_left"] + split[f"{short}_right"] == pytest.approx(total[short])
    assert split["GM_left"] == pytest.approx(8 * 0.008) and split["GM_right"] == 0  # voxels at x 0 and 4
    assert split["Pal_left"] == pytest.approx(5 * 0.008) and split["Pal_right"] == pytest.approx(3 * 0.008)  # x 6, 10
    assert split["Hippo_left"] == 0 and split["Hippo_right"] == pytest.approx(8 * 0.008)  # x 11 and 15


def test_a_written_label_map_and_its_hemisphere_map_give_the_csv_row_segment_writes(tmp_path):
    labels = _labels()
    sides = np.where(np.isin(labels, range(1, 13)), np.where(np.arange(20)[:, None, None] >= 10, 2, 1), 0)
    write_nifti(tmp_path / "out" / "a_dseg.nii.gz", labels, AFFINE, np.uint8)
    write_nifti(tmp_path / "out" / "a_hemi.nii.gz", sides.astype(np.uint8), AFFINE)
    write_nifti(tmp_path / "out" / "b_dseg.nii.gz", labels, AFFINE, np.uint8)  # no hemisphere map: no sides
    write_nifti(tmp_path / "out" / "a_probseg.nii.gz", labels, AFFINE, np.uint8)  # not a label map's name
    found, errors = label_maps_in([tmp_path / "out", tmp_path / "out" / "b_dseg.nii.gz", tmp_path / "none"])
    assert [p.name for p in found] == ["a_dseg.nii.gz", "b_dseg.nii.gz"] and errors == [
        f"{tmp_path / 'none'}: no such file or folder"]
    rows = [stored_volumes(p) for p in found]
    assert rows[0]["Hippo_left"] + rows[0]["Hippo_right"] == pytest.approx(rows[0]["Hippo"])
    assert "GM_left" not in rows[1]
    table = list(csv.DictReader(volumes_csv(rows).splitlines()))
    assert table[0]["GM_left"] == str(rows[0]["GM_left"]) and table[1]["GM_left"] == ""
    assert rows[0]["brain_at_edges_cm2"] == {} and table[0]["brain_cut"] == ""  # 8 voxels of 4 mm² on a face


def test_a_map_whose_brain_reaches_two_faces_is_marked_cut_in_the_csv_and_warned(tmp_path, capsys):
    """Two slabs of white matter through the grid's axial faces, 1 mm voxels: 9 cm² on each face stays under the
    10 cm² of a cut (a brainstem's few cm²), 25 cm² is a cut on both sides."""
    labels = np.zeros((40, 40, 6), np.uint8)
    labels[5:35, 5:35, :] = 2  # 30 x 30 mm on the top and bottom slices
    slab = write_nifti(tmp_path / "slab_dseg.nii.gz", labels, np.eye(4), np.uint8)
    wide = np.zeros((60, 60, 6), np.uint8)
    wide[5:55, 5:55, :] = 2  # 50 x 50 mm: 25 cm² each
    wide_path = write_nifti(tmp_path / "wide_dseg.nii.gz", wide, np.eye(4), np.uint8)
    assert stored_volumes(slab)["brain_at_edges_cm2"] == {}  # 9 cm²: under the 10 cm² of a cut
    assert stored_volumes(wide_path)["brain_at_edges_cm2"] == {"inferior": 25.0, "superior": 25.0}
    out = tmp_path / "vol.csv"
    assert main(["volumes", str(slab), str(wide_path), "-o", str(out)]) == 0
    assert capsys.readouterr().err.strip() == (
        f"{wide_path}: warning: the field of view cuts the brain (inferior 25 cm², superior 25 cm² of brain at its "
        "edge): the structures there are cut, and their volumes cover only the part in view")
    table = {Path(r["input"]).name: r["brain_cut"] for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert table == {"slab_dseg.nii.gz": "", "wide_dseg.nii.gz": "inferior superior"}


@pytest.mark.parametrize("labels, sides, message", [
    (np.full((4, 4, 4), 17, np.uint8), None, "holds code 17, not one of the 16 structures' ids"),
    (np.full((4, 4, 4), 1.5, np.float32), None, "non-integer values"),
    (np.ones((4, 4, 4), np.uint8), np.ones((4, 4, 5)), "a_hemi.nii.gz: is not on its label map's grid"),
    (np.ones((4, 4, 4), np.uint8), np.full((4, 4, 4), 3), "a_hemi.nii.gz: holds value 3"),
])
def test_what_is_no_label_map_of_the_protocol_is_refused_in_one_line(tmp_path, labels, sides, message):
    path = write_nifti(tmp_path / "a_dseg.nii.gz", labels, AFFINE)
    if sides is not None:
        write_nifti(tmp_path / "a_hemi.nii.gz", sides.astype(np.uint8), AFFINE)
    with pytest.raises(SynthSegError, match=message) as error:
        stored_volumes(path)
    assert "\n" not in str(error.value)


def test_the_volumes_command_writes_the_good_maps_and_names_the_bad_ones(tmp_path, capsys):
    write_nifti(tmp_path / "in" / "good_dseg.nii.gz", _labels(), AFFINE, np.uint8)
    write_nifti(tmp_path / "in" / "bad_dseg.nii.gz", np.full((4, 4, 4), 99, np.uint8), AFFINE)
    out = tmp_path / "vol.csv"
    assert main(["volumes", str(tmp_path / "in"), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"failed: {tmp_path / 'in' / 'bad_dseg.nii.gz'}: holds code 99, not one of the " \
                                   "16 structures' ids (0-16); is this another protocol's label map?"
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["input"] for r in rows] == [str(tmp_path / "in" / "good_dseg.nii.gz")]
    assert float(rows[0]["Thal"]) == pytest.approx(8 * 0.008)
    assert main(["volumes", str(tmp_path / "in" / "good_dseg.nii.gz")]) == 0  # no -o: the CSV on stdout
    assert capsys.readouterr().out.splitlines()[0].startswith("input,GM,WM,CSF")
    assert main(["volumes", str(tmp_path / "in"), "-o", str(tmp_path)]) == 1  # a folder: refused before any work
    assert "-o names a folder" in capsys.readouterr().err


def test_a_list_file_names_the_label_maps(tmp_path, capsys):
    write_nifti(tmp_path / "good_dseg.nii.gz", _labels(), AFFINE, np.uint8)
    listing = tmp_path / "maps.csv"
    listing.write_text("subject,path\ns1,good_dseg.nii.gz\ns2,gone_dseg.nii.gz\n", encoding="utf-8")
    out = tmp_path / "vol.csv"
    assert main(["volumes", str(listing), "-o", str(out)]) == 1
    assert str(tmp_path / "gone_dseg.nii.gz") in capsys.readouterr().err
    assert [r["input"] for r in csv.DictReader(out.open(encoding="utf-8"))] == [str(tmp_path / "good_dseg.nii.gz")]


def test_the_volumes_command_never_loads_torch(tmp_path):
    write_nifti(tmp_path / "a_dseg.nii.gz", _labels(), AFFINE, np.uint8)
    listing = tmp_path / "maps.txt"  # read by synthseg.io.lists, which the batch of `segment` shares
    listing.write_text("a_dseg.nii.gz\n", encoding="utf-8")
    code = (f"import sys; from synthseg.cli.main import main; assert main(['volumes', {str(listing)!r}]) == 0; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("input,GM")
