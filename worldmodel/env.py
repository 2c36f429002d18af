"""The seed's 1-D particle under its old module name: :mod:`worldmodel.envs.particle` is its home."""

from .envs.particle import PUSHES, ParticleEnv, one_hot_pushes

__all__ = ["PUSHES", "ParticleEnv", "one_hot_pushes"]
