import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from synthseg.errors import SynthSegError
from synthseg.training.checkpoint import list_checkpoints, load_latest
from synthseg.training.config import load_config
from synthseg.training.export import export_model, sha256
from synthseg.training.trainer import Trainer, lr_factor, soft_cross_entropy
from tests.conftest import free_port

TINY = ["data.templates=phantom", "generator.patch_size=[32,32,32]", "generator.spacing=4.0",
        "generator.partial_volume_probability=0", "model.channels=[4,8,16]", "model.strides=[2,2]",
        "loop.val_samples=1", "loop.png_every=0", "loop.log_every=1", "optim.lr=0.01", "optim.warmup_steps=2",
        "loop.threads=2"]


def _config(*extra):
    return load_config(None, TINY + list(extra))


def _losses(run: Path) -> dict[int, float]:
    rows = (run / "log.csv").read_text(encoding="utf-8").splitlines()[1:]
    return {int(r.split(",")[0]): float(r.split(",")[1]) for r in rows}


def test_twenty_steps_lower_the_loss(tmp_path):
    result = Trainer(_config("loop.steps=20", "loop.val_every=20", "loop.png_every=20"), tmp_path,
                     progress=False).run()
    losses = _losses(tmp_path)
    assert np.mean([losses[s] for s in range(16, 21)]) < np.mean([losses[s] for s in range(1, 6)])
    assert result["step"] == 20 and "val_dice_mean" in result
    assert (tmp_path / "checkpoints" / "best.pt").exists() and list((tmp_path / "png").glob("*.png"))
    assert (tmp_path / "tensorboard").is_dir()


def test_real_validation_every_zero_is_off(tmp_path):
    config = _config("loop.steps=2", "loop.val_every=2", "validation.real_images=none",
                     "validation.real_labels=none", "validation.real_every=0")
    result = Trainer(config, tmp_path, progress=False).run()
    assert result["step"] == 2 and "real_dice_mean" not in result


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    Trainer(_config("loop.steps=11", "loop.val_every=100"), full, progress=False).run()
    Trainer(_config("loop.steps=10", "loop.val_every=100", "loop.checkpoint_every_steps=10"), part,
            progress=False).run()
    Trainer(_config("loop.steps=11", "loop.val_every=100"), part, resume=True, progress=False).run()
    assert _losses(part)[11] == pytest.approx(_losses(full)[11], rel=1e-5)


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_only_templates_the_config_holds_out_are_called_held_out(tmp_path):
    trainer = Trainer(_config("loop.steps=1"), tmp_path, progress=False)
    assert trainer.holdout_names == [] and trainer.validation_names == ["phantom-2"]
    assert "phantom-2" in trainer.template_names  # validated on, but trained on too
    held = Trainer(_config("loop.steps=1", "data.holdout=[phantom-2]"), tmp_path / "held", progress=False)
    assert held.holdout_names == held.validation_names == ["phantom-2"]
    assert "phantom-2" not in held.template_names


def test_export_writes_weights_and_card(tmp_path):
    Trainer(_config("loop.steps=2", "loop.val_every=2", "data.holdout=[phantom-2]"), tmp_path, progress=False).run()
    card_path = export_model(list_checkpoints(tmp_path / "checkpoints")[-1], tmp_path / "model")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert card["sha256"] == sha256(tmp_path / "model" / "model.pt")
    assert card["spacing_mm"] == 4.0 and card["patch_size"] == [32, 32, 32] and len(card["labels"]) == 17
    assert card["training"]["steps"] == card["training"]["total_steps"] == 2
    assert card["holdout_templates"] == ["phantom-2"]
    weights = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    again = export_model(list_checkpoints(tmp_path / "checkpoints")[-1], tmp_path / "again")
    assert json.loads(again.read_text(encoding="utf-8"))["sha256"] == card["sha256"]  # byte-reproducible


def test_warm_start_from_exported_weights(tmp_path, capsys):
    Trainer(_config("loop.steps=2", "loop.val_every=2"), tmp_path / "a", progress=False).run()
    export_model(list_checkpoints(tmp_path / "a" / "checkpoints")[-1], tmp_path / "model", fp16=False)
    capsys.readouterr()
    warm = Trainer(_config("loop.steps=2", f"model.init_weights={tmp_path / 'model'}"), tmp_path / "b",
                   progress=False)
    exported = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    assert all(torch.equal(v, exported[k]) for k, v in warm.model.state_dict().items())
    assert warm.step == 0
    assert "replays its first 2 training draws" in capsys.readouterr().err  # same seed as the weights
    Trainer(_config("loop.steps=2", "loop.seed=1", f"model.init_weights={tmp_path / 'model'}"), tmp_path / "c",
            progress=False).run()
    assert "replays" not in capsys.readouterr().err
    Trainer(_config("loop.steps=3", "loop.seed=1", f"model.init_weights={tmp_path / 'model'}"), tmp_path / "c",
            resume=True, progress=False).run()  # the count of the initial weights survives a resume
    card = json.loads(export_model(list_checkpoints(tmp_path / "c" / "checkpoints")[-1], tmp_path / "c" / "model")
                      .read_text(encoding="utf-8"))
    assert card["training"]["steps"] == 3 and card["training"]["total_steps"] == 2 + 3


def test_soft_cross_entropy_known_values():
    probabilities = torch.softmax(torch.randn(2, 5, 3, 3, 3, generator=torch.Generator().manual_seed(0)), 1)
    assert float(soft_cross_entropy(torch.zeros(2, 5, 3, 3, 3), probabilities)) == pytest.approx(np.log(5))
    entropy = -(probabilities * probabilities.log()).sum(1).mean()
    assert float(soft_cross_entropy(probabilities.log(), probabilities)) == pytest.approx(float(entropy))


def test_distillation_alone_pulls_the_student_towards_the_teacher(tiny_model, tmp_path):
    student = _config("loop.steps=25", "loop.val_every=25", "generator.mode=t2", "optim.dice_weight=0",
                      "optim.ce_weight=0", f"distill.teacher={tiny_model}", "distill.weight=1")
    Trainer(student, tmp_path, progress=False).run()
    rows = (tmp_path / "log.csv").read_text(encoding="utf-8").splitlines()
    column = rows[0].split(",").index("distill")
    distill = [float(r.split(",")[column]) for r in rows[1:]]
    assert np.mean(distill[-5:]) < 0.8 * np.mean(distill[:5])


def test_teacher_at_another_voxel_size_is_refused(tiny_model, tmp_path):
    with pytest.raises(SynthSegError, match="teacher works at 4.0 mm, training at 2.0 mm"):
        Trainer(_config("generator.spacing=2.0", f"distill.teacher={tiny_model}", "distill.weight=1"), tmp_path,
                progress=False)


KILL_SCRIPT = """
import os, signal, sys, torch
from synthseg.training import checkpoint
from synthseg.training.config import load_config
from synthseg.training.trainer import Trainer
calls = {"n": 0}
real_save = torch.save
def dying_save(obj, path, *a, **k):
    calls["n"] += 1
    if calls["n"] == 3:  # third checkpoint: write half a file, then die without cleanup
        with open(path, "wb") as handle:
            handle.write(b"partial")
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, path, *a, **k)
checkpoint.torch.save = dying_save
Trainer(load_config(None, sys.argv[2:]), sys.argv[1], progress=False).run()
"""


def test_sigkill_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path):
    overrides = TINY + ["loop.steps=6", "loop.val_every=100", "loop.checkpoint_every_steps=1", "loop.keep_last=5"]
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path), *overrides], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    steps = [int(p.stem.split("_")[1]) for p in list_checkpoints(tmp_path / "checkpoints")]
    assert steps == [1, 2]  # step 3 never became a checkpoint; its partial temporary is ignored
    state, path = load_latest(tmp_path / "checkpoints")
    assert state["step"] == 2
    trainer = Trainer(load_config(None, overrides), tmp_path, resume=True, progress=False)
    assert trainer.step == 2
    assert trainer.run()["step"] == 6


def test_sigterm_saves_a_checkpoint_then_exits(tmp_path):
    overrides = TINY + ["loop.steps=100000", "loop.val_every=100000", "loop.checkpoint_every_steps=100000"]
    code = "import sys; from synthseg.cli.main import main; sys.exit(main(sys.argv[1:]))"
    sets = [arg for o in overrides for arg in ("--set", o)]
    proc = subprocess.Popen([sys.executable, "-c", code, "train", "-o", str(tmp_path), *sets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "log.csv").exists():
        time.sleep(0.5)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list_checkpoints(tmp_path / "checkpoints"), proc.stderr.read().decode()[-500:]


def test_two_process_ddp_run_completes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = [arg for o in TINY + ["loop.threads=1", "loop.steps=3", "loop.val_every=3"] for arg in ("--set", o)]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={free_port()}",
                           "-m", "synthseg.cli.main", "train", "-o", str(tmp_path), *sets],
                          capture_output=True, encoding="utf-8", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]  # the ranks' own errors come before torchrun's summary
    assert "2 process(es)" in proc.stderr
    state, _ = load_latest(tmp_path / "checkpoints")
    assert state["step"] == 3
