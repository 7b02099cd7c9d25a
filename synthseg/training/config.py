"""Typed training configuration: dataclasses loaded from YAML, with ``key.sub=value`` overrides.

Every hyper-parameter lives here (``default.yaml`` documents them all); a wrong key or a value of
the wrong type is a :class:`SynthSegError` naming the field.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from synthseg.device import AMP_MODES
from synthseg.errors import SynthSegError, check_choice
from synthseg.synthesis.config import GeneratorConfig
from synthseg.synthesis.tissues import MR_CONTRASTS


@dataclass
class DataConfig:
    templates: str = ""  # template folder made by `synthseg templates import` ("phantom" = built-in)
    holdout: list[str] = field(default_factory=list)  # template names kept for synthetic validation
    exclude: list[str] = field(default_factory=list)  # template names not used at all


@dataclass
class ModelConfig:
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    strides: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    num_res_units: int = 1
    norm: str = "instance"
    dropout: float = 0.0
    init_weights: str = ""  # start from exported weights (a model folder or model.pt); ignored on --resume


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    total_steps: int = 20000  # length of the cosine decay
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    dice_weight: float = 1.0
    ce_weight: float = 1.0


@dataclass
class LoopConfig:
    steps: int = 20000
    batch_size: int = 1
    device: str = "auto"  # auto | cpu | cuda[:N] | mps
    amp: str = "auto"  # auto (bf16 on CUDA and on CPUs with native bf16, else off) | off | bf16 | fp16
    threads: int = 0  # CPU threads, 0 = torch's default
    seed: int = 0
    log_every: int = 10
    val_every: int = 250
    val_samples: int = 6
    png_every: int = 500  # 0 = no PNG
    checkpoint_every_steps: int = 250
    checkpoint_every_minutes: float = 5.0
    keep_last: int = 3


@dataclass
class ValidationConfig:
    real_images: str = ""  # optional folder of real images ...
    real_labels: str = ""  # ... and their reference label maps (matched by sorted order)
    real_mapping: str = "aseg"  # aseg | muse | siam | FILE
    real_every: int = 1000  # 0 = no real-image validation
    real_max_cases: int = 4


@dataclass
class DistillConfig:
    teacher: str = ""  # exported model (a folder holding model.json) whose soft predictions are a second target
    contrast: str = "t1"  # the teacher sees each training draw re-rendered in this MR contrast
    weight: float = 0.0  # weight of the cross-entropy to the teacher's probabilities (0 = off)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_config_path() -> Path:
    return Path(str(resources.files("synthseg.training") / "default.yaml"))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults ← YAML file ← ``key.sub=value`` overrides, then validated."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SynthSegError("config file not found", path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise SynthSegError(f"config is not valid YAML ({str(error).splitlines()[0]})", path) from None
        if not isinstance(data, dict):
            raise SynthSegError("config must be a mapping of sections", path)
    for item in overrides:
        if "=" not in item:
            raise SynthSegError(f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SynthSegError(f"override {item!r}: '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return config_from_dict(data)


def config_from_dict(data: dict) -> TrainConfig:
    """A validated config from nested sections (as in YAML, or a checkpoint's ``config``)."""
    config = _build(TrainConfig, data, "")
    try:
        config.generator.validated()
    except ValueError as error:
        raise SynthSegError(str(error)) from None
    _check(config)
    return config


def _check(config: TrainConfig) -> None:
    loop, optim = config.loop, config.optim
    positive = {"loop.steps": loop.steps, "loop.batch_size": loop.batch_size, "loop.log_every": loop.log_every,
                "loop.val_every": loop.val_every, "loop.checkpoint_every_steps": loop.checkpoint_every_steps,
                "loop.keep_last": loop.keep_last, "optim.lr": optim.lr, "optim.total_steps": optim.total_steps}
    for name, value in positive.items():
        if value <= 0:
            raise SynthSegError(f"config field {name} must be > 0, got {value}")
    for name, value in {"loop.png_every": loop.png_every, "validation.real_every": config.validation.real_every}.items():
        if value < 0:
            raise SynthSegError(f"config field {name} must be >= 0 (0 = off), got {value}")
    check_choice("config field loop.amp", loop.amp, AMP_MODES)
    if config.model.norm not in ("instance", "batch"):
        raise SynthSegError(f"config field model.norm must be instance or batch, got {config.model.norm!r}")
    if len(config.model.strides) != len(config.model.channels) - 1:
        raise SynthSegError("config field model.strides must have one entry fewer than model.channels")
    distill = config.distill
    if distill.weight < 0:
        raise SynthSegError(f"config field distill.weight must be >= 0, got {distill.weight}")
    if distill.weight > 0 and not distill.teacher:
        raise SynthSegError("config field distill.teacher is empty but distill.weight > 0")
    check_choice("config field distill.contrast", distill.contrast, MR_CONTRASTS)
    factor = 1
    for s in config.model.strides:
        factor *= s
    if any(n % factor for n in config.generator.patch_size):
        raise SynthSegError(f"config field generator.patch_size must be divisible by {factor} (the product of "
                            "model.strides)")


def _build(cls, data: Any, prefix: str):
    if not isinstance(data, dict):
        raise SynthSegError(f"config section '{prefix.rstrip('.') or 'root'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise SynthSegError(f"unknown config field '{prefix}{key}'; known: {', '.join(sorted(names))}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        values[f.name] = _coerce(hints[f.name], data[f.name], f"{prefix}{f.name}")
    return cls(**values)


def _coerce(hint, value, name: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name + ".")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _coerce(option, value, name)
            except SynthSegError as error:
                errors.append(error)
        raise SynthSegError(f"config field {name}: {value!r} fits none of the allowed types") from None
    if hint is type(None):
        if value is None:
            return None
        raise SynthSegError(f"config field {name}: expected null, got {value!r}")
    if origin in (list, tuple, collections.abc.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SynthSegError(f"config field {name}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise SynthSegError(f"config field {name}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(a, v, name) for a, v in zip(args, value))
        item = args[0] if args else Any
        out = [_coerce(item, v, name) for v in value]
        return tuple(out) if origin is tuple else out
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise SynthSegError(f"config field {name}: expected true/false, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise SynthSegError(f"config field {name}: expected a number, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SynthSegError(f"config field {name}: expected an integer, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SynthSegError(f"config field {name}: expected a string, got {value!r}")
    raise SynthSegError(f"config field {name}: unsupported type {hint}")
