"""The seed's 1-D particle, batched in MLX.

State ``[x, v]``; a push ``a`` in {-1, 0, +1} (or in [-1, 1] for the continuous variant):

    v' = clip(v + 0.1 a, -1, 1)
    x' = clip(x + v', -1.5, 1.5)
    r  = -|x'|
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from planners.spaces import Box, Discrete

PUSHES = (-1.0, 0.0, 1.0)


class ParticleEnv:
    """The true dynamics as a batched function ``env(state, action) -> (next_state, reward)``.

    Args:
        continuous: if ``True`` the action is a push in ``[-1, 1]`` (``[B, 1]``, clipped), else a
            one-hot vector over the pushes (-1, 0, +1) (``[B, 3]``). A probability vector is
            accepted too: its expected push is applied (the relaxation gradient planners use).
        accel: velocity change per unit push. Default: ``0.1``.
        x_limit: walls at ``±x_limit``. Default: ``1.5``.
        v_limit: speed limit. Default: ``1.0``.
    """

    state_dim = 2
    rollout_streams = 1  # a handful of tiny element-wise ops a step: splitting rows costs more than it gains

    def __init__(self, continuous: bool = False, accel: float = 0.1, x_limit: float = 1.5, v_limit: float = 1.0):
        if accel <= 0 or x_limit <= 0 or v_limit <= 0:
            raise ValueError(f"accel, x_limit and v_limit must be positive, got {accel}, {x_limit}, {v_limit}")
        self.continuous = bool(continuous)
        self.accel = float(accel)
        self.x_limit = float(x_limit)
        self.v_limit = float(v_limit)
        if self.continuous:
            self.action_space = Box(-1.0, 1.0, shape=(1,))
        else:
            self.action_space = Discrete(3, values=PUSHES)
        self._pushes = mx.array(PUSHES, dtype=mx.float32)

    @property
    def action_dim(self) -> int:
        """Length of one action vector: 3 (one-hot pushes) or 1 (continuous)."""
        return self.action_space.dim

    def config(self) -> dict:
        """The constructor arguments, as stored in checkpoints."""
        return {"continuous": self.continuous, "accel": self.accel, "x_limit": self.x_limit, "v_limit": self.v_limit}

    def push(self, action: mx.array) -> mx.array:
        """Pushes ``[B]`` from actions ``[B, 3]`` (one-hot/probabilities) or ``[B, 1]`` (continuous)."""
        if self.continuous:
            return mx.clip(action[..., 0], -1.0, 1.0)
        return action @ self._pushes

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        """One step: ``state [B, 2]``, ``action [B, A]`` -> ``(next_state [B, 2], reward [B])``."""
        x, v = state[..., 0], state[..., 1]
        v_next = mx.clip(v + self.accel * self.push(action), -self.v_limit, self.v_limit)
        x_next = mx.clip(x + v_next, -self.x_limit, self.x_limit)
        return mx.stack([x_next, v_next], axis=-1), -mx.abs(x_next)

    def reset(self, num: int, seed: int = 0) -> mx.array:
        """``num`` start states ``[num, 2]``, uniform over the box: x ~ U[-1.5, 1.5], v ~ U[-1, 1]."""
        if num < 1:
            raise ValueError(f"reset needs num >= 1, got {num}")
        rng = np.random.default_rng(seed)
        return mx.array(self.sample_states(rng, num))

    def sample_states(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` states ``[num, 2]`` float32, uniform over the whole box (both walls, both speed limits)."""
        x = rng.uniform(-self.x_limit, self.x_limit, size=num)
        v = rng.uniform(-self.v_limit, self.v_limit, size=num)
        return np.stack([x, v], axis=-1).astype(np.float32)

    def sample_actions(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` uniformly random actions ``[num, A]`` float32 (one-hot, or pushes in [-1, 1])."""
        if self.continuous:
            return rng.uniform(-1.0, 1.0, size=(num, 1)).astype(np.float32)
        return np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=num)]

    def __repr__(self):
        return f"ParticleEnv(continuous={self.continuous})"


def one_hot_pushes(pushes) -> mx.array:
    """One-hot actions ``[..., 3]`` from pushes in {-1, 0, +1} (any array-like of ints)."""
    index = np.asarray(pushes, dtype=np.int64) + 1
    if index.size and (index.min() < 0 or index.max() > 2):
        raise ValueError(f"pushes must be -1, 0 or +1, got {sorted(set(np.asarray(pushes).ravel().tolist()))}")
    return mx.array(np.eye(3, dtype=np.float32)[index])
