"""MuJoCo as the true dynamics: the evaluator's throughput, and planning closed-loop with it.

    python -m benchmarks.mujoco_true throughput --sequences 500 --horizon 30 --threads 1,2
    python -m benchmarks.mujoco_true closed-loop --env InvertedPendulum-v5 --planner cem --episodes 3

``throughput`` scores ``sequences`` random action sequences of ``horizon`` env steps from one
state, per Gymnasium id and thread count (the counts interleaved, best of ``repeats``), and
prints sequences x horizon per second (wall clock) and the process's CPU seconds per call.
``closed-loop`` plans every action of Gymnasium episodes with :class:`MujocoEvaluator` and prints
each episode's return and the planning milliseconds per action. Needs the mujoco extra.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import planners
from worldmodel.envs.mujoco_true import MUJOCO_TASKS, MujocoEvaluator, physics_states

__all__ = ["throughput", "closed_loop", "main"]


def throughput(gym_id: str, sequences: int, horizon: int, threads: list[int], repeats: int = 5, seed: int = 0) -> list[dict]:
    """One row per thread count: ``{env, threads, sequences, horizon, seconds, cpu_seconds, steps_per_second}``
    (``steps``: sequences x horizon env steps; the best of ``repeats`` interleaved calls)."""
    import gymnasium

    env = gymnasium.make(gym_id)
    env.reset(seed=seed)
    start = physics_states([env])
    low, high = env.action_space.low, env.action_space.high
    actions = np.random.default_rng(seed).uniform(low, high, size=(1, sequences, horizon, len(low)))
    evaluators = {count: MujocoEvaluator(env, threads=count) for count in threads}
    best = {count: (float("inf"), 0.0) for count in threads}
    for _ in range(repeats + 1):  # the first round warms up
        for count, evaluator in evaluators.items():
            wall, cpu = time.perf_counter(), time.process_time()
            evaluator.returns(start, actions)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[count] = min(best[count], (wall, cpu))
    for evaluator in evaluators.values():
        evaluator.close()
    env.close()
    return [
        {"env": gym_id, "threads": count, "sequences": sequences, "horizon": horizon, "seconds": wall,
         "cpu_seconds": cpu, "steps_per_second": sequences * horizon / wall}
        for count, (wall, cpu) in best.items()
    ]


def closed_loop(gym_id: str, planner: str, episodes: int, steps: int, seed: int = 0, **options) -> list[dict]:
    """Gymnasium episodes (at most ``steps`` actions each) planned through :class:`MujocoEvaluator`:
    one row per episode, ``{return, steps, ms_per_action}``. ``options``: the planner's (``None`` left out)."""
    import gymnasium

    env = gymnasium.make(gym_id)
    evaluator = MujocoEvaluator(env)
    policy = planners.make_planner(planner, evaluator, evaluator.action_space, seed=seed, **options)
    rows = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        policy.reset()
        total, planning, taken = 0.0, 0.0, 0
        for taken in range(1, steps + 1):
            start = time.perf_counter()
            action = np.array(policy.act(physics_states([env])))[0]
            planning += time.perf_counter() - start
            _, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        rows.append({"env": gym_id, "planner": planner, "episode": episode, "return": total, "steps": taken,
                     "ms_per_action": 1e3 * planning / taken})
    evaluator.close()
    env.close()
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    speed = commands.add_parser("throughput", help="sequences x horizon per second, per env and thread count")
    speed.add_argument("--env", default=",".join(MUJOCO_TASKS), help="Gymnasium ids, comma-separated")
    speed.add_argument("--sequences", type=int, default=500)
    speed.add_argument("--horizon", type=int, default=30)
    speed.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    speed.add_argument("--repeats", type=int, default=5)
    loop = commands.add_parser("closed-loop", help="episodes planned with MuJoCo itself")
    loop.add_argument("--env", default="InvertedPendulum-v5")
    loop.add_argument("--planner", default="cem", choices=list(planners.PLANNERS)[:4])
    loop.add_argument("--episodes", type=int, default=3)
    loop.add_argument("--steps", type=int, default=1000, help="actions per episode at most")
    loop.add_argument("--samples", type=int)
    loop.add_argument("--horizon", type=int)
    loop.add_argument("--iterations", type=int)
    args = parser.parse_args(argv)
    if args.command == "throughput":
        for gym_id in args.env.split(","):
            for row in throughput(gym_id, args.sequences, args.horizon, [int(t) for t in args.threads.split(",")], args.repeats):
                print(json.dumps(row), flush=True)
    else:
        options = {"samples": args.samples, "horizon": args.horizon, "iterations": args.iterations}
        for row in closed_loop(args.env, args.planner, args.episodes, args.steps, **options):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
