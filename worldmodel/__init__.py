"""The seed's 1-D particle environment and an MLX world model of it."""

import planners as _planners  # noqa: F401  (loads the fast BLAS before mlx.core)

from .env import PUSHES, ParticleEnv, one_hot_pushes  # noqa: E402

__all__ = ["PUSHES", "ParticleEnv", "one_hot_pushes"]
