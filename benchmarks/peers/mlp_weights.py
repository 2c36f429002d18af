"""One deterministic MLP that every framework in the speed comparison loads (numpy only).

The network is the size of wmplan's world-model trunk on the continuous particle:

    input  = concat(state [B, 2], action [B, 1])            # 3
    hidden = relu(input @ w1 + b1), relu(. @ w2 + b2)      # 128, 128
    output = hidden @ w3 + b3                              # 3 = next_state (2) + reward (1)

Weights are drawn once with ``numpy.random.default_rng(0)`` (uniform in ``±1/sqrt(fan_in)``, the
scale of ``torch.nn.Linear``'s default initialisation) and saved to an ``.npz`` holding ``w1, b1,
w2, b2, w3, b3`` with ``w`` stored ``[in, out]``, plus a probe input and the float64 numpy forward
pass on it, so each framework can check that it builds the same function.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

STATE_DIM = 2
ACTION_DIM = 1
HIDDEN = (128, 128)
SEED = 0
PROBE_ROWS = 64
LAYERS = ("1", "2", "3")


def layer_sizes() -> tuple[int, ...]:
    """``(3, 128, 128, 3)``: input, hidden..., output widths."""
    return (STATE_DIM + ACTION_DIM, *HIDDEN, STATE_DIM + 1)


def macs_per_transition() -> int:
    """Multiply-accumulates of the three GEMMs for one (state, action) -> (next_state, reward) step."""
    sizes = layer_sizes()
    return sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))


def flops_per_transition() -> int:
    """``2 x MACs`` (biases and ReLUs not counted): 34,304 for 3 -> 128 -> 128 -> 3."""
    return 2 * macs_per_transition()


def make_weights(seed: int = SEED) -> dict[str, np.ndarray]:
    """The weights (float32, ``w`` as ``[in, out]``), a probe input and its float64 reference output."""
    rng = np.random.default_rng(seed)
    sizes = layer_sizes()
    params: dict[str, np.ndarray] = {}
    for name, fan_in, fan_out in zip(LAYERS, sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        params[f"w{name}"] = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
        params[f"b{name}"] = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
    probe_state = rng.uniform(-2.0, 2.0, (PROBE_ROWS, STATE_DIM)).astype(np.float32)
    probe_action = rng.uniform(-1.0, 1.0, (PROBE_ROWS, ACTION_DIM)).astype(np.float32)
    next_state, reward = reference_forward(params, probe_state, probe_action)
    params.update(probe_state=probe_state, probe_action=probe_action, probe_next_state=next_state, probe_reward=reward)
    return params


def reference_forward(params: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The MLP in float64 numpy: ``(next_state [B, 2], reward [B])``."""
    h = np.concatenate([state, action], axis=-1).astype(np.float64)
    for i, name in enumerate(LAYERS):
        h = h @ params[f"w{name}"].astype(np.float64) + params[f"b{name}"].astype(np.float64)
        if i < len(LAYERS) - 1:
            h = np.maximum(h, 0.0)
    return h[:, :STATE_DIM], h[:, STATE_DIM]


def save(path: str | os.PathLike, seed: int = SEED) -> Path:
    """Write :func:`make_weights` to ``path`` (atomically) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mlp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **make_weights(seed))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an ``.npz`` written by :func:`save`."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def probe_error(params: dict[str, np.ndarray], next_state: np.ndarray, reward: np.ndarray) -> float:
    """Largest absolute difference between a framework's output on the probe and the float64 reference."""
    return float(max(
        np.max(np.abs(np.asarray(next_state, dtype=np.float64) - params["probe_next_state"])),
        np.max(np.abs(np.asarray(reward, dtype=np.float64).reshape(-1) - params["probe_reward"])),
    ))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="where to write the .npz")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    print(save(args.path, args.seed))
