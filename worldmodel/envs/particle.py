"""The seed's 1-D particle (:class:`worldmodel.env.ParticleEnv`) as a registered environment.

:class:`Particle` is a ``ParticleEnv`` (same constructor, dynamics and API) that also carries the
:class:`~worldmodel.envs.base.Environment` attributes. It has no Gymnasium counterpart and never
terminates; its episodes start anywhere in the box ``x in [-x_limit, x_limit]``, ``v in [-v_limit, v_limit]``.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from ..env import ParticleEnv
from .base import Environment, TrainingBudget


class Particle(ParticleEnv, Environment):
    """The particle: ``env(state [B, 2], action [B, A]) -> (next_state [B, 2], reward [B])``.

    Args: those of :class:`~worldmodel.env.ParticleEnv` (``continuous``, ``accel``, ``x_limit``, ``v_limit``).
    """

    name = "particle"
    state_names = ("x", "v")
    training = TrainingBudget()
    steps = 50
    horizon = 15
    samples = 500

    @property
    def state_low(self) -> tuple:
        return (-self.x_limit, -self.v_limit)

    @property
    def state_high(self) -> tuple:
        return (self.x_limit, self.v_limit)

    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        return ParticleEnv.__call__(self, state, action)[0]

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        """``-|x'|`` of the step (computed again from ``state`` and ``action``; ``next_state`` is not read)."""
        return ParticleEnv.__call__(self, state, action)[1]

    def sample_starts(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """Uniform over the whole box, as :meth:`ParticleEnv.reset`."""
        return self.sample_states(rng, num)

    def hard_starts(self) -> np.ndarray:
        """At a wall moving outward at full speed, at a wall at rest, at rest in the centre, at rest off-centre."""
        x, v = self.x_limit, self.v_limit
        return np.array([[x, v], [-x, -v], [x, 0.0], [-x, 0.0], [0.0, 0.0], [x * 2 / 3, 0.0]], dtype=np.float32)
