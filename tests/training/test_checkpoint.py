import json

import pytest
import torch

from synthseg.errors import SynthSegError
from synthseg.training.checkpoint import average_checkpoints, list_checkpoints
from synthseg.training.export import export_model
from synthseg.training.trainer import Trainer
from tests.training.test_trainer import _config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two 2-step runs of one tiny network from different seeds: their last checkpoints."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        Trainer(_config("loop.steps=2", "loop.val_every=100", f"loop.seed={seed}"), root / f"seed{seed}",
                progress=False).run()
    return [list_checkpoints(root / f"seed{seed}" / "checkpoints")[-1] for seed in (0, 1)]


def test_average_is_the_mean_of_the_weights_and_says_of_what(two_runs, tmp_path):
    out = average_checkpoints(two_runs, tmp_path / "soup.pt")
    soup = torch.load(out, weights_only=False)
    first, second = (torch.load(p, weights_only=False)["model"] for p in two_runs)
    assert not torch.equal(first["model.0.conv.unit0.conv.weight"], second["model.0.conv.unit0.conv.weight"])
    for name, value in soup["model"].items():
        assert torch.allclose(value, (first[name] + second[name]) / 2)
    assert [s["seed"] for s in soup["averaged_from"]] == [0, 1]
    assert [s["step"] for s in soup["averaged_from"]] == [2, 2]
    assert "optimizer" not in soup and soup["step"] == 2
    card = json.loads(export_model(out, tmp_path / "model").read_text(encoding="utf-8"))
    assert card["training"]["averaged_from"] == soup["averaged_from"] and card["training"]["total_steps"] == 2


def test_an_average_is_exported_not_resumed(two_runs, tmp_path):
    out = average_checkpoints(two_runs, tmp_path / "soup.pt")
    with pytest.raises(SynthSegError, match="not a training state to resume"):
        Trainer(_config("loop.steps=3"), tmp_path / "run", resume=str(out), progress=False)


def test_checkpoints_of_other_networks_or_too_few_are_refused(two_runs, tmp_path):
    Trainer(_config("loop.steps=1", "loop.val_every=100", "model.channels=[4,8,8]"), tmp_path / "other",
            progress=False).run()
    other = list_checkpoints(tmp_path / "other" / "checkpoints")[-1]
    with pytest.raises(SynthSegError, match="another network or on another working grid") as error:
        average_checkpoints([two_runs[0], other], tmp_path / "soup.pt")
    assert str(other) in str(error.value)
    Trainer(_config("loop.steps=1", "loop.val_every=100", "generator.spacing=3.0"), tmp_path / "grid",
            progress=False).run()
    with pytest.raises(SynthSegError, match="another working grid"):
        average_checkpoints([two_runs[0], list_checkpoints(tmp_path / "grid" / "checkpoints")[-1]], tmp_path / "soup.pt")
    with pytest.raises(SynthSegError, match="at least two"):
        average_checkpoints(two_runs[:1], tmp_path / "soup.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SynthSegError, match="not a synthseg training checkpoint"):
        average_checkpoints([two_runs[0], tmp_path / "junk.pt"], tmp_path / "soup.pt")
    assert not (tmp_path / "soup.pt").exists()
