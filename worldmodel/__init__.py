"""What is simulated and what is learned: environments (:mod:`worldmodel.envs`), transition data,
MLX world models of them, their training, checkpoints and the model-based RL loop."""

import planners as _planners  # noqa: F401  (activates the fast BLAS for MLX's matmuls)

from .checkpoint import CheckpointError, load_model, read_config, save_model  # noqa: E402
from .data import DatasetError, Transitions, generate, uniform_transitions  # noqa: E402
from .envs.particle import PUSHES, Particle, ParticleEnv, one_hot_pushes  # noqa: E402
from .ensemble import EnsembleWorldModel, model_from_config  # noqa: E402
from .folded import FoldedWorldModel  # noqa: E402
from .folded_ensemble import FoldedEnsembleWorldModel  # noqa: E402
from .model import WorldModel  # noqa: E402
from .train import TrainConfig, TrainResult, one_step_mse, train  # noqa: E402

__all__ = [
    "CheckpointError",
    "DatasetError",
    "EnsembleWorldModel",
    "FoldedEnsembleWorldModel",
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
