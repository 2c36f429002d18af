"""A learned world model for the frontier's peers: its folded weights as numpy arrays, the one forward pass
every framework writes in its own arrays, and the continuous actions the peers search over.

    arrays = export_model(model.folded(), env)         # in the wmplan (MLX) process; numpy out
    np.savez(path, **arrays)                           # the peer's process loads it
    next_state, reward = forward(arrays, state, action, NUMPY)   # [B, S], [B, A] -> [B, S], [B]

The function is :class:`worldmodel.folded.FoldedWorldModel`'s for one deterministic model: the state's
angles as ``(cos, sin)`` features, a ReLU trunk, the change of the state (trunk output plus a linear skip
from the inputs) and a ReLU reward head on the next state's features (and the state's, where the model
reads both). :func:`forward` takes the array operations (:data:`NUMPY`, or a framework's: torch's, JAX's)
so that the function is written once and each framework computes it in its own arrays.

The peers search over continuous actions ``u [.., C]`` in ``[low, high]``: a ``Box`` env's own actions;
for a ``Discrete`` env (the particle's pushes ``(-1, 0, +1)``) one number in the values' range, mapped to
the one-hot of the nearest value (:func:`model_actions`) in imagination and in the env alike.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

WEIGHTS = ("w_in", "b_in", "w_delta", "w_skip", "b_delta", "w_reward_in", "b_reward_in", "w_reward_out", "b_reward_out")
"""The folded model's arrays, each ``[in, out]`` (matrices) or ``[out]`` (biases); hidden layers are ``w_hidden{i}``, ``b_hidden{i}``."""

NUMPY = SimpleNamespace(cat=lambda parts: np.concatenate(parts, axis=-1), relu=lambda x: np.maximum(x, 0.0),
                        cos=np.cos, sin=np.sin, take=lambda x, columns: x[..., columns])
"""The array operations :func:`forward` uses, in numpy: ``cat`` (on the last axis), ``relu``, ``cos``, ``sin``, ``take`` (columns)."""


def export_model(folded, env) -> dict:
    """``folded`` (a ``FoldedWorldModel`` of one deterministic model) and ``env``'s action space as numpy arrays.

    Keys: :data:`WEIGHTS`, ``w_hidden{i}`` / ``b_hidden{i}``, ``angles [n]`` (int), ``reward_from_state``,
    ``state_dim``; ``low``/``high`` ``[C]`` of the continuous actions and ``values [n]`` (a ``Discrete``
    env's meaning of each action; empty for a ``Box``).

    Raises:
        ValueError: an ensemble (``K > 1``) or a probabilistic model: the peers plan with one deterministic model.
    """
    if folded.ensemble_size != 1 or folded.probabilistic:
        raise ValueError("peers plan with one deterministic model; this one is an ensemble or probabilistic")
    arrays = {name: np.array(getattr(folded, name), np.float32) for name in WEIGHTS}
    for i, (weight, bias) in enumerate(zip(folded.hidden_weights, folded.hidden_biases)):
        arrays[f"w_hidden{i}"], arrays[f"b_hidden{i}"] = np.array(weight, np.float32), np.array(bias, np.float32)
    arrays.update(angles=np.array(folded.angles, np.int64), reward_from_state=np.array(bool(folded.reward_from_state)),
                  state_dim=np.array(folded.state_dim, np.int64), **action_bounds(env.action_space))
    return arrays


def action_bounds(space) -> dict:
    """``{"low", "high", "values"}`` of the peers' continuous actions for ``space`` (``planners.spaces``)."""
    values = getattr(space, "values", None)
    if hasattr(space, "n"):  # Discrete: one number over the values' range
        values = np.arange(space.n, dtype=np.float32) if values is None else np.array(values, np.float32)
        return {"low": values.min(keepdims=True), "high": values.max(keepdims=True), "values": values}
    return {"low": np.array(space.low, np.float32), "high": np.array(space.high, np.float32), "values": np.zeros(0, np.float32)}


def hidden_layers(arrays: dict) -> int:
    """How many hidden layers after the first the trunk has."""
    return sum(1 for key in arrays if key.startswith("w_hidden"))


def features(state, angles: list, ops):
    """The network's view of ``state [B, S]``: the non-angle columns, then the angles' cosines, then their sines."""
    if not angles:
        return state
    others = [i for i in range(state.shape[-1]) if i not in angles]
    theta = ops.take(state, angles)
    return ops.cat(([ops.take(state, others)] if others else []) + [ops.cos(theta), ops.sin(theta)])


def forward(arrays: dict, state, action, ops=NUMPY):
    """``(next_state [B, S], reward [B])`` of the exported model for ``state [B, S]`` and the model's ``action [B, A]``,
    in the arrays of ``ops`` (``arrays``' values already converted to them, ``angles`` a list)."""
    angles = arrays["angles"]
    state_features = features(state, angles, ops)
    inputs = ops.cat([state_features, action])
    h = ops.relu(inputs @ arrays["w_in"] + arrays["b_in"])
    for i in range(hidden_layers(arrays)):
        h = ops.relu(h @ arrays[f"w_hidden{i}"] + arrays[f"b_hidden{i}"])
    next_state = state + (h @ arrays["w_delta"] + inputs @ arrays["w_skip"] + arrays["b_delta"])
    next_features = features(next_state, angles, ops)
    reward_in = ([state_features] if arrays["reward_from_state"] else []) + [next_features, action]
    hidden = ops.relu(ops.cat(reward_in) @ arrays["w_reward_in"] + arrays["b_reward_in"])
    return next_state, (hidden @ arrays["w_reward_out"] + arrays["b_reward_out"])[..., 0]


def model_actions(u, values, one_hot):
    """The model's actions for the peers' continuous ``u [..., C]``: ``u`` itself for a ``Box`` (``values`` empty),
    else the one-hot (``one_hot(index) -> [..., n]``, the framework's) of the value nearest ``u [..., 1]``."""
    if len(values) == 0:
        return u
    return one_hot(abs(u - values).argmin(-1))


def load_exported(path) -> dict:
    """The arrays :func:`export_model` wrote (``np.savez``) as :func:`forward` wants them: ``angles`` a list,
    ``reward_from_state`` a bool, ``state_dim`` an int, the rest float32 arrays."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["angles"] = [int(i) for i in arrays["angles"]]
    arrays["reward_from_state"] = bool(arrays["reward_from_state"])
    arrays["state_dim"] = int(arrays["state_dim"])
    return arrays
