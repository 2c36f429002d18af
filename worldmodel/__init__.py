"""The seed's 1-D particle environment and an MLX world model of it."""

import planners as _planners  # noqa: F401  (activates the fast BLAS for MLX's matmuls)

from .checkpoint import CheckpointError, load_model, read_config, save_model  # noqa: E402
from .data import DatasetError, Transitions, generate, uniform_transitions  # noqa: E402
from .env import PUSHES, ParticleEnv, one_hot_pushes  # noqa: E402
from .folded import FoldedWorldModel  # noqa: E402
from .model import EnsembleWorldModel, WorldModel, model_from_config  # noqa: E402
from .train import TrainConfig, TrainResult, one_step_mse, train  # noqa: E402

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
