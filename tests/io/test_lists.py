import pytest

from synthseg.errors import SynthSegError
from synthseg.io.lists import is_list_file, listed_paths, read_path_list


def test_a_text_list_names_one_path_per_line():
    text = "a.nii.gz\n\n# comment\n  b.nii.gz  \nc.nii.gz,subject 3\n"
    assert listed_paths(text.splitlines()) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]


@pytest.mark.parametrize("text, expected", [
    ("a.nii.gz,1\nb.nii.gz,2\n", ["a.nii.gz", "b.nii.gz"]),  # no header: the first column
    ("Path,age\na.nii.gz,71\nb.nii.gz,65\n", ["a.nii.gz", "b.nii.gz"]),  # a header naming the column
    ("subject,scan,age\ns1,\"x, y/a.nii.gz\",71\ns2,b.nii.gz,65\n", ["x, y/a.nii.gz", "b.nii.gz"]),  # quoted
])
def test_a_csv_list_names_the_paths_of_its_first_or_named_column(text, expected):
    assert listed_paths(text.splitlines(), csv_file=True) == expected


def test_a_list_file_is_known_by_its_suffix_in_any_case(tmp_path):
    assert [is_list_file(tmp_path / name) for name in ("a.TXT", "b.csv", "c.lst", "d.nii.gz", "e.list")] == \
        [True, True, True, False, True]


def test_relative_paths_of_a_list_are_read_from_its_own_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    listing = tmp_path / "sub" / "maps.txt"
    listing.write_text(f"a_dseg.nii.gz\n{tmp_path / 'b_dseg.nii.gz'}\n", encoding="utf-8")
    assert read_path_list(listing) == [tmp_path / "sub" / "a_dseg.nii.gz", tmp_path / "b_dseg.nii.gz"]


def test_an_unreadable_list_is_one_error_naming_it(tmp_path):
    listing = tmp_path / "maps.csv"
    listing.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(SynthSegError, match=r"maps\.csv: cannot read the list"):
        read_path_list(listing)
