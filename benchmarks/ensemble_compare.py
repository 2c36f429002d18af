"""One world model vs an ensemble with particle propagation, on the same data, in closed loop.

    python -m benchmarks.ensemble_compare [--train-episodes 20 --train-steps 50] [--ensemble 5]
        [--particles 5] [--episodes 20 --steps 50 --samples 500] [--seed 0] [--json PATH]

Trains a :class:`~worldmodel.WorldModel` and an :class:`~worldmodel.EnsembleWorldModel` of
``--ensemble`` members (each on its own bootstrap) on the same random-action transitions, times
both trainings, then plans with CEM in closed loop in the true particle environment from the
benchmark's starts (the hard ones first) with: the single model; the ensemble's mean (no
particles); and each ``--modes`` propagation (sampling the heads' noise with ``--probabilistic``). The cost ratio is the summed cost over the summed
cost of the exact optimum (1.0 is optimal). Every planner uses the same seed and env ids.
"""

from __future__ import annotations

import argparse
import json
import time

import mlx.core as mx

import planners
from worldmodel import EnsembleWorldModel, ParticleEnv, TrainConfig, WorldModel, generate, train

from worldmodel.envs.runner import planner_policy, run_episodes


def train_timed(build, data, config: TrainConfig) -> tuple:
    """``(model, wall seconds, CPU seconds)``: ``build()`` trained on ``data``, timed after a one-epoch
    warm-up of another ``build()``. CPU seconds (all threads of this process) count the work alone,
    where the wall time also counts waiting for cores other processes hold."""
    train(build(), data.subset(slice(0, 256)), TrainConfig(epochs=1, seed=config.seed), log=None)
    mx.random.seed(config.seed)  # the model's initial weights follow the seed
    model = build()
    wall, cpu = time.perf_counter(), time.process_time()
    train(model, data, config, log=None)
    return model, time.perf_counter() - wall, time.process_time() - cpu


def closed_loop_row(name: str, dynamics, env, starts, steps: int, samples: int, seed: int, optimal_cost: float, propagation=None) -> dict:
    """CEM with ``dynamics`` (and ``propagation``) for ``steps`` steps from ``starts``: one result row."""
    planner = planners.CEM(dynamics, env.action_space, samples=samples, seed=seed, propagation=propagation)
    episodes = run_episodes(planner_policy(planner), env, starts, steps)
    return {
        "name": name,
        "cost_ratio": float(-episodes.returns.sum() / optimal_cost),
        "mean_return": float(episodes.returns.mean()),
        "success_rate": float(env.defaults.benchmark.success(env, episodes.states, episodes.terminated).mean()),
        "ms_per_step": 1000.0 * episodes.plan_seconds / steps,
    }


def compare(args) -> dict:
    """Train both models, run every closed-loop row; the JSON-ready result."""
    env = ParticleEnv()
    data = generate(env, args.train_episodes, args.train_steps, seed=args.seed)
    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    dims = (env.state_dim, env.action_space.dim)
    single, single_wall, single_cpu = train_timed(lambda: WorldModel(*dims), data, config)
    ensemble, ensemble_wall, ensemble_cpu = train_timed(
        lambda: EnsembleWorldModel(args.ensemble, *dims, probabilistic=args.probabilistic), data, config
    )

    starts = env.benchmark_starts(args.episodes, seed=args.seed)
    optimal_cost = float(-env.defaults.benchmark.optimum.returns(env, starts, args.steps).sum())
    run = {"env": env, "starts": starts, "steps": args.steps, "samples": args.samples, "seed": args.seed, "optimal_cost": optimal_cost}
    rows = [
        closed_loop_row("single", single.folded(), **run),
        closed_loop_row(f"ensemble{args.ensemble}-mean", ensemble.folded(), **run),
    ]
    for mode in args.modes:
        propagation = planners.Propagation(mode, particles=args.particles, sample_noise=args.probabilistic)
        name = f"ensemble{args.ensemble}-{mode}-P{args.particles}{'-noise' if args.probabilistic else ''}"
        rows.append(closed_loop_row(name, ensemble.folded(), propagation=propagation, **run))
    return {
        "config": vars(args),
        "transitions": len(data),
        "train_seconds": {"single": single_wall, "ensemble": ensemble_wall, "ratio": ensemble_wall / single_wall},
        "train_cpu_seconds": {"single": single_cpu, "ensemble": ensemble_cpu, "ratio": ensemble_cpu / single_cpu},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-episodes", type=int, default=20, help="Random-action episodes of training data.")
    parser.add_argument("--train-steps", type=int, default=50, help="Steps per training episode.")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ensemble", type=int, default=5, help="Members of the ensemble.")
    parser.add_argument("--particles", type=int, default=5, help="Particles per sequence.")
    parser.add_argument("--probabilistic", action="store_true", help="Probabilistic members; particles sample their noise.")
    parser.add_argument("--modes", default="tsinf", help="Comma-separated propagation modes: expectation, ts1, tsinf.")
    parser.add_argument("--episodes", type=int, default=20, help="Closed-loop episodes (starts: the hard ones, then uniform).")
    parser.add_argument("--steps", type=int, default=50, help="Closed-loop steps per episode.")
    parser.add_argument("--samples", type=int, default=500, help="CEM samples per iteration.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="Also write the results as JSON here.")
    args = parser.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    result = compare(args)
    wall, cpu = result["train_seconds"], result["train_cpu_seconds"]
    print(f"{result['transitions']} transitions; training: single {wall['single']:.2f} s, "
          f"ensemble of {args.ensemble} {wall['ensemble']:.2f} s ({wall['ratio']:.2f}x); "
          f"CPU time {cpu['single']:.2f} s vs {cpu['ensemble']:.2f} s ({cpu['ratio']:.2f}x)")
    for row in result["rows"]:
        print(f"{row['name']:<28} cost ratio {row['cost_ratio']:.4f}  mean return {row['mean_return']:8.3f}  "
              f"success {100 * row['success_rate']:3.0f}%  {row['ms_per_step']:7.1f} ms/step")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
