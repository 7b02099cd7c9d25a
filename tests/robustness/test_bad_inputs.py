"""The bad-input corpus (generated here, never stored): every case gets a one-line reason naming
the file and a non-zero exit, or a result (with a warning where something was repaired), and the
rest of the batch is still done."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthseg.cli.main import main
from synthseg.errors import SynthSegError
from synthseg.inference.result import output_stem
from tests.conftest import write_nifti


def _head(phantom_t1) -> tuple[np.ndarray, np.ndarray]:
    path, _, affine = phantom_t1
    return nib.load(str(path)).get_fdata().astype(np.float32), affine


def _patch_raw(path: Path, offset: int, values, dtype="<f4") -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(np.asarray(values, dtype).tobytes())


def build_corpus(folder: Path, phantom_t1, phantom_small) -> dict[str, tuple[Path, str | None]]:
    """name → (path, expected reason regex, or None for "accepted")."""
    data, affine = _head(phantom_t1)
    small = data[::2, ::2, ::2]
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[Path, str | None]] = {}

    def add(name, expected, writer=None, data_=None, affine_=None, dtype=None):
        path = folder / name
        if writer is not None:
            writer(path)
        else:
            write_nifti(path, small if data_ is None else data_, affine if affine_ is None else affine_, dtype)
        cases[name] = (path, expected)

    add("zero_bytes.nii.gz", r"empty \(0 bytes\)", lambda p: p.write_bytes(b""))
    good = write_nifti(folder / "source.nii.gz", small, affine)
    add("truncated.nii.gz", "truncated or corrupt|not a readable", lambda p: p.write_bytes(
        good.read_bytes()[: good.stat().st_size // 2]))
    add("text_file.nii", "not a readable image", lambda p: p.write_text("this is not an image\n" * 20))
    add("image_2d.nii.gz", "image is 2D", data_=small[:, :, 0])
    add("four_frames.nii.gz", "4D with 4 frames", data_=np.stack([small] * 4, -1))
    add("five_d.nii.gz", "image is 5D", data_=small[..., None, None])
    add("complex.nii.gz", "unsupported voxel type complex64", lambda p: nib.save(
        nib.Nifti1Image(small.astype(np.complex64), affine), str(p)))
    add("nifti2.nii.gz", None, lambda p: nib.save(nib.Nifti2Image(small, affine), str(p)))
    corrupt = small.copy()
    corrupt[0, 0, 0] = -3.4e38  # a float scan's -FLT_MAX in one voxel: clipped, with a warning
    add("corrupt_voxel.nii.gz", None, data_=corrupt)
    add("one_frame_4d.nii.gz", None, data_=small[..., None])
    nan = small.copy()
    nan[3, 3, 3] = np.nan
    add("one_nan.nii.gz", None, data_=nan)  # read as background, with a warning
    inf = small.copy()
    inf[:2] = np.inf
    add("inf.nii.gz", None, data_=inf)
    add("all_nan.nii.gz", "NaN/Inf voxels, and no other", data_=np.full_like(small, np.nan))
    add("all_zero.nii.gz", "same value", data_=np.zeros_like(small))
    add("constant.nii.gz", "same value", data_=np.full_like(small, 7.0))
    add("zero_voxels.nii.gz", "zero voxels", data_=np.zeros((0, 4, 4), np.float32))
    add("singular_affine.nii", "singular", affine_=np.zeros((4, 4)))
    add("single_slice.nii.gz", r"1 slice\(s\) along axis 2", data_=np.ascontiguousarray(small[:, :, :1]))
    add("huge_voxels.nii.gz", "absurd voxel size", affine_=np.diag([25.0, 25.0, 25.0, 1.0]))
    add("tiny_voxels.nii.gz", None, data_=small, affine_=np.diag([0.05, 0.05, 0.05, 1.0]))
    add("header_in_metres.nii.gz", "absurd voxel size", affine_=np.diag([0.004, 0.004, 0.004, 1.0]))
    add("header_in_cm.nii.gz", "far larger than a head", data_=np.random.default_rng(0).random((80, 80, 80), np.float32),
        affine_=np.diag([19.0, 19.0, 19.0, 1.0]))

    def negative_pixdim(p):
        img = nib.Nifti1Image(small, None)
        img.header["qform_code"], img.header["sform_code"] = 0, 0
        nib.save(img, str(p))
        _patch_raw(p, 80, [-4.0, 4.0, 4.0])  # pixdim[1..3], pixdim[1] negative
    add("negative_pixdim.nii", None, negative_pixdim)
    aniso = np.repeat(np.repeat(data[:, :, ::8], 4, 0), 4, 1)[:120, :120]
    add("anisotropic_0.2x0.2x10.nii.gz", None, data_=aniso, affine_=np.diag([0.2 * 4 * 4 / 4, 0.8, 10.0, 1.0]))

    def huge_header(p):
        img = nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.diag([0.4, 0.4, 0.4, 1]))
        nib.save(img, str(p))
        _patch_raw(p, 40, [3, 6000, 6000, 4000], "<i2")  # dim[0..3]: 144 G voxels claimed
    add("huge_field_of_view.nii", "memory budget", huge_header)
    add("uint16.nii.gz", None, data_=(small * 3000).astype(np.uint16))
    add("int8.nii.gz", None, data_=(small * 120).astype(np.int8))
    add("float64.nii.gz", None, data_=small.astype(np.float64))

    def rgb(p):
        rgb_dtype = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
        arr = np.zeros(small.shape, rgb_dtype)
        arr["R"] = (small * 255).astype(np.uint8)
        nib.save(nib.Nifti1Image(arr, affine), str(p))
    add("rgb.nii.gz", "RGB", rgb)
    labels, label_affine = phantom_small
    add("label_map.nii.gz", "looks like a label map", data_=labels, affine_=label_affine)
    add("missing.nii.gz", "no such file", lambda p: None)
    add("empty_folder", "holds no images", lambda p: p.mkdir())
    add("fake_dir.nii.gz", "holds no images|no DICOM", lambda p: p.mkdir())
    add("photo.png", "unsupported format", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100))
    add("with space é.nii.gz", None)
    add("symlink.nii.gz", None, lambda p: p.symlink_to(good))
    add("broken_link.nii.gz", "broken symbolic link", lambda p: p.symlink_to(folder / "gone.nii.gz"))

    def short_data(p):
        write_nifti(p, small, affine)
        p.write_bytes(p.read_bytes()[:-500])
    add("short_uncompressed.nii", "truncated or corrupt|not a readable", short_data)

    def mgz(p):
        nib.save(nib.MGHImage(small, affine), str(p))
    add("scan.mgz", None, mgz)

    def listing(p):
        p.write_text(f"{good}\n{folder / 'listed_but_missing.nii.gz'}\n")
    cases["list.txt"] = (folder / "list.txt", None)
    listing(folder / "list.txt")
    cases["listed_but_missing.nii.gz"] = (folder / "listed_but_missing.nii.gz", "no such file")
    cases["source.nii.gz"] = (good, None)
    return cases


def test_the_corpus_in_one_batch(tmp_path, phantom_t1, phantom_small, tiny_model, capsys):
    cases = build_corpus(tmp_path / "in", phantom_t1, phantom_small)
    assert len(cases) >= 30
    out = tmp_path / "out"
    inputs = [str(p) for name, (p, _) in cases.items() if name != "listed_but_missing.nii.gz"]
    code = main(["segment", *inputs, "-o", str(out), "--model", str(tiny_model), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    failures = [line for line in err.splitlines() if line.startswith("failed: ")]
    for name, (path, expected) in cases.items():
        if name == "list.txt":
            continue
        stem = output_stem(path)
        mine = [line for line in failures if str(path) in line]
        if expected is None:
            assert not mine, f"{name} should be accepted: {mine}"
            assert (out / f"{stem}_dseg.nii.gz").exists(), name
        else:
            assert len(mine) == 1, f"{name}: expected one failure line, got {mine}"
            import re

            assert re.search(expected, mine[0]), f"{name}: {mine[0]!r} does not say {expected!r}"
            assert not (out / f"{stem}_dseg.nii.gz").exists(), f"{name} left an output"
    assert "negative_pixdim.nii: warning: header repaired" in err
    assert "corrupt_voxel.nii.gz: warning: 1 voxel(s) far outside" in err
    assert "sizeof_hdr" not in err  # nibabel's complaint when a NIfTI-2 header is written as NIfTI-1
    leftovers = [p.name for p in out.iterdir() if ".tmp" in p.name]
    assert not leftovers


def test_accepted_outputs_keep_their_input_grids(tmp_path, phantom_t1, tiny_model):
    data, affine = _head(phantom_t1)
    aniso_affine = np.diag([0.2, 0.2, 10.0, 1.0])
    path = write_nifti(tmp_path / "aniso.nii.gz", np.repeat(data[:, :, ::10], 2, 0), aniso_affine)
    assert main(["segment", str(path), "--model", str(tiny_model), "--device", "cpu"]) == 0
    out = nib.load(str(tmp_path / "aniso_dseg.nii.gz"))
    assert out.shape == nib.load(str(path)).shape and np.allclose(out.affine, aniso_affine)


def test_output_folder_problems(tmp_path, phantom_t1, tiny_model, capsys):
    data, affine = _head(phantom_t1)
    path = write_nifti(tmp_path / "x.nii.gz", data, affine)
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    assert main(["segment", str(path), "-o", str(blocker), "--model", str(tiny_model)]) == 1
    assert "not_a_folder" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["demo"], ["generate", "--templates", "phantom", "-n", "1"], ["train", "--templates", "phantom"],
    ["templates", "import", "map.nii.gz", "--recipe", "siam16"], ["export", "step_1.pt"]])
def test_every_command_refuses_an_output_folder_that_is_a_file_before_any_work(tmp_path, command, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    for output, reason in ((blocker, "exists and is not a folder"), (blocker / "sub", "not_a_folder is a file")):
        assert main([*command, "-o", str(output)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(output) in err and reason in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"] and blocker.read_text() == ""


def test_a_volumes_csv_that_cannot_be_written_is_refused_before_segmenting(tmp_path, phantom_t1, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    for volumes, reason in ((blocker / "vol.csv", "cannot write the volumes CSV"), (tmp_path, "names a folder")):
        assert main(["segment", str(phantom_t1[0]), "-o", str(tmp_path / "out"), "--volumes", str(volumes)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(volumes) in err and reason in err
        assert not (tmp_path / "out").exists()


def test_evaluate_scores_the_readable_pairs_and_names_the_one_that_is_not_a_label_map(tmp_path, phantom_t1, capsys):
    path, truth, affine = phantom_t1
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder in (good, bad):
        write_nifti(folder / "head_dseg.nii.gz", truth, affine, np.uint8)
    write_nifti(good / "head.nii.gz", truth, affine, np.uint8)
    write_nifti(bad / "head.nii.gz", _head(phantom_t1)[0], affine)  # the scan given as the reference
    assert main(["evaluate", str(good / "head_dseg.nii.gz"), str(bad / "head_dseg.nii.gz"), "--reference",
                 str(good / "head.nii.gz"), str(bad / "head.nii.gz"), "--no-hd95"]) == 1
    out, err = capsys.readouterr()
    assert "mean         1.000" in out
    assert err.strip() == f"failed: {bad / 'head.nii.gz'}: label map has non-integer values; is this an intensity image?"


def test_consistency_compares_the_readable_segmentations_and_names_the_scan_among_them(tmp_path, phantom_t1, capsys):
    path, truth, affine = phantom_t1
    for contrast in ("t1", "t2"):
        write_nifti(tmp_path / f"{contrast}_dseg.nii.gz", truth, affine, np.uint8)
    scan = tmp_path / "flair.nii.gz"
    write_nifti(scan, _head(phantom_t1)[0], affine)  # a scan among the segmentations
    assert main(["evaluate", str(tmp_path / "t1_dseg.nii.gz"), str(scan), str(tmp_path / "t2_dseg.nii.gz"),
                 "--consistency"]) == 1
    out, err = capsys.readouterr()
    assert "mean        1.000" in out
    assert err.strip() == f"failed: {scan}: label map has non-integer values; is this an intensity image?"


def test_demo_refuses_a_negative_seed(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--seed", "-1"])
    assert exit_.value.code == 2 and "--seed: must be >= 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--model", "no_such_model"], ["--device", "bogus"]])
def test_demo_with_a_bad_model_or_device_writes_nothing(tmp_path, option, capsys):
    assert main(["demo", "-o", str(tmp_path / "demo"), *option]) == 1
    assert option[1] in capsys.readouterr().err and not (tmp_path / "demo").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions, so they cannot be tested as root")
def test_unreadable_file_and_read_only_folder(tmp_path, phantom_t1, tiny_model, capsys):
    data, affine = _head(phantom_t1)
    path = write_nifti(tmp_path / "x.nii.gz", data, affine)
    path.chmod(0)
    assert main(["segment", str(path), "-o", str(tmp_path / "o"), "--model", str(tiny_model)]) == 1
    assert "permission denied" in capsys.readouterr().err
    path.chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    assert main(["segment", str(path), "-o", str(locked), "--model", str(tiny_model)]) == 1
    assert "not writable" in capsys.readouterr().err


def test_output_equal_to_input_is_refused(tmp_path, phantom_t1, tiny_model):
    from synthseg.inference.segmenter import Segmenter

    data, affine = _head(phantom_t1)
    path = write_nifti(tmp_path / "scan_dseg.nii.gz", data, affine)
    result = Segmenter(tiny_model, device="cpu").segment(path)
    with pytest.raises(SynthSegError, match="refusing to overwrite an input"):
        result.save(tmp_path, stem="scan")
    assert nib.load(str(path)).get_data_dtype() == np.float32  # the input is untouched
