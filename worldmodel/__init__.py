"""What is simulated and what is learned: environments (:mod:`worldmodel.envs`), transition data,
MLX world models of them, their training, checkpoints and the model-based RL loop."""

from .checkpoint import CheckpointError, load_model, read_config, save_model
from .data import DatasetError, Transitions, generate, uniform_transitions
from .envs.particle import PUSHES, Particle, ParticleEnv, one_hot_pushes
from .folded import FoldedWorldModel
from .model import EnsembleWorldModel, WorldModel, model_from_config
from .train import TrainConfig, TrainResult, one_step_mse, train

__all__ = [
    "CheckpointError",
    "DatasetError",
    "EnsembleWorldModel",
    "FoldedWorldModel",
    "PUSHES",
    "Particle",
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
