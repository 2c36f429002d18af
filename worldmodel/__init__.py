"""The seed's 1-D particle environment and an MLX world model of it."""

from .checkpoint import CheckpointError, load_model, read_config, save_model
from .data import DatasetError, Transitions, generate, uniform_transitions
from .env import PUSHES, ParticleEnv, one_hot_pushes
from .folded import FoldedWorldModel
from .model import EnsembleWorldModel, WorldModel, model_from_config
from .train import TrainConfig, TrainResult, one_step_mse, train

__all__ = [
    "CheckpointError",
    "DatasetError",
    "EnsembleWorldModel",
    "FoldedWorldModel",
    "PUSHES",
    "ParticleEnv",
    "TrainConfig",
    "TrainResult",
    "Transitions",
    "WorldModel",
    "generate",
    "load_model",
    "model_from_config",
    "one_hot_pushes",
    "one_step_mse",
    "read_config",
    "save_model",
    "train",
    "uniform_transitions",
]
