import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from synthseg import __version__
from synthseg.cli.main import main
from synthseg.inference.catalog import DEFAULT_MODEL, shipped_models_dir
from tests.conftest import write_nifti


def test_help_version_labels_and_models_do_not_import_torch():
    code = ("import sys; from synthseg.cli.main import main; main(['labels', '--format', 'tsv']); main(['models']);"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import at parse time'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("index\tname")
    card = json.loads((shipped_models_dir() / DEFAULT_MODEL / "model.json").read_text())
    steps = card["training"]["total_steps"]
    assert f"{DEFAULT_MODEL} (default): 2.0 mm, {steps:,} training steps, experts " in proc.stdout
    exe = shutil.which("synthseg")
    out = subprocess.run([exe, "--version"], capture_output=True, encoding="utf-8")
    assert out.stdout.strip() == f"synthseg {__version__}"
    helps = subprocess.run([exe, "segment", "--help"], capture_output=True, encoding="utf-8").stdout
    for option in ("--tta", "--no-tta", "--no-experts", "--volumes", "--posteriors", "--qc", "--png", "--skip-existing", "--device"):
        assert option in helps
    from synthseg.inference.pose import POSE_TURN_DEGREES
    assert f"turned more than {POSE_TURN_DEGREES:g} degrees" in " ".join(helps.split())  # the help says the real threshold


def test_end_to_end_demo_through_the_installed_command(tmp_path, tiny_model):
    exe = shutil.which("synthseg")
    proc = subprocess.run([exe, "demo", "-o", str(tmp_path), "--model", str(tiny_model), "--device", "cpu"],
                          capture_output=True, encoding="utf-8", timeout=300)
    assert proc.returncode == 0, proc.stderr
    labels = nib.load(str(tmp_path / "phantom_t1_dseg.nii.gz"))
    image = nib.load(str(tmp_path / "phantom_t1.nii.gz"))
    assert labels.shape == image.shape and np.allclose(labels.affine, image.affine)
    assert (tmp_path / "phantom_t1_dseg.png").stat().st_size > 1000
    assert "results:" in proc.stdout and "Dice against the phantom" in proc.stdout


def test_export_adds_a_contrast_expert_that_segment_uses_unless_told_not_to(tmp_path, tiny_model, tiny_checkpoint,
                                                                          phantom_t1, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    assert main(["export", str(tiny_checkpoint), "-o", str(model), "--fine"]) == 1  # whose fine grid?
    assert "--fine needs --expert" in capsys.readouterr().err
    assert main(["export", str(tiny_checkpoint), "-o", str(model), "--expert", "t1"]) == 0
    assert "added expert" in capsys.readouterr().out
    assert main(["calibrate", str(model), "--device", "cpu"]) == 1  # one MR expert: nothing to choose between
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "at least two MR experts" in err
    assert "routing" not in json.loads((model / "model.json").read_text(encoding="utf-8"))
    assert [e["contrast"] for e in json.loads((model / "model.json").read_text(encoding="utf-8"))["experts"]] == ["t1"]
    for flag, expected in (("--experts", "t1"), ("--no-experts", None)):
        out = tmp_path / flag
        assert main(["segment", str(phantom_t1[0]), "-o", str(out), "--model", str(model), "--qc", "--device", "cpu",
                     "--no-tta", flag]) == 0
        qc = json.loads((out / "phantom_t1_qc.json").read_text(encoding="utf-8"))
        assert (qc["expert"] or {}).get("contrast") == expected


def test_bias_correct_reaches_the_segmenter(tmp_path, tiny_model, phantom_t1_8mm):
    from synthseg.inference.segmenter import Segmenter

    scan, affine = phantom_t1_8mm
    biased = write_nifti(tmp_path / "biased.nii.gz", scan * np.linspace(0.6, 1.6, scan.shape[0])[:, None, None], affine)
    assert main(["segment", str(biased), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--device", "cpu",
                 "--no-tta", "--bias-correct"]) == 0
    labels = np.asarray(nib.load(str(tmp_path / "out" / "biased_dseg.nii.gz")).dataobj)
    expected = {flag: np.asarray(Segmenter(tiny_model, device="cpu", tta=False, bias_correct=flag).segment(biased)
                                 .labels.dataobj) for flag in (True, False)}
    assert np.array_equal(labels, expected[True]) and not np.array_equal(labels, expected[False])


def test_voxel_size_reaches_the_segmenter_and_the_montage(tmp_path, tiny_model, phantom_t1):
    path, _, _ = phantom_t1
    assert main(["segment", str(path), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--device", "cpu",
                 "--no-tta", "--voxel-size", "2", "--png"]) == 0
    labels = nib.load(str(tmp_path / "out" / f"{path.name[:-7]}_dseg.nii.gz"))
    assert np.allclose(labels.header.get_zooms(), 2.0) and (tmp_path / "out" / f"{path.name[:-7]}_dseg.png").exists()
    assert main(["segment", str(path), "-o", str(tmp_path / "bad"), "--model", str(tiny_model),
                 "--voxel-size", "0"]) == 1
    assert not (tmp_path / "bad").exists()  # refused before any folder is made


def test_templates_generate_and_evaluate_commands(tmp_path, phantom_small, capsys):
    labels, affine = phantom_small
    source = write_nifti(tmp_path / "head.nii.gz", labels.astype(np.int16), affine)
    assert main(["templates", "import", str(source), "--recipe", "siam16", "-o", str(tmp_path / "lib")]) == 0
    assert main(["templates", "list", str(tmp_path / "lib")]) == 0
    assert "head" in capsys.readouterr().out
    png = tmp_path / "head.png"
    assert main(["templates", "show", str(tmp_path / "lib" / "head.nii.gz"), "--png", str(png)]) == 0
    assert png.exists()
    assert main(["generate", "--templates", str(tmp_path / "lib"), "-n", "2", "-o", str(tmp_path / "gen"),
                 "--set", "generator.patch_size=[32,32,32]", "--set", "generator.spacing=4.0", "--params"]) == 0
    pair = tmp_path / "gen" / "sample_000_labels.nii.gz"
    assert pair.exists() and (tmp_path / "gen" / "montage.png").exists()
    assert json.loads((tmp_path / "gen" / "sample_001_params.json").read_text(encoding="utf-8"))["seed"] >= 0
    capsys.readouterr()
    assert main(["evaluate", str(pair), "--reference", str(pair), "--csv", str(tmp_path / "e.csv")]) == 0
    assert "mean" in capsys.readouterr().out and (tmp_path / "e.csv").read_text(encoding="utf-8").count("\n") > 5
    assert main(["evaluate", str(pair), str(tmp_path / "gen" / "sample_001_labels.nii.gz"), "--consistency"]) == 0


def test_errors_are_one_line_with_non_zero_exit(tmp_path, capsys):
    assert main(["templates", "list", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nowhere" in err
    assert main(["train", "-o", str(tmp_path / "run"), "--set", "optim.lrr=1"]) == 1
    assert "optim.lrr" in capsys.readouterr().err
    assert main(["average", str(tmp_path / "missing.pt"), str(tmp_path / "other.pt"), "-o", str(tmp_path / "soup.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.pt" in err and not (tmp_path / "soup.pt").exists()


@pytest.mark.parametrize("argv, message", [
    (["generate", "--templates", "phantom", "-n", "0", "-o", "OUT"], "argument -n: must be >= 1, got 0"),
    (["segment", "scan.nii.gz", "--threads", "-1", "-o", "OUT"], "argument --threads: must be >= 0, got -1"),
    (["segment", "scan.nii.gz", "--threads", "two", "-o", "OUT"], "expected a whole number, got 'two'"),
])
def test_bad_numbers_are_usage_errors_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([str(out) if a == "OUT" else a for a in argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err and not out.exists()


def test_contrast_reaches_the_segmenter_and_a_model_without_that_expert_refuses_it(tmp_path, tiny_model, phantom_t1,
                                                                                  capsys):
    out = tmp_path / "out"
    code = main(["segment", str(phantom_t1[0]), "-o", str(out), "--model", str(tiny_model), "--contrast", "t2"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert err.endswith("contrast must be 'auto' or one of the model's MR experts (none), got 't2'")
    assert not list(out.glob("*_dseg.nii.gz"))
