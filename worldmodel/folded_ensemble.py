"""An ``EnsembleWorldModel`` with its normalisations folded into the stacked weights, for planning.

    planning_model = ensemble.folded()          # a snapshot; train the ensemble, not this
    next_state, reward = planning_model(state [B, S], action [B, A])        # the members' mean
    nexts, rewards = planning_model.members(state, action, noise=None)      # [K, B, S], [K, B]

The same folding as :mod:`worldmodel.folded`, done for all ``K`` members at once on weights
``[K, in, out]``; outputs match the ensemble's to float32 rounding (~1e-6). A probabilistic
ensemble keeps its log-variance heads (in normalised units) and scales the noise into data units.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .ensemble import bound_logvar
from .folded import _fold_input, angle_features

__all__ = ["FoldedEnsembleWorldModel"]


def _fold(layer, mean: mx.array, std: mx.array, features: int, blocks: int = 1):
    """``(matrix [K, blocks F + A, out], bias [K, 1, out])`` of an :class:`EnsembleLinear` fed
    ``concat((f_1 - mean) / std, ..., a)`` (``f_i``: ``blocks`` vectors of ``F`` state features)."""
    bias = layer.bias[:, 0] if "bias" in layer else None
    matrix, shift = _fold_input(layer.weight.swapaxes(-1, -2), bias, mean, std, features, blocks)
    return matrix, shift[:, None]


class FoldedEnsembleWorldModel(nn.Module):
    """``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``, the members' mean, with folded normalisations.

    Built by :meth:`worldmodel.EnsembleWorldModel.folded`; frozen. Attributes ``ensemble_size``,
    ``state_dim``, ``action_dim``, ``angles``, ``probabilistic``, :meth:`members` and
    :meth:`flops_per_transition` match the source ensemble's.
    """

    def __init__(self, model):
        super().__init__()
        s = model.state_dim
        features = s + len(model.angles)
        self.ensemble_size, self.probabilistic = model.ensemble_size, model.probabilistic
        self.state_dim, self.action_dim, self.angles = model.state_dim, model.action_dim, model.angles
        self.reward_from_state = model.reward_from_state
        self._flops = model.flops_per_transition()
        state_mean, state_std = model.state_norm.mean, model.state_norm.std
        delta_mean, delta_std = model.delta_norm.mean, model.delta_norm.std
        reward_mean, reward_std = model.reward_norm.mean, model.reward_norm.std
        self.w_in, self.b_in = _fold(model.trunk[0], state_mean, state_std, features)
        self.hidden_weights = [layer.weight for layer in model.trunk[1:]]
        self.hidden_biases = [layer.bias for layer in model.trunk[1:]]
        skip, skip_shift = _fold(model.delta_skip, state_mean, state_std, features)
        out_weight, out_bias = model.delta_out.weight, model.delta_out.bias  # [K, H, S or 2S], [K, 1, ...]
        # next = s + (delta_n * delta_std + delta_mean), delta_n = h @ Wd + bd + skip path
        self.w_delta = out_weight[..., :s] * delta_std
        self.w_skip = skip * delta_std
        self.b_delta = (out_bias[..., :s] + skip_shift) * delta_std + delta_mean
        self.w_reward_in, self.b_reward_in = _fold(
            model.reward_in, state_mean, state_std, features, 2 if self.reward_from_state else 1
        )
        self.w_reward_out = model.reward_out.weight[..., :1] * reward_std
        self.b_reward_out = model.reward_out.bias[..., :1] * reward_std + reward_mean
        if self.probabilistic:
            self.w_logvar = out_weight[..., s:]
            self.b_logvar = out_bias[..., s:]
            self.w_reward_logvar = model.reward_out.weight[..., 1:]
            self.b_reward_logvar = model.reward_out.bias[..., 1:]
            self.min_logvar, self.max_logvar = model.min_logvar, model.max_logvar
            self.noise_scale = mx.concatenate([delta_std, reward_std])  # data units per normalised unit
        self.freeze()
        mx.eval(self.parameters())

    def flops_per_transition(self) -> int:
        """Matrix-product FLOPs of one transition through all members, as counted for the source ensemble."""
        return self._flops

    def members(self, state: mx.array, action: mx.array, noise: mx.array | None = None) -> tuple[mx.array, mx.array]:
        """Every member's step ``(next_state [K, B, S], reward [K, B])``; arguments as for
        :meth:`worldmodel.EnsembleWorldModel.members`."""
        features = angle_features(state, self.angles)
        inputs = mx.concatenate([features, action], axis=-1)
        h = mx.maximum(inputs @ self.w_in + self.b_in, 0.0)
        for weight, bias in zip(self.hidden_weights, self.hidden_biases):
            h = mx.maximum(h @ weight + bias, 0.0)
        next_state = state + (h @ self.w_delta + inputs @ self.w_skip + self.b_delta)
        action = mx.broadcast_to(action, (*next_state.shape[:-1], action.shape[-1]))
        next_features = angle_features(next_state, self.angles)
        reward_inputs = [mx.broadcast_to(features, next_features.shape), next_features] if self.reward_from_state else [next_features]
        reward_inputs = mx.concatenate([*reward_inputs, action], axis=-1)
        reward_hidden = mx.maximum(reward_inputs @ self.w_reward_in + self.b_reward_in, 0.0)
        reward = reward_hidden @ self.w_reward_out + self.b_reward_out
        if noise is not None:
            if not self.probabilistic:
                raise ValueError("noise needs a probabilistic ensemble (EnsembleWorldModel(probabilistic=True))")
            raw = mx.concatenate(
                [h @ self.w_logvar + self.b_logvar, reward_hidden @ self.w_reward_logvar + self.b_reward_logvar], axis=-1
            )
            step = mx.exp(0.5 * bound_logvar(raw, self.min_logvar, self.max_logvar)) * noise * self.noise_scale
            next_state, reward = next_state + step[..., :-1], reward + step[..., -1:]
        return next_state, reward[..., 0]

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        next_state, reward = self.members(state, action)
        return next_state.mean(axis=0), reward.mean(axis=0)
