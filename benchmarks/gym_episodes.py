"""Closed-loop MPC in the real Gymnasium environment, planning on the environment's MLX dynamics or a learned model.

    python -m benchmarks.gym_episodes pendulum --planner cem --episodes 3 [--horizon 30] [--samples 1000]
    python -m benchmarks.gym_episodes pendulum --model DIR ...     # plan with a `wmplan train --env pendulum` model

Each episode starts from Gymnasium's own ``reset(seed=seed + i)``; every step the planner sees the
state read from the observation (``env.state_from_obs``), plans for all running episodes in one
batch (with the environment's ``termination`` in imagination) and Gymnasium steps each episode.
With ``--model DIR`` the planner imagines with the checkpoint's world model (``load_model(DIR).folded()``,
trained on this environment) instead of the true dynamics; everything else is the same.
Prints each episode's return and length, the mean and standard deviation, and the planning time per
step. Needs gymnasium (``pip install 'wmplan[gym]'``).
"""

from __future__ import annotations

import argparse
import ast
import time
from dataclasses import dataclass

import numpy as np

import planners
from worldmodel import env_record, load_model, read_config
from worldmodel.envs import ENV_NAMES, Environment, get_env

PLANNERS = {"cem": planners.CEM, "icem": planners.ICEM, "mppi": planners.MPPI, "random-shooting": planners.RandomShooting}


@dataclass
class GymEpisodes:
    """Returns ``[E]`` and lengths ``[E]`` of episodes in the real environment, and seconds spent planning per step."""

    returns: np.ndarray
    lengths: np.ndarray
    plan_seconds_per_step: float


def gym_episodes(env: Environment, planner, episodes: int, seed: int = 0, steps: int | None = None) -> GymEpisodes:
    """Run ``episodes`` episodes of at most ``steps`` (default ``env.steps``) steps of MPC with ``planner``.

    Episodes that terminated are frozen: they stay in the planning batch (so the warm starts of the
    others are kept) but are no longer stepped.
    """
    steps = env.steps if steps is None else steps
    gym_envs = [env.make_gym_env() for _ in range(episodes)]
    obs = np.stack([g.reset(seed=seed + i)[0] for i, g in enumerate(gym_envs)])
    state = env.state_from_obs(obs)  # [E, S]
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    running = np.ones(episodes, dtype=bool)
    planner.reset()
    plan_seconds = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        actions = np.array(planner.act(state))  # [E, A]
        plan_seconds += time.perf_counter() - start
        for i in np.flatnonzero(running):
            o, reward, terminated, truncated, _ = gym_envs[i].step(env.gym_action(actions[i]))
            state[i] = env.state_from_obs(o)
            returns[i] += reward
            lengths[i] += 1
            running[i] = not (terminated or truncated)
        if not running.any():
            break
    for g in gym_envs:
        g.close()
    return GymEpisodes(returns, lengths, plan_seconds / max(int(lengths.max()), 1))


def parse_option(text: str, parser: argparse.ArgumentParser) -> tuple:
    """``"name=value"`` -> ``(name, value)`` with the value read as a Python literal (a number, ``True``, ...)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        parser.error(f"--set takes OPTION=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parser.error(f"--set {name}: {value!r} is not a number or other Python literal")


def learned_dynamics(path: str, env: Environment, parser: argparse.ArgumentParser):
    """The folded world model of the checkpoint ``path``; a usage error unless it was trained on ``env``."""
    try:
        record = env_record(read_config(path))
        model = load_model(path)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is a one-line error
        parser.error(str(err))
    name = record.pop("name")
    if name != env.name or record != env.config():
        parser.error(f"the model at {path} was trained on {name} {record}, not {env.name} {env.config()}")
    return model.folded()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", choices=[n for n in ENV_NAMES if get_env(n).gym_id is not None])
    parser.add_argument("--planner", choices=sorted(PLANNERS), default="cem")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="at most this many steps (default: the env's episode length)")
    parser.add_argument("--horizon", type=int, default=None, help="default: the env's")
    parser.add_argument("--samples", type=int, default=None, help="default: the env's")
    parser.add_argument("--iterations", type=int, default=None, help="default: the planner's")
    parser.add_argument("--no-termination", action="store_true", help="imagine episodes that never end")
    parser.add_argument("--model", default=None, help="plan with this checkpoint's world model (default: the true dynamics)")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="OPTION=VALUE",
                        help="a planner option over the env's (e.g. colored_fraction=0.25); repeatable")
    args = parser.parse_args(argv)
    env = get_env(args.env)
    dynamics = env if args.model is None else learned_dynamics(args.model, env, parser)
    options = dict(env.planner_options)
    if args.iterations is not None:
        options["iterations"] = args.iterations
    options.update(parse_option(text, parser) for text in args.options)
    planner = PLANNERS[args.planner](
        dynamics,
        env.action_space,
        horizon=args.horizon or env.horizon,
        num_samples=args.samples or env.samples,
        seed=args.seed,
        termination=None if args.no_termination else env.termination,
        **options,
    )
    result = gym_episodes(env, planner, args.episodes, seed=args.seed, steps=args.steps)
    print(f"{env.gym_id} with {planner!r} on {'the true dynamics' if args.model is None else 'the model ' + args.model}")
    for i, (ret, length) in enumerate(zip(result.returns, result.lengths)):
        print(f"  episode {i} (reset seed {args.seed + i}): return {ret:.2f} in {length} steps")
    print(
        f"mean return {result.returns.mean():.2f} +- {result.returns.std():.2f}; "
        f"planning {1000 * result.plan_seconds_per_step:.1f} ms per step"
    )


if __name__ == "__main__":
    main()
