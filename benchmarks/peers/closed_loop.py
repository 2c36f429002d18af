"""A peer planner in its own process, planning the frontier's episodes with wmplan's learned model.

    python -m benchmarks.peers.closed_loop --peer pytorch_mppi|mbrl-lib|jax --model MODEL.npz

The model is the one :mod:`benchmarks.peers.model_export` wrote; each peer computes it in its own arrays
(torch or JAX) and plans with its own code, imported as its users import it. The process reads one JSON
request a line from stdin and answers each with one line ``CLOSED_LOOP_JSON {...}`` on stdout:

- ``{"configure": {"planner", "horizon", "samples", "iterations", "episodes", "seed"}}``: a fresh
  controller per episode (its own warm start); answers ``{"ok": true}``;
- ``{"act": states [E][S]}``: each episode's state planned in its own call (as a controller of one system
  plans), answers ``{"actions": [E][A] (the env's actions), "ms": [E] (each call's wall time)}``;
- ``{"quit": true}``.

The parent (:mod:`benchmarks.peers.client`) steps the environment; only planning time is counted, in here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from types import SimpleNamespace

import numpy as np

from .model_export import forward, load_exported, model_actions

MARKER = "CLOSED_LOOP_JSON "
PEERS = {"pytorch_mppi": ("mppi", "mppi-defaults"), "mbrl-lib": ("cem", "icem", "mppi"), "jax": ("cem", "mppi")}
"""Each peer and its planners (``mppi-defaults``: pytorch_mppi's MPPI at its own horizon, samples and one iteration)."""
THREADS = 1
"""torch's threads. Its default pool of 2 OpenMP threads ran these small products 50-200x slower on 2 shared,
busy cores (a rollout of H = 40 at N = 100: 2.5-8.7 s with 2 threads, 13-50 ms with 1); XLA is held to one
thread too (``XLA_FLAGS``, unless set)."""


class Controllers:
    """Settings shared by a peer's controllers: the model, its action bounds, and the sizes asked for."""

    def __init__(self, arrays: dict, settings: dict):
        self.arrays, self.settings = arrays, settings
        self.low, self.high, self.values = arrays["low"], arrays["high"], arrays["values"]
        self.horizon, self.samples, self.iterations = settings["horizon"], settings["samples"], settings["iterations"]
        self.half_range = float(np.mean(self.high - self.low) / 2)

    def env_action(self, u: np.ndarray) -> np.ndarray:
        """The env's action ``[A]`` for the peer's continuous ``u [C]`` (a one-hot for a ``Discrete`` env)."""
        return np.asarray(model_actions(np.asarray(u, np.float32)[None], self.values,
                                        lambda i: np.eye(len(self.values), dtype=np.float32)[i]), np.float32)[0]


# -- torch: pytorch_mppi and mbrl-lib -------------------------------------------------------------------------

def torch_model(arrays: dict):
    """``step(state [B, S], u [B, C]) -> (next_state, reward [B])`` in torch, on the peers' continuous actions."""
    import torch

    ops = SimpleNamespace(cat=lambda parts: torch.cat(parts, -1), relu=torch.relu, cos=torch.cos, sin=torch.sin,
                          take=lambda x, columns: x[..., columns])
    weights = {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
    values = weights["values"]

    def step(state, u):
        action = model_actions(u, values, lambda i: torch.nn.functional.one_hot(i, len(values)).to(torch.float32))
        return forward(weights, state, action, ops)

    return step


class PytorchMppi(Controllers):
    """``pytorch_mppi.MPPI``, one controller per episode; ``iterations`` calls of ``command`` per step (the
    first shifts the nominal trajectory); noise std half the action range; ``mppi-defaults``: its own
    horizon (15) and samples (100), one call per step."""

    def __init__(self, arrays, settings):
        super().__init__(arrays, settings)
        import torch
        from pytorch_mppi import MPPI

        step, cache = torch_model(arrays), {}

        def dynamics(state, u):
            next_state, cache["reward"] = step(state, u)
            return next_state

        def running_cost(state, u):  # called on the state dynamics() just returned: that step's reward
            return -cache["reward"]

        sizes = {} if settings["planner"] == "mppi-defaults" else {"horizon": self.horizon, "num_samples": self.samples}
        if settings["planner"] == "mppi-defaults":
            self.iterations = 1
        c = len(self.low)
        torch.manual_seed(settings["seed"])
        self.controllers = [
            MPPI(dynamics, running_cost, nx=arrays["state_dim"], noise_sigma=torch.eye(c) * self.half_range**2,
                 u_min=torch.from_numpy(self.low), u_max=torch.from_numpy(self.high), **sizes)
            for _ in range(settings["episodes"])]
        self.torch = torch

    def plan(self, i: int, state: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            s = self.torch.from_numpy(state)
            for k in range(self.iterations):
                u = self.controllers[i].command(s, shift_nominal_trajectory=k == 0)
        return u.numpy()


MBRL_SETTINGS = {
    "cem": {"_target_": "mbrl.planning.CEMOptimizer", "elite_ratio": 0.1, "alpha": 0.1, "return_mean_elites": True,
            "clipped_normal": False},
    "icem": {"_target_": "mbrl.planning.ICEMOptimizer", "elite_ratio": 0.1, "alpha": 0.1, "return_mean_elites": True,
             "population_decay_factor": 1.25, "colored_noise_exponent": 2.0, "keep_elite_frac": 0.3},
    "mppi": {"_target_": "mbrl.planning.MPPIOptimizer", "gamma": 10.0, "beta": 0.9},
}
"""mbrl-lib's optimizer settings (its PETS/iCEM/PDDM example values); ``sigma`` (MPPI) is half the action range."""


class MbrlLib(Controllers):
    """mbrl-lib's ``TrajectoryOptimizerAgent`` (``mbrl.planning``) with a trajectory evaluation function on the
    model: one agent per episode, keeping its shifted last solution."""

    def __init__(self, arrays, settings):
        super().__init__(arrays, settings)
        import omegaconf
        import torch

        import mbrl.planning

        step = torch_model(arrays)
        torch.manual_seed(settings["seed"])

        def evaluate(obs, sequences):  # [B, H, C] -> summed rewards [B]
            with torch.no_grad():
                state = torch.from_numpy(obs).expand(len(sequences), -1)
                total = torch.zeros(len(sequences))
                for t in range(sequences.shape[1]):
                    state, reward = step(state, sequences[:, t])
                    total += reward
                return total

        options = {**MBRL_SETTINGS[settings["planner"]], "num_iterations": self.iterations,
                   "population_size": self.samples, "device": "cpu", "lower_bound": "???", "upper_bound": "???"}
        if settings["planner"] == "mppi":
            options["sigma"] = self.half_range
        self.agents = []
        for _ in range(settings["episodes"]):
            agent = mbrl.planning.TrajectoryOptimizerAgent(omegaconf.OmegaConf.create(options), self.low, self.high,
                                                           planning_horizon=self.horizon, replan_freq=1)
            agent.set_trajectory_eval_fn(evaluate)
            self.agents.append(agent)

    def plan(self, i: int, state: np.ndarray) -> np.ndarray:
        return self.agents[i].act(state)


# -- JAX: the hand-written CEM/MPPI of benchmarks.peers.jax_planners -----------------------------------------

def jax_model(arrays: dict) -> tuple:
    """``(params, step)``: the model's float32 arrays in JAX and ``step(params, state [B, S], u [B, C]) -> (next_state,
    reward [B])`` on the peers' continuous actions (the rest of the model fixed in it, for ``jax.jit``)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_platforms", "cpu")
    ops = SimpleNamespace(cat=lambda parts: jnp.concatenate(parts, axis=-1), relu=jax.nn.relu, cos=jnp.cos,
                          sin=jnp.sin, take=lambda x, columns: x[..., jnp.array(columns)])
    static = {k: arrays[k] for k in ("angles", "reward_from_state")}
    values, n = jnp.asarray(arrays["values"]), len(arrays["values"])
    params = {k: jnp.asarray(v) for k, v in arrays.items() if isinstance(v, np.ndarray) and v.dtype == np.float32}

    def step(params, state, u):
        action = model_actions(u, values, lambda i: jax.nn.one_hot(i, n, dtype=jnp.float32))
        return forward({**params, **static}, state, action, ops)

    return params, step


class JaxPlanners(Controllers):
    """:mod:`benchmarks.peers.jax_planners`' jitted CEM/MPPI (one ``jax.jit`` per call, ``lax.scan`` over the
    horizon) warm-started from each episode's shifted previous mean; noise scaled to the action range."""

    def __init__(self, arrays, settings):
        super().__init__(arrays, settings)
        import jax
        import jax.numpy as jnp

        from . import jax_planners

        self.params, step = jax_model(arrays)
        bounds = {"low": self.low, "high": self.high, "step": step}
        if settings["planner"] == "cem":
            self.call = jax_planners.make_cem(self.samples, self.horizon, iterations=self.iterations, **bounds)
        else:
            self.call = jax_planners.make_mppi(self.samples, self.horizon, iterations=self.iterations,
                                               noise_std=0.5 * self.half_range, **bounds)
        self.keys = [jax.random.key(settings["seed"] * 100_003 + i) for i in range(settings["episodes"])]
        self.means = [None] * settings["episodes"]
        self.jax, self.jnp = jax, jnp
        state = jnp.zeros((1, arrays["state_dim"]), jnp.float32)
        for mean in (None, jnp.zeros((self.horizon, len(self.low)), jnp.float32)):  # compile both calls: not timed
            jax.block_until_ready(self.call(self.params, state, self.keys[0], mean))

    def plan(self, i: int, state: np.ndarray) -> np.ndarray:
        jnp = self.jnp
        mean, _, self.keys[i] = self.call(self.params, jnp.asarray(state[None]), self.keys[i], self.means[i])
        mean = np.asarray(mean)
        self.means[i] = jnp.asarray(np.concatenate([mean[1:], np.zeros_like(mean[:1])]))  # shifted: the next warm start
        return mean[0]


WARMUP_CALLS = 2
"""Untimed planning calls after each ``configure`` (allocators, caches, a JIT's compile), by a spare controller."""

CONTROLLERS = {"pytorch_mppi": PytorchMppi, "mbrl-lib": MbrlLib, "jax": JaxPlanners}


def answer(payload: dict) -> None:
    sys.stdout.write(MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def serve(peer: str, arrays: dict, requests) -> None:
    """Answer ``requests`` (JSON lines) until ``quit`` or their end."""
    controllers = None
    for line in requests:
        request = json.loads(line)
        if request.get("quit"):
            return
        if "configure" in request:
            settings = request["configure"]
            if settings["planner"] not in PEERS[peer]:
                raise ValueError(f"{peer} has no planner {settings['planner']!r}; choose from {', '.join(PEERS[peer])}")
            controllers = CONTROLLERS[peer](arrays, {**settings, "episodes": settings["episodes"] + 1})
            for _ in range(WARMUP_CALLS):  # untimed, by a controller of its own (the last), dropped after
                controllers.plan(settings["episodes"], np.zeros(arrays["state_dim"], np.float32))
            answer({"ok": True})
            continue
        actions, ms = [], []
        for i, state in enumerate(np.asarray(request["act"], np.float32)):
            start = time.perf_counter()
            u = controllers.plan(i, state)
            ms.append(1e3 * (time.perf_counter() - start))
            actions.append(controllers.env_action(u).tolist())
        answer({"actions": actions, "ms": ms})


def versions(peer: str) -> dict:
    """The peer's package versions, for the frontier's JSON."""
    from importlib.metadata import PackageNotFoundError, version

    names = {"pytorch_mppi": ("torch", "pytorch-mppi"), "mbrl-lib": ("torch", "mbrl"), "jax": ("jax", "jaxlib")}[peer]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=tuple(PEERS), required=True)
    parser.add_argument("--model", required=True, help=".npz from benchmarks.peers.model_export")
    args = parser.parse_args()
    if args.peer == "jax":
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    else:
        import torch

        torch.set_num_threads(THREADS)
    answer({"ready": True, "versions": versions(args.peer)})
    serve(args.peer, load_exported(args.model), sys.stdin)


if __name__ == "__main__":
    main()
