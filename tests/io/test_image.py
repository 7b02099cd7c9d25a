import nibabel as nib
import numpy as np
import pytest

from synthseg.errors import SynthSegError
from synthseg.io.image import (LABEL_MAP_FLAT_SHARE, Image, flat_share, load_image, looks_like_label_map,
                               read_label_map, save_image, strided_sample)
from tests.conftest import write_nifti


def _volume(seed=0, shape=(8, 9, 10)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _save_with_codes(kind, path, affine, qform_code: int, sform_code: int) -> None:
    img = kind(_volume(), affine)
    img.set_qform(affine, code=qform_code)
    img.set_sform(affine, code=sform_code)
    nib.save(img, str(path))


def test_nifti_round_trip_keeps_affine_and_codes(tmp_path):
    affine = np.array([[-1.5, 0, 0, 10], [0, 1.5, 0, -4], [0, 0, 2, 3], [0, 0, 0, 1]])
    _save_with_codes(nib.Nifti1Image, tmp_path / "in.nii.gz", affine, 2, 4)
    image = load_image(tmp_path / "in.nii.gz")
    out = save_image(image.with_data((image.data > 0.5).astype(np.uint8)), tmp_path / "out.nii.gz", dtype=np.uint8)
    back = nib.load(str(out))
    assert np.allclose(back.affine, affine)
    assert int(back.header["qform_code"]) == 2 and int(back.header["sform_code"]) == 4
    assert back.get_data_dtype() == np.uint8


def test_a_nifti2_input_gives_nifti2_outputs_with_its_affine(tmp_path):
    affine = np.array([[-2.0, 0, 0, 10], [0, 2.0, 0, -4], [0, 0, 2, 3], [0, 0, 0, 1]])
    nib.save(nib.Nifti2Image(_volume(), affine), str(tmp_path / "in.nii.gz"))
    image = load_image(tmp_path / "in.nii.gz")
    back = nib.load(str(save_image(image.with_data((image.data > 0.5).astype(np.uint8)), tmp_path / "out.nii.gz",
                                   dtype=np.uint8)))
    assert isinstance(back, nib.Nifti2Image) and np.allclose(back.affine, affine)


def test_mgz_and_single_frame_4d(tmp_path):
    data = _volume()
    nib.save(nib.MGHImage(data, np.eye(4)), str(tmp_path / "a.mgz"))
    assert load_image(tmp_path / "a.mgz").shape == data.shape
    write_nifti(tmp_path / "b.nii", data[..., None])
    assert load_image(tmp_path / "b.nii").shape == data.shape


@pytest.mark.parametrize("gz", ["", ".gz"])
def test_a_nifti_pair_loads_from_either_file_and_saves_as_nifti(tmp_path, gz):
    affine = np.array([[-1.2, 0, 0, 7], [0, 1.2, 0, -3], [0, 0, 3, 5], [0, 0, 0, 1]])
    _save_with_codes(nib.Nifti1Pair, tmp_path / f"spm.hdr{gz}", affine, 1, 3)
    by_header, by_data = load_image(tmp_path / f"spm.hdr{gz}"), load_image(tmp_path / f"spm.img{gz}")
    assert np.array_equal(by_header.data, by_data.data) and np.allclose(by_header.affine, affine)
    back = nib.load(str(save_image(by_header.with_data((by_header.data > 0.5).astype(np.uint8)),
                                   tmp_path / "out.nii.gz", dtype=np.uint8)))
    assert isinstance(back, nib.Nifti1Image) and back.header["magic"] == b"n+1"
    assert np.allclose(back.affine, affine) and int(back.header["sform_code"]) == 3


def test_an_analyze_pair_and_a_pair_missing_its_data_are_refused(tmp_path):
    nib.save(nib.AnalyzeImage(_volume(), np.eye(4)), str(tmp_path / "old.hdr"))
    with pytest.raises(SynthSegError, match=r"old\.hdr.*Analyze 7\.5.*no orientation"):
        load_image(tmp_path / "old.hdr")
    nib.save(nib.Nifti1Pair(_volume(), np.eye(4)), str(tmp_path / "half.hdr"))
    (tmp_path / "half.img").unlink()
    with pytest.raises(SynthSegError, match=r"half\.hdr.*\.img file .* is missing"):
        load_image(tmp_path / "half.hdr")
    nib.save(nib.Nifti1Pair(_volume(), np.eye(4)), str(tmp_path / "halfgz.hdr.gz"))
    (tmp_path / "halfgz.hdr.gz").unlink()
    with pytest.raises(SynthSegError, match=r"halfgz\.img\.gz: the \.hdr\.gz file of this header/data pair is missing"):
        load_image(tmp_path / "halfgz.img.gz")


def test_dicom_folder(tmp_path):
    import SimpleITK as sitk

    data = (np.random.default_rng(1).random((6, 7, 8)) * 1000).astype(np.int16)  # (k, j, i) for ITK
    itk = sitk.GetImageFromArray(data)
    itk.SetSpacing((1.0, 1.5, 2.0))
    folder = tmp_path / "series"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(data.shape[0]):
        sl = itk[:, :, k]
        sl.SetMetaData("0020|000e", "1.2.3.4")  # one series
        sl.SetMetaData("0020|0013", str(k))
        sl.SetMetaData("0020|0032", f"0\\0\\{2.0 * k}")
        sl.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(sl)
    image = load_image(folder)
    assert image.shape == (8, 7, 6)
    assert np.allclose(image.spacing, (1.0, 1.5, 2.0), atol=1e-3)
    assert np.array_equal(image.data[:, :, 2].T, data[2])


def test_write_is_atomic_and_refuses_to_overwrite_input(tmp_path):
    path = write_nifti(tmp_path / "x.nii.gz", _volume())
    image = load_image(path)
    with pytest.raises(SynthSegError, match="refusing to overwrite an input"):
        save_image(image, path, protect=(path,))
    save_image(image, tmp_path / "y.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz", "y.nii.gz"]  # no temporary left over


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    image = Image(_volume(), np.eye(4))

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken)
    with pytest.raises(OSError):
        save_image(image, tmp_path / "z.nii.gz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
    (lambda p: p.write_text("hello"), "not a readable image"),
    (lambda p: write_nifti(p, np.zeros((8, 8, 8), np.float32)), "same value"),
    (lambda p: write_nifti(p, np.ones((4, 5), np.float32)), "2D"),
    (lambda p: write_nifti(p, _volume()[:2]), r"2 slice\(s\) along axis 0"),
    (lambda p: write_nifti(p, np.ones((4, 5, 6, 3), np.float32)), "3 frames"),
    (lambda p: write_nifti(p, np.full((6, 6, 6), np.nan, np.float32)), "NaN/Inf voxels, and no other"),
    (lambda p: write_nifti(p, np.where(_volume() > 0.5, np.nan, 1).astype(np.float32)), "all finite voxels have the same"),
    (lambda p: write_nifti(p, _volume(), np.zeros((4, 4))), "singular"),
    (lambda p: write_nifti(p, _volume(), np.diag([30.0, 1, 1, 1])), "absurd voxel size"),
    (lambda p: write_nifti(p, _volume(), np.diag([0.001, 0.001, 0.001, 1])), r"absurd voxel size 0.001x.*other units"),
])
def test_invalid_images_are_refused_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.nii"
    make(path)
    with pytest.raises(SynthSegError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_gzip(tmp_path):
    path = write_nifti(tmp_path / "t.nii.gz", _volume(shape=(30, 30, 30)))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SynthSegError, match="truncated or corrupt|not a readable"):
        load_image(path)


def test_voxel_budget_is_checked_from_the_header(tmp_path):
    path = write_nifti(tmp_path / "big.nii", _volume())
    with pytest.raises(SynthSegError, match="memory budget"):
        load_image(path, max_voxels=100)


def test_label_map_detection():
    blocks = np.random.default_rng(0).integers(0, 17, (5, 5, 5)).astype(np.uint8)
    labels = np.kron(blocks, np.ones((8, 8, 8), np.uint8))  # regions of one value, as in any label map
    assert looks_like_label_map(labels) == len(np.unique(blocks))
    assert looks_like_label_map(_volume()) is None


def test_a_scan_stored_with_few_grey_levels_is_not_a_label_map():
    rng = np.random.default_rng(1)
    smooth = np.kron(rng.random((5, 5, 5)), np.ones((4, 4, 4)))
    scan = np.round(31 * np.clip(smooth + rng.normal(0, 0.05, smooth.shape), 0, 1)).astype(np.uint8)  # 5 bits
    assert len(np.unique(scan)) <= 32 and flat_share(scan) < LABEL_MAP_FLAT_SHARE
    assert looks_like_label_map(scan) is None


def test_a_label_map_holds_non_negative_whole_codes(tmp_path):
    codes = np.zeros((6, 6, 6), np.float32)
    codes[2:4, 2:4, 2:4] = 17
    image = read_label_map(write_nifti(tmp_path / "ok.nii.gz", codes))
    assert image.data.dtype == np.int32 and set(np.unique(image.data)) == {0, 17}
    for name, data, reason in (("intensity", codes + 0.5, "non-integer values"), ("negative", codes - 1, "negative"),
                               ("empty", np.zeros_like(codes), "empty"), ("nan", np.where(codes > 0, np.nan, 0), "NaN")):
        with pytest.raises(SynthSegError, match=reason) as error:
            read_label_map(write_nifti(tmp_path / f"{name}.nii.gz", data))
        assert f"{name}.nii.gz" in str(error.value)
    assert read_label_map(tmp_path / "empty.nii.gz", allow_empty=True).data.max() == 0  # a prediction may be empty


@pytest.mark.parametrize("layout", ["C", "F", "flipped"])
def test_a_strided_sample_is_every_nth_value_in_c_order_whatever_the_memory_layout(layout):
    volume = np.arange(7 * 9 * 11, dtype=np.float32).reshape(7, 9, 11)
    data = {"C": volume, "F": np.asfortranarray(volume), "flipped": volume[:, ::-1]}[layout]
    np.testing.assert_array_equal(strided_sample(data, 50), np.array(data).reshape(-1)[:: data.size // 50])
    np.testing.assert_array_equal(strided_sample(data, 10 ** 6), np.array(data).reshape(-1))
