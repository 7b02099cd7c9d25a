import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthseg.cli.main import main
from synthseg.inference.batch import collect_inputs, output_targets
from tests.conftest import free_port, write_nifti


def _inputs(tmp_path, phantom_t1, n=3):
    path, _, affine = phantom_t1
    import nibabel as nib

    data = nib.load(str(path)).get_fdata().astype(np.float32)
    folder = tmp_path / "in"
    return [write_nifti(folder / f"scan{i}.nii.gz", np.roll(data, i, axis=0), affine) for i in range(n)]


def test_batch_with_a_corrupt_file_finishes_the_others(tmp_path, phantom_t1, tiny_model, capsys):
    inputs = _inputs(tmp_path, phantom_t1)
    corrupt = tmp_path / "in" / "broken.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b garbage")
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
                 "--no-tta", "--volumes", str(tmp_path / "vol.csv"), "--qc", "--png"])
    err = capsys.readouterr().err
    assert code == 1 and "broken.nii.gz" in err and err.count("failed:") == 1
    for path in inputs:
        stem = path.name[:-7]
        assert (out / f"{stem}_dseg.nii.gz").exists() and (out / f"{stem}_dseg.png").exists()
        assert (out / f"{stem}_qc.json").exists()
    assert not (out / "broken_dseg.nii.gz").exists()
    rows = list(csv.DictReader(open(tmp_path / "vol.csv", encoding="utf-8")))
    assert len(rows) == 3 and float(rows[0]["ICV"]) > 0
    assert (out / "dseg.tsv").exists() and (out / "synthseg_provenance.json").exists()
    files = json.loads((out / "synthseg_provenance.json").read_text(encoding="utf-8"))["files"]
    assert sorted(files) == sorted(map(str, inputs))  # the failed input has no entry
    for path in inputs:  # what was done to each input, as its _qc.json says, and how long it took
        qc = json.loads((out / f"{path.name[:-7]}_qc.json").read_text(encoding="utf-8"))
        entry = files[str(path)]
        assert entry["timings"]["total_s"] > 0 and entry["modality"] == "mr" and 0 < entry["brain_confidence"] <= 1
        assert {k: v for k, v in entry.items() if k != "timings"} == {
            k: v for k, v in qc.items() if k not in ("volumes_ml", "structures")}
        cut = " ".join(qc["brain_at_edges_cm2"])  # the CSV's word for the QC's cut sides
        assert next(r["brain_cut"] for r in rows if r["input"] == str(path)) == cut


def test_hemispheres_add_left_and_right_volumes_to_the_csv_and_the_plane_to_the_qc(tmp_path, phantom_t1, tiny_model,
                                                                                  capsys, monkeypatch):
    """The wiring only (the plane itself: tests/inference/test_hemispheres.py): the first scan gets a plane through
    world x = 0, the second none (the tiny model's labels find too few brain structures for a real one)."""
    import synthseg.inference.segmenter as segmenter_module
    from synthseg.inference.hemispheres import MidsagittalPlane, NoMidsagittalPlane

    _inputs(tmp_path, phantom_t1, n=2)
    planes = iter([MidsagittalPlane((1.0, 0.0, 0.0), 0.0, 0.7), NoMidsagittalPlane("a reason")])

    def fake_plane(probs, affine):
        plane = next(planes)
        if isinstance(plane, Exception):
            raise plane
        return plane

    monkeypatch.setattr(segmenter_module, "midsagittal_plane", fake_plane)
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
                 "--no-tta", "--hemispheres", "--volumes", str(tmp_path / "vol.csv"), "--qc"]) == 0
    assert "scan1.nii.gz: warning: hemispheres not split: a reason" in capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "vol.csv", encoding="utf-8")))
    assert list(rows[0])[-2:] == ["Hippo_left", "Hippo_right"] and len(rows[0]) == 1 + 17 + 1 + 24
    split = json.loads((out / "scan0_qc.json").read_text(encoding="utf-8"))["hemispheres"]
    assert split["plane"]["normal_ras"] == [1.0, 0.0, 0.0]
    for short in ("GM", "WM", "CSF", "Thal", "Hippo"):  # the structure's volume, split
        left, right = float(rows[0][f"{short}_left"]), float(rows[0][f"{short}_right"])
        assert left == split["left"][short] and left + right == pytest.approx(float(rows[0][short]), abs=2e-3)
    assert rows[1]["GM_left"] == "" and "hemispheres" not in json.loads((out / "scan1_qc.json").read_text())
    labels, sides = nib.load(str(out / "scan0_dseg.nii.gz")), nib.load(str(out / "scan0_hemi.nii.gz"))
    assert sides.get_data_dtype() == np.uint8 and np.array_equal(sides.affine, labels.affine)
    brain = np.isin(np.asarray(labels.dataobj), range(1, 13))
    world_x = nib.affines.apply_affine(sides.affine, np.argwhere(brain))[:, 0]
    assert np.array_equal(np.asarray(sides.dataobj)[brain], np.where(world_x > 0, 2, 1))  # 1 left, 2 right
    assert not np.asarray(sides.dataobj)[~brain].any() and not (out / "scan1_hemi.nii.gz").exists()
    assert collect_inputs([out])[0] == []  # outputs are never taken for inputs


def test_missing_inputs_leave_nothing_behind(tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["segment", "missing.nii.gz", "--model", str(tiny_model), "--device", "cpu"])
    assert code == 1 and "missing.nii.gz: no such file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no provenance in the working folder


def test_skip_existing_really_skips_and_existing_outputs_are_protected(tmp_path, phantom_t1, tiny_model, capsys):
    inputs = _inputs(tmp_path, phantom_t1, n=2)
    args = ["segment", *map(str, inputs), "--model", str(tiny_model), "--device", "cpu", "--no-tta"]
    assert main(args) == 0
    output = inputs[0].parent / "scan0_dseg.nii.gz"  # next to the input when -o is omitted
    before = output.stat().st_mtime_ns
    assert "outputs next to each input" in capsys.readouterr().out
    assert main(args + ["--skip-existing"]) == 0
    assert "skipped 2" in capsys.readouterr().out and output.stat().st_mtime_ns == before
    provenance = inputs[0].parent / "synthseg_provenance.json"
    record = provenance.read_text(encoding="utf-8")
    assert main(args) == 1
    assert "output exists" in capsys.readouterr().err
    assert provenance.read_text(encoding="utf-8") == record  # a run that wrote nothing keeps the last record
    assert main(args + ["--overwrite"]) == 0 and output.stat().st_mtime_ns != before
    assert provenance.read_text(encoding="utf-8") != record


def test_output_may_name_the_label_file_of_a_single_input(tmp_path, phantom_t1, tiny_model, capsys):
    inputs = _inputs(tmp_path, phantom_t1, n=2)
    target = tmp_path / "results" / "sub01_dseg.nii.gz"
    common = ["--model", str(tiny_model), "--device", "cpu", "--no-tta"]
    assert main(["segment", str(inputs[0]), "-o", str(target), *common, "--qc", "--posteriors", "--png"]) == 0
    assert "outputs in" in capsys.readouterr().out
    labels = nib.load(str(target))
    assert target.is_file() and labels.shape == nib.load(str(inputs[0])).shape
    names = sorted(p.name for p in target.parent.iterdir())
    assert names == ["dseg.tsv", "sub01_dseg.nii.gz", "sub01_dseg.png", "sub01_probseg.nii.gz", "sub01_qc.json",
                     "synthseg_provenance.json"]
    for bad, message in ([[str(p) for p in inputs], "2 inputs"], [[str(inputs[0])], "NIfTI"]):
        out = tmp_path / ("many.nii.gz" if len(bad) == 2 else "one.mgz")
        assert main(["segment", *bad, "-o", str(out), *common]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(out) in err and message in err and not out.exists()


def test_list_files_folders_and_recursion(tmp_path, phantom_t1):
    inputs = _inputs(tmp_path, phantom_t1, n=2)
    nested = tmp_path / "in" / "sub"
    nested.mkdir()
    (nested / "deep.nii").write_bytes(inputs[0].read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_text(f"# scans\n{inputs[0]}\nin/scan1.nii.gz\n")
    found, errors = collect_inputs([listing])
    assert found == [inputs[0], tmp_path / "in" / "scan1.nii.gz"] and not errors
    assert len(collect_inputs([tmp_path / "in"])[0]) == 2
    assert len(collect_inputs([tmp_path / "in"], recursive=True)[0]) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no images" in collect_inputs([empty])[1][0]


def test_a_folder_lists_a_nifti_pair_once_by_its_header(tmp_path):
    nib.save(nib.Nifti1Pair(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(tmp_path / "spm.hdr"))
    nib.save(nib.Nifti1Pair(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(tmp_path / "zipped.hdr.gz"))
    found, errors = collect_inputs([tmp_path])
    assert found == [tmp_path / "spm.hdr", tmp_path / "zipped.hdr.gz"] and not errors
    assert output_targets(tmp_path / "spm.img", None)["labels"] == tmp_path / "spm_dseg.nii.gz"
    assert output_targets(tmp_path / "zipped.img.gz", None)["labels"] == tmp_path / "zipped_dseg.nii.gz"


KILL_ON_SECOND = """
import os, signal, sys
import nibabel as nib
from synthseg.cli.main import main
real = nib.save
calls = {"n": 0}
def dying(img, path, *a, **k):
    calls["n"] += 1
    if calls["n"] == 2:
        with open(path, "wb") as handle:
            handle.write(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    return real(img, path, *a, **k)
nib.save = dying
sys.exit(main(sys.argv[1:]))
"""


def test_interrupted_run_leaves_no_partial_output_and_skip_existing_completes_it(tmp_path, phantom_t1, tiny_model):
    _inputs(tmp_path, phantom_t1, n=3)
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
            "--no-tta"]
    proc = subprocess.run([sys.executable, "-c", KILL_ON_SECOND, *args], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert [n for n in visible if n.endswith("_dseg.nii.gz")] == ["scan0_dseg.nii.gz"]
    assert main(args + ["--skip-existing"]) == 0
    names = sorted(os.listdir(out))
    assert [n for n in names if n.endswith("_dseg.nii.gz")] == [f"scan{i}_dseg.nii.gz" for i in range(3)]
    assert not [n for n in names if ".tmp" in n]


def test_torchrun_splits_inputs_and_merges_one_volumes_csv(tmp_path, phantom_t1, tiny_model):
    _inputs(tmp_path, phantom_t1, n=3)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={free_port()}", "-m", "synthseg.cli.main", "segment", str(tmp_path / "in"),
                           "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
                           "--no-tta", "--volumes", str(tmp_path / "vol.csv")], capture_output=True, encoding="utf-8", env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*_dseg.nii.gz")) == [f"scan{i}_dseg.nii.gz" for i in range(3)]
    rows = list(csv.DictReader(open(tmp_path / "vol.csv", encoding="utf-8")))
    assert sorted(Path(r["input"]).name for r in rows) == [f"scan{i}.nii.gz" for i in range(3)]
