import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.labels.mapping import ASEG, MUSE, apply_mapping, load_mapping


def test_aseg_groups_follow_the_protocol():
    assert ASEG[3] == ASEG[42] == ASEG[1024] == ASEG[2035] == 1
    assert ASEG[17] == ASEG[53] == 12 and ASEG[515] == ASEG[516] == 15 and ASEG[24] == 3
    assert 75 not in MUSE and MUSE[59] == 6 and MUSE[150] == 1


def test_apply_mapping_marks_unmapped_codes():
    codes = np.array([0, 17, 999, 3])
    assert apply_mapping(codes, ASEG).tolist() == [0, 12, 255, 1]


def test_mapping_file(tmp_path):
    path = tmp_path / "map.txt"
    path.write_text("# code target\n5 1\n6, 2\n")
    assert load_mapping(path) == {5: 1, 6: 2}
    path.write_text("5 1\n5 2\n")
    with pytest.raises(SynthSegError, match="mapped twice"):
        load_mapping(path)
    path.write_text("5 40\n")
    with pytest.raises(SynthSegError, match="outside 0-16"):
        load_mapping(path)
    with pytest.raises(SynthSegError, match="no such mapping"):
        load_mapping(tmp_path / "missing.txt")
