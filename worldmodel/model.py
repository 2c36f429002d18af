"""An MLX MLP world model, callable exactly like the environment.

    model(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])

Internals (each one measured to help; see the README):
- inputs and targets are normalised with statistics of the training data, kept in the model;
- the trunk (seed architecture: S + A -> 128 -> 128, ReLU) predicts the *change* of the state;
- the reward is read from the *predicted next state* and the action by a small head. Rewards such as
  ``-|x'|`` have a kink in the next state that a head fed with it learns at once, while a trunk
  output has to rebuild ``x'`` first; this halves the held-out reward error of the seed's model;
- state dimensions that are angles (``angles``, e.g. a pendulum's) enter the network as
  ``(cos, sin)``, so that ``theta`` and ``theta + 2 pi`` are the same input, and their change is
  learned as the wrapped difference in ``[-pi, pi)``: a step across the wrap of an environment that
  keeps its angles in ``[-pi, pi]`` (Acrobot) is a small change, not a jump of ``2 pi``. The
  predicted next angle is ``theta + change``, equal to the true one up to whole turns;
- with ``reward_from_state`` the reward head also reads the state before the step, for rewards
  of that state (Pendulum's): a head fed only the next state has to undo the step first.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn
import math

import numpy as np

from .folded import FoldedWorldModel, angle_features


def wrap_angle(x):
    """Angles (numpy or MLX arrays) shifted by whole turns into ``[-pi, pi)``."""
    return (x + math.pi) % (2 * math.pi) - math.pi


def state_change(states, next_states, angles: Sequence[int] = ()):
    """``next_states - states`` ``[N, S]`` (numpy), the ``angles`` columns wrapped into ``[-pi, pi)``."""
    delta = next_states - states
    if angles:
        delta[:, list(angles)] = wrap_angle(delta[:, list(angles)])
    return delta


def angle_turns(states: np.ndarray, next_states: np.ndarray, angles: Sequence[int]) -> np.ndarray:
    """The ``angles`` columns' changes ``[N, len(angles)]`` with their whole turns put back.

    An environment that wraps its angles hides how far a fast joint turned: a step of 3.5 rad reads
    as -2.8 rad, and the wrapped change jumps by a full turn where the true one crosses half a turn,
    a cliff an MLP cannot fit (on the acrobot, 93 % of the held-out error of the second angle came
    from the 12 % of transitions that turn more than 2.5 rad). The turn is recovered from the data:
    the unambiguous changes (under a quarter turn) are fitted by least squares to the other state
    columns before and after the step (the speeds: a change is about the step time times the mean
    speed), and every change takes the whole-turn branch nearest that fit. Where no change comes near
    half a turn (the pendulum) this is exactly the wrapped change.
    """
    cols = list(angles)
    wrapped = wrap_angle(next_states[:, cols] - states[:, cols])
    others = [i for i in range(states.shape[1]) if i not in cols]
    if not others:
        return wrapped
    inputs = np.concatenate([states[:, others], next_states[:, others], np.ones((len(states), 1))], axis=1)
    safe = np.all(np.abs(wrapped) < math.pi / 2, axis=1)
    if safe.sum() < 10 * inputs.shape[1]:  # too little to fit: keep the wrapped changes
        return wrapped
    coef, *_ = np.linalg.lstsq(inputs[safe].astype(np.float64), wrapped[safe].astype(np.float64), rcond=None)
    turns = np.round((inputs @ coef - wrapped) / (2 * math.pi))
    return (wrapped + 2 * math.pi * turns).astype(wrapped.dtype)


def checked_angles(angles: Sequence[int], state_dim: int) -> tuple:
    """``angles`` as a sorted tuple of state indices; ``ValueError`` unless they are distinct and in ``[0, state_dim)``."""
    angles = tuple(sorted(int(i) for i in angles))
    if len(set(angles)) != len(angles) or any(not 0 <= i < state_dim for i in angles):
        raise ValueError(f"angles must be distinct state indices in [0, {state_dim}), got {list(angles)}")
    return angles


class Normalizer(nn.Module):
    """Fixed affine statistics ``(x - mean) / std``; frozen, saved with the weights.

    Args:
        dim: feature size.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.mean = mx.zeros((dim,))
        self.std = mx.ones((dim,))
        self.freeze()

    def set(self, mean, std, min_std: float = 1e-6):
        """Set statistics from arrays ``[dim]``; a std below ``min_std`` is raised to it."""
        self.mean = mx.array(np.asarray(mean, dtype=np.float32))
        self.std = mx.array(np.maximum(np.asarray(std, dtype=np.float32), min_std))
        self.freeze()

    def __call__(self, x: mx.array) -> mx.array:
        return (x - self.mean) / self.std

    def invert(self, z: mx.array) -> mx.array:
        return z * self.std + self.mean


class WorldModel(nn.Module):
    """Learned dynamics: ``model(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

    Args:
        state_dim: S. Default: ``2``.
        action_dim: A (one-hot for discrete actions). Default: ``3``.
        hidden: trunk hidden sizes. Default: ``(128, 128)``.
        reward_hidden: hidden size of the reward head. Default: ``32``.
        angles: indices of the state dimensions that are angles (period ``2 pi``), fed to the
            network as ``(cos, sin)``: ``S + len(angles)`` input features. Default: none.
        reward_from_state: the reward head reads the state before the step as well as the
            predicted next state and the action. Default: ``False``.
    """

    def __init__(
        self,
        state_dim: int = 2,
        action_dim: int = 3,
        hidden: Sequence[int] = (128, 128),
        reward_hidden: int = 32,
        angles: Sequence[int] = (),
        reward_from_state: bool = False,
    ):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if state_dim < 1 or action_dim < 1 or not hidden or min(hidden) < 1 or reward_hidden < 1:
            raise ValueError(
                f"WorldModel needs positive sizes, got state_dim={state_dim}, action_dim={action_dim}, "
                f"hidden={hidden}, reward_hidden={reward_hidden}"
            )
        angles = checked_angles(angles, state_dim)
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.hidden, self.reward_hidden, self.angles = hidden, int(reward_hidden), angles
        self.reward_from_state = bool(reward_from_state)
        features = self.state_dim + len(self.angles)
        sizes = (features + action_dim, *hidden)
        self.trunk = [nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:])]
        self.delta_out = nn.Linear(hidden[-1], state_dim)
        self.delta_skip = nn.Linear(features + action_dim, state_dim, bias=False)
        self.reward_in = nn.Linear((2 if self.reward_from_state else 1) * features + action_dim, reward_hidden)
        self.reward_out = nn.Linear(reward_hidden, 1)
        self.state_norm = Normalizer(features)
        self.delta_norm = Normalizer(state_dim)
        self.reward_norm = Normalizer(1)

    def config(self) -> dict:
        """Architecture, enough to rebuild an empty model: ``WorldModel(**model.config())``.

        ``angles`` and ``reward_from_state`` appear only when set (a particle model's config is the seed's).
        """
        config = {
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "hidden": list(self.hidden),
            "reward_hidden": self.reward_hidden,
        }
        if self.angles:
            config["angles"] = list(self.angles)
        if self.reward_from_state:
            config["reward_from_state"] = True
        return config

    def flops_per_transition(self) -> int:
        """Multiply-add FLOPs of the matrix products in one forward pass for one transition (2 per weight)."""
        layers = [*self.trunk, self.delta_out, self.delta_skip, self.reward_in, self.reward_out]
        return 2 * sum(layer.weight.size for layer in layers)

    def features(self, state: mx.array) -> mx.array:
        """The network's view of ``state [B, S]``: ``[B, S + len(angles)]`` (the state itself without angles)."""
        return angle_features(state, self.angles)

    def state_change(self, states: np.ndarray, next_states: np.ndarray) -> np.ndarray:
        """The change ``[N, S]`` the model learns to predict; angles' changes with their whole turns
        (:func:`angle_turns`), so the model's next angles may lie outside ``[-pi, pi)``."""
        delta = next_states - states
        if self.angles:
            delta[:, list(self.angles)] = angle_turns(states, next_states, self.angles)
        return delta

    def fit_normalization(self, states: np.ndarray, next_states: np.ndarray, rewards: np.ndarray) -> None:
        """Set the statistics from training data: states/next_states ``[N, S]``, rewards ``[N]``."""
        features = np.array(self.features(mx.array(states))) if self.angles else states
        self.state_norm.set(features.mean(0), features.std(0))
        delta = self.state_change(states, next_states)
        self.delta_norm.set(delta.mean(0), delta.std(0))
        self.reward_norm.set(rewards.mean(keepdims=True), rewards.std(keepdims=True))

    def predict_normalized(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        """Normalised outputs: state change ``[B, S]`` and reward ``[B]``, the training targets' units."""
        state_n = self.state_norm(self.features(state))
        x = mx.concatenate([state_n, action], axis=-1)
        h = x
        for layer in self.trunk:
            h = nn.relu(layer(h))
        delta_n = self.delta_out(h) + self.delta_skip(x)
        next_n = self.state_norm(self.features(state + self.delta_norm.invert(delta_n)))
        reward_inputs = [state_n, next_n, action] if self.reward_from_state else [next_n, action]
        r = self.reward_out(nn.relu(self.reward_in(mx.concatenate(reward_inputs, axis=-1))))
        return delta_n, r[..., 0]

    def training_loss(self, state, action, delta_target, reward_target) -> tuple[mx.array, mx.array]:
        """Mean squared error of one batch in normalised units, and the squared errors ``[B, S + 1]``.

        Targets: the normalised state change ``[B, S]`` and reward ``[B]``.
        """
        delta_n, reward_n = self.predict_normalized(state, action)
        err2 = mx.concatenate([delta_n - delta_target, (reward_n - reward_target)[:, None]], axis=-1) ** 2
        return err2.mean(), err2

    def folded(self) -> FoldedWorldModel:
        """A frozen :class:`~worldmodel.folded.FoldedWorldModel` snapshot: the same function with the
        normalisations folded into the weights, for planning (about 1.7x faster on a 2-core CPU)."""
        return FoldedWorldModel(self)

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        delta_n, reward_n = self.predict_normalized(state, action)
        next_state = state + self.delta_norm.invert(delta_n)
        reward = self.reward_norm.invert(reward_n[..., None])[..., 0]
        return next_state, reward
