"""Training: typed config, the loop, checkpoints and model export."""

from synthseg.training.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config"]
