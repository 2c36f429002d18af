"""How well a trained world model imagines: one-step error and open-loop drift against the true env.

    python -m benchmarks.accuracy [--model PATH] [--seed 0]

Prints, for the checkpoint (default ``$WMPLAN_HOME/model``):

- the one-step MSE of x, v and r on 20,000 transitions drawn uniformly from the whole state box
  and all three actions (the held-out measure ``wmplan train`` prints);
- the largest |x error| of 15-step open-loop rollouts from (1.0, 0.0) under 200 random action
  sequences (the seed's demo, repeated): median, 90th percentile and maximum;
- the final |x error| of 50-step random-action rollouts from 500 random starts: median, 90th
  percentile and maximum.
"""

from __future__ import annotations

import argparse

import numpy as np

from worldmodel import PUSHES, ParticleEnv, load_model, one_hot_pushes, one_step_mse, uniform_transitions
from worldmodel.recipe import default_model_path, demo_start
from worldmodel.rollout import open_loop


def percentiles(values: np.ndarray) -> str:
    """``median / p90 / max`` of ``values`` as text."""
    p50, p90 = np.percentile(values, [50, 90])
    return f"median {p50:.4f}, p90 {p90:.4f}, max {values.max():.4f}"


def x_errors(env, model, starts: np.ndarray, pushes: np.ndarray) -> np.ndarray:
    """``|x_true - x_model|`` ``[B, T+1]`` of open-loop rollouts from ``starts [B, 2]`` under ``pushes [B, T]``."""
    actions = one_hot_pushes(pushes)
    true_states, _ = open_loop(env, starts, actions)
    model_states, _ = open_loop(model, starts, actions)
    return np.abs(true_states[..., 0] - model_states[..., 0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: $WMPLAN_HOME/model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probes (default: 0)")
    args = parser.parse_args(argv)
    model = load_model(args.model or default_model_path())
    env = ParticleEnv()
    rng = np.random.default_rng(args.seed)

    mse = one_step_mse(model, uniform_transitions(env, 20000, seed=args.seed))
    print(f"one-step MSE (20,000 uniform transitions): x {mse[0]:.2e}, v {mse[1]:.2e}, r {mse[2]:.2e}, "
          f"mean {mse.mean():.2e}")

    pushes = np.asarray(PUSHES)
    starts = np.tile(demo_start(env)[None], (200, 1))  # (1, 0)
    drift = x_errors(env, model, starts, pushes[rng.integers(0, len(pushes), size=(200, 15))]).max(axis=1)
    print(f"15 steps from (1, 0), 200 random action sequences, max |x error|: {percentiles(drift)}")

    final = x_errors(env, model, env.sample_states(rng, 500), pushes[rng.integers(0, len(pushes), size=(500, 50))])[:, -1]
    print(f"50 steps from 500 random starts, final |x error|: {percentiles(final)}")


if __name__ == "__main__":
    main()
