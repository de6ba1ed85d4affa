"""adadim.training: data, models, losses, the weight controller, the loop and the CLI.

``train(load_config("digits", ["method=simclr"]))`` trains one run and returns its summary;
``setup`` and ``train_step`` are the loop's pieces for callers that drive it themselves.
"""

from .config import ConfigError, TrainConfig, load_config
from .controller import METHODS
from .trainer import NonFiniteLoss, Run, setup, train, train_step

__all__ = [
    "METHODS",
    "ConfigError",
    "NonFiniteLoss",
    "Run",
    "TrainConfig",
    "load_config",
    "setup",
    "train",
    "train_step",
]
