import json

import pytest

from synthseg.labels.protocol import FORMATS, NUM_CLASSES, STRUCTURES, structure_table


def test_ids_are_the_label_protocol():
    assert NUM_CLASSES == 17
    assert [s.id for s in STRUCTURES] == list(range(17))
    shorts = {s.id: s.short for s in STRUCTURES}
    assert shorts[1] == "GM" and shorts[13] == "Dura" and shorts[15] == "Skull" and shorts[16] == "Head"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_lists_all_structures(fmt):
    text = structure_table(fmt)
    for s in STRUCTURES[1:]:
        assert s.short in text or s.name in text


def test_json_round_trip_and_tsv_header():
    rows = json.loads(structure_table("json"))
    assert rows[12]["short"] == "Hippo" and rows[12]["rgb"] == list(STRUCTURES[12].rgb)
    tsv = structure_table("tsv").splitlines()
    assert tsv[0] == "index\tname\tabbreviation\tcolor" and len(tsv) == 18
    assert tsv[3].split("\t")[3] == "#f5f5f5"  # WM colour in hex


def test_fslut_and_itksnap_have_one_line_per_label():
    lut = [line for line in structure_table("fslut").splitlines() if not line.startswith("#")]
    assert [int(line.split()[0]) for line in lut] == list(range(17))
    snap = [line for line in structure_table("itksnap").splitlines() if not line.startswith("#")]
    assert snap[5].split()[0] == "5" and '"Cerebellar cortex"' in snap[5]


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown label table format"):
        structure_table("csv")
