import json
import math
from pathlib import Path

import pytest

from synthseg.errors import SynthSegError
from synthseg.training.config import TrainConfig, default_config_path, load_config


def test_default_yaml_documents_every_field():
    import dataclasses

    import yaml

    raw = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    config = TrainConfig()
    for section in dataclasses.fields(config):
        names = {f.name for f in dataclasses.fields(getattr(config, section.name))}
        assert set(raw[section.name]) == names, section.name
    plain = lambda c: json.loads(json.dumps(c.to_dict()))  # noqa: E731 - YAML lists vs default tuples
    assert plain(load_config(default_config_path())) == plain(load_config(None))


def test_overrides_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.01\ngenerator:\n  rotation: [-5, 5]\n")
    config = load_config(path, ["loop.steps=7", "generator.elastic_std=false"])
    assert config.optim.lr == 0.01 and config.loop.steps == 7
    assert config.generator.rotation == [-5.0, 5.0] and config.generator.elastic_std is False


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown config field 'optim.lrr'"),
    ("optim.lr=fast", "optim.lr: expected a number"),
    ("loop.steps=1.5", "loop.steps: expected an integer"),
    ("loop.steps=0", "loop.steps must be > 0"),
    ("validation.real_every=-1", "validation.real_every must be >= 0"),
    ("generator.scaling=-0.1", "generator.scaling"),
    ("generator.patch_size=[30,32,32]", "divisible by 16"),
    ("model.norm=group", "model.norm"),
    ("nosection=1", "unknown config field 'nosection'"),
    ("optim=3", "section 'optim' must be a mapping"),
    ("steps", "must look like section.key=value"),
    ("distill.weight=-1", "distill.weight must be >= 0"),
    ("distill.weight=0.5", "distill.teacher is empty"),
    ("distill.contrast=ct", "distill.contrast must be one of t1, t2, flair, pd"),
])
def test_bad_configs_name_the_field(override, message):
    with pytest.raises(SynthSegError, match=message):
        load_config(None, [override])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(SynthSegError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(SynthSegError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_project_configs_load_and_fit_the_network(path):
    config = load_config(path)
    factor = math.prod(config.model.strides)
    assert all(n % factor == 0 for n in config.generator.patch_size)
    assert len(config.model.strides) == len(config.model.channels) - 1
    assert config.loop.steps <= config.optim.total_steps
