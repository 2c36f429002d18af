"""The ``wmplan`` command: train, rollout, plan, benchmark, speed, mbrl.

Commands parse, call one function and print; each shared option is written once (:data:`OPTIONS`), each value
checked once, by the config, recipe or planner it goes to (:func:`bad_values` names the option). Failures are one
line: exit 2 for a bad command line (before any work), 1 while running, 130 on Ctrl-C. ``--help`` loads no MLX.
"""

from __future__ import annotations

import contextlib
import re
import sys

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        from benchmarks.speed import machine_lines

        try:
            click.echo("\n".join(machine_lines()))
        except ValueError as err:  # e.g. a malformed WMPLAN_CPU_STREAMS
            raise click.ClickException(str(err)) from None
        ctx.exit()


def _first_line(err) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


NAMED = {"environment": "env_name", "env": "env_name", "plan_iterations": "iterations", "planner": "planners"}
"""Words of library messages naming an option that has another name in a command (``unknown environment``)."""


@contextlib.contextmanager
def bad_values():
    """A command's checks of its values: a ``ValueError`` is a usage error (exit 2), naming the option its message
    starts with (``batch_size must be >= 1`` -> ``Invalid value for '--batch-size': --batch-size must ...``)."""
    try:
        yield
    except ValueError as err:
        message, ctx = _first_line(err), click.get_current_context()
        match = re.match(r"(unknown )?([a-z_]+)\b", message)
        params = {p.name: p for p in ctx.command.params if not getattr(p, "hidden", False)}
        param = (params.get(match.group(2)) or params.get(NAMED.get(match.group(2)))) if match else None
        if param is None:
            raise click.UsageError(message) from None
        if not match.group(1):
            message = param.opts[0] + message[match.end():]
        raise click.BadParameter(message, param=param) from None


class Command(click.Command):
    """A ``wmplan`` command: hidden old spellings (:func:`renamed`) fill their new options."""

    def invoke(self, ctx):
        for name, value in ctx.meta.get("renamed", {}).items():
            ctx.params[name] = value if ctx.params.get(name) is None else ctx.params[name]
        return super().invoke(ctx)


class Group(click.Group):
    """The one place where a command's failures become messages: one line, exit 1; Ctrl-C: exit 130 (128 + SIGINT)."""

    command_class = Command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as err:
            from worldmodel import CheckpointError, DatasetError
            from worldmodel.distributed import DistributedError

            if isinstance(err, (CheckpointError, DatasetError, DistributedError, ValueError, FloatingPointError, OSError)):
                raise click.ClickException(_first_line(err)) from None
            raise


@click.group(cls=Group, context_settings=CONTEXT)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version, the active BLAS and its measured GFLOP/s, and exit.")
def main():
    """wmplan: train small MLX world models and plan with them.

    Planners (random shooting, CEM/iCEM, MPPI, gradient) on any batched MLX dynamics, benchmarked in closed
    loop in the real environment (the particle, Gymnasium's pendulum, cartpole, acrobot, mountain car).
    """


class NamesInHelp(click.Option):
    """An option whose help names the planners (``{planners}``) or envs (``{envs}``), looked up only when shown."""

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is not None and "{" in record[1]:
            from planners.registry import PLANNERS
            from worldmodel.envs import ENV_NAMES

            record = record[0], record[1].format(planners=", ".join(PLANNERS), envs=", ".join(ENV_NAMES))
        return record


def _not_empty(_ctx, param, value):
    """Option callback: a path that is not ``""``."""
    if value is not None and value.strip() == "":
        raise click.BadParameter(f"{param.opts[0]} must not be empty")
    return value


def _writable(check):
    """Option callback: an output ``path`` or ``folder`` wmplan can write (``worldmodel.files``), before any work."""

    def callback(_ctx, _param, value):
        from worldmodel import files

        try:
            if value is not None:
                getattr(files, f"check_output_{check}")(value)
        except OSError as err:
            raise click.BadParameter(str(err)) from None
        return value

    return callback


def _note_iterations(ctx, param, value):
    """``wmplan mbrl --iterations``: say once that it changed meaning (it was the loop's count before ``--rounds``)."""
    if value is not None and ctx.command.name == "mbrl" and ctx.get_parameter_source(param.name).name == "COMMANDLINE":
        click.echo("Note: --iterations now sets the planner's iterations; the loop's count is --rounds.", err=True)
    return value


ENVS = "Default: the env's."
OPTIONS = {
    "env": dict(dest="env_name", default="particle", show_default=True, cls=NamesInHelp, help="Environment: {envs}."),
    "planner": dict(default="cem", show_default=True, cls=NamesInHelp, help="One of: {planners}."),
    "planners": dict(default="cem,mppi,random-shooting", show_default=True, cls=NamesInHelp, help="Comma-separated names: {planners}."),
    "model": dict(dest="model_path", type=click.Path(), callback=_not_empty,
                  help="Checkpoint folder. Default: $WMPLAN_HOME/model[-ENV], trained if missing."),
    "episodes": dict(type=int, help="Episodes (train: random-action ones, default the env's budget; benchmark: i from reset(seed=--seed + i))."),
    "dynamics": dict(default="model,true", show_default=True, help="What planners imagine with: model (learned), true (the env's); comma-separated."),
    "steps": dict(type=int, help=f"Steps per episode (at most). {ENVS}"),
    "horizon": dict(type=int, help=f"Planning horizon. {ENVS}"),
    "samples": dict(type=int, help=f"Imagined action sequences per planning iteration. {ENVS}"),
    "horizons": dict(help="Comma-separated planning horizons H (frontier: default the env's)."),
    "iterations": dict(type=int, callback=_note_iterations, help="Planner iterations per planning call. Default: the planner's own."),
    "time_budget_ms": dict(type=float, help="Plan each step within T ms: iterate while the next iteration fits (at least 1, at most --iterations)."),
    "ensemble": dict(type=int, help=f"Members of the world model, each trained on its own bootstrap of the data (1: one model). {ENVS}"),
    "propagation": dict(type=click.Choice(["expectation", "ts1", "tsinf"]), help="How an ensemble imagines (benchmark: "
                        "default the members' mean; mbrl: the env's, tsinf)."),
    "particles": dict(type=int, help="Particles per sequence with an ensemble. Default: the members (1 for expectation)."),
    "batch_size": dict(type=int, help=f"Transitions per training batch. {ENVS}"),
    "lr": dict(type=float, help="Adam's learning rate (train: the one-cycle schedule's base). Default: train: 1e-3; mbrl: the env's."),
    "runner": dict(type=click.Choice(["mlx", "gymnasium"]), help="Where episodes run. Default: train: mlx (MuJoCo's envs: gymnasium); else gymnasium where it can."),
    "seed": dict(type=int, default=0, show_default=True, help="Seeds every random draw of the command."),
    "device": dict(type=click.Choice(["cpu", "gpu"]), help="Where MLX computes. Default: MLX's (the GPU where this MLX build has one)."),
    "json": dict(dest="json_path", type=click.Path(dir_okay=False), callback=_writable("path"), help="Also write the result as JSON here."),
    "plot": dict(dest="plot_path", type=click.Path(dir_okay=False), callback=_writable("path"), help="Draw the result to a PNG."),
    "out": dict(type=click.Path(file_okay=False), callback=_writable("folder"), help="Output folder (its parent must exist)."),
    "x0": dict(type=float, help="The particle's start x (default 1)."),
    "v0": dict(type=float, help="The particle's start v (default 0)."),
    "start": dict(help="Start state, e.g. 3.1,0 for the pendulum (theta,theta_dot). Default: the env's demo start."),
}
"""Every shared option: its name (``batch_size``: ``--batch-size``) -> click's attributes, ``dest`` its parameter's name."""


def options(*names, **changed):
    """The options ``names`` of :data:`OPTIONS` in this order; ``changed[name]``: the attributes that differ in this command."""

    def decorate(func):
        for name in reversed(names):
            attrs = {**OPTIONS[name], **changed.get(name, {})}
            func = click.option("--" + name.replace("_", "-"), attrs.pop("dest", name), **attrs)(func)
        return func

    return decorate


def renamed(old: str, new: str, dest: str, type=None, values=None):
    """The hidden ``old`` spelling of ``new`` (kept a release): sets ``dest`` (old ``values`` -> new) with a note."""

    def callback(ctx, _param, value):
        if values is not None and value is not None and value not in values:
            raise click.BadParameter(f"unknown {old[2:]} {value!r}; choose from {', '.join(values)}")
        if value is not None:
            ctx.meta.setdefault("renamed", {})[dest] = values[value] if values else value
            click.echo(f"Note: {old} is deprecated; use {new}.", err=True)

    return click.option(old, type=type, hidden=True, expose_value=False, callback=callback)


def prepare(env_name, runner="any", plot_path=None, device=None):
    """``(env, runner, device)`` (``runner="any"``: none needed); with ``--plot``, matplotlib must be there."""
    from worldmodel.device import use_device
    from worldmodel.envs import get_env
    from worldmodel.envs.runner import choose_runner

    with bad_values():
        env = get_env(env_name)
    if runner == "gymnasium" and env.gymnasium is None:
        raise click.BadParameter(f"{env.name} has no Gymnasium counterpart; use --runner mlx", param_hint="'--runner'")
    try:
        chosen = runner if runner == "any" else choose_runner(env, runner)
    except ValueError as err:
        raise click.ClickException(f"--runner {runner}: {err}") from None
    if runner is None and chosen == "mlx" and env.gymnasium is not None:
        from worldmodel.envs.gymnasium import gym_id
        from worldmodel.extras import install

        click.echo(f"Note: Gymnasium is not installed: episodes run in the MLX copy of {gym_id(env)}; for "
                   f"Gymnasium's own: {install('gym')}", err=True)
    runner = chosen
    try:
        device = use_device(device)
    except ValueError as err:
        raise click.ClickException(f"--device {device}: {err}") from None
    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            from worldmodel.extras import install

            raise click.ClickException(f"--plot needs matplotlib: {install('plot')}") from None
    return env, runner, device


def resolve_start(env, x0, v0, start, seed):
    """The start ``[S]`` of ``plan``/``rollout`` and whether the user gave it (:func:`benchmarks.starts.given_start`)."""
    from benchmarks.starts import given_start

    hint = "'--start'" if start is not None else "'--x0' / '--v0'"
    if start is not None and (x0, v0) != (None, None):
        raise click.BadParameter("give the start as --start or as --x0/--v0, not both", param_hint=hint)
    if start is None and (x0, v0) != (None, None) and tuple(env.state_names) != ("x", "v"):
        raise click.BadParameter(f"--x0/--v0 set the particle's x and v; give {env.name}'s start as --start "
                                 f"{','.join(env.state_names)}", param_hint=hint)
    try:
        return given_start(env, start, (x0, v0), seed)
    except ValueError as err:
        raise click.BadParameter(f"the start {err}", param_hint=hint) from None


def load_model_for(env_name, path, world=None, start=None):
    """``(model, path, env)`` of ``worldmodel.recipe.load_model_for`` (progress on stderr), a given ``start`` rechecked."""
    from benchmarks.starts import check_start
    from worldmodel.recipe import load_model_for as load

    model, path, env = load(env_name, path, world, log=lambda line: click.echo(line, err=True))
    try:
        if start is not None:
            check_start(env, start)  # the model's env may have another box
    except ValueError as err:
        raise click.BadParameter(f"the start {err} (in the model's env, {env!r})") from None
    return model, path, env


def distinct_outputs(outputs: dict, inputs: dict | None = None, model: tuple | None = None) -> None:
    """Usage error, before any work: two ``outputs`` on one file, one onto ``inputs`` or into ``model``'s folder
    (``(model_path, env_name)``; ``worldmodel.files.check_distinct_outputs``)."""
    from worldmodel.files import check_distinct_outputs
    from worldmodel.recipe import default_model_path

    with bad_values():
        check_distinct_outputs(outputs, inputs, {} if model is None else {"--model": model[0] or default_model_path(model[1])})


def split(text) -> tuple:
    """``"a, b,a"`` -> ``("a", "b")``: the names of a comma-separated option, each once (checked where they are used)."""
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


@main.command()
@options("env", "runner", "episodes", "steps", "batch_size", "lr", "ensemble", "seed", "out", "device", lr={"default": 1e-3},
         out={"help": "Checkpoint folder (its parent must exist). Default: $WMPLAN_HOME/model[-ENV]."})
@renamed("--source", "--runner mlx|gymnasium", "runner", values={"mlx": "mlx", "gym": "gymnasium"})
@click.option("--epochs", type=int, help="Passes over the data. Default: the env's training budget.")
@click.option("--max-lr", default=2e-2, show_default=True, help="Peak of the one-cycle schedule.")
@click.option("--schedule", type=click.Choice(["onecycle", "constant"]), default="onecycle", show_default=True, help="constant: --lr throughout.")
@click.option("--hidden", type=int, help="Units in each of the two hidden layers. Default: the env's training budget.")
@click.option("--angle-features/--raw-angles", default=None, help="The env's angles as (cos, sin), or raw. Default: the env's.")
@click.option("--balance-bins", default=10, show_default=True, help="Flatten the state histogram of batches over this many bins per dim (0: off).")
@click.option("--compile/--no-compile", default=True, show_default=True, help="Run the training step under mx.compile.")
def train(env_name, runner, episodes, steps, batch_size, lr, ensemble, seed, out, device, epochs, max_lr, schedule,
          hidden, angle_features, balance_bins, compile):
    """Generate random-action data, train the world model, report held-out accuracy, save it.

    Episodes start from uniform draws over the env's training box, as the 20,000 held-out transitions do.
    """
    import time

    from worldmodel.checks import at_least
    from worldmodel.distributed import world as current_world
    from worldmodel.recipe import default_model_path, held_out_line, train_config, train_runner, train_world_model

    env, runner, device = prepare(env_name, runner or train_runner(env_name), device=device)
    with bad_values():
        at_least(1, episodes=episodes, steps=steps, hidden=hidden, ensemble=ensemble)
        config = train_config(env, epochs=epochs, batch_size=batch_size, lr=lr, max_lr=max_lr, schedule=schedule,
                              balance_bins=balance_bins, seed=seed, compile=compile)
    if angle_features and not env.angles:
        raise click.BadParameter(f"{env_name} has no angles", param_hint="'--angle-features'")
    world = current_world()
    if config.batch_size < world.size:
        raise click.BadParameter(f"--batch-size {config.batch_size} is smaller than the {world.size} processes")
    out = default_model_path(env_name) if out is None else out
    start = time.perf_counter()
    _, metrics = train_world_model(out, episodes, steps, hidden=None if hidden is None else (hidden, hidden),
                                   config=config, env=env, log=click.echo, world=world if world.size > 1 else None,
                                   runner=runner, angles=angle_features, ensemble=ensemble)
    if world.is_root:
        click.echo(f"{held_out_line(env, metrics)}\n{world.describe(device)}\nSaved model to {out} "
                   f"({time.perf_counter() - start:.1f} s)")


@main.command()
@options("env", "model", "steps", "x0", "v0", "start", "seed", "device",
         steps={"default": 15, "show_default": True, "help": "Steps of random actions (ignored with --actions)."})
@click.option("--actions", help="Actions, one a step: the particle's +1,+1,-1,0; CartPole's -10,10; the pendulum's 0.5,-2.")
def rollout(env_name, model_path, steps, x0, v0, start, seed, device, actions):
    """Open-loop rollout: the true physics and the model's imagination side by side."""
    import numpy as np

    from worldmodel.checks import at_least, check_seed
    from worldmodel.envs.runner import check_recording
    from worldmodel.rollout import compare_open_loop, comparison_lines, parse_actions

    env, _, device = prepare(env_name, device=device)
    with bad_values():
        at_least(1, steps=steps)
        check_seed(seed)
        chosen = parse_actions(env, actions) if actions is not None else None  # "" is refused, not random
    start, given = resolve_start(env, x0, v0, start, seed)
    check_recording(env, 2, len(chosen) if chosen is not None else steps)  # the true and the imagined trajectory
    chosen = env.sample_actions(np.random.default_rng(seed), steps) if chosen is None else chosen
    model, _, env = load_model_for(env_name, model_path, start=start if given else None)
    click.echo("\n".join(comparison_lines(env, chosen, *compare_open_loop(env, model, start, chosen))))
    click.echo(f"Device: {device}")


@main.command()
@options("env", "planner", "dynamics", "x0", "v0", "start", "steps", "horizon", "samples", "iterations", "time_budget_ms", "model",
         "runner", "seed", "plot", "device", dynamics={"default": "model", "help": "What the planner imagines with: model or true."},
         plot={"help": "Draw the states, actions and one-step predictions of the episode to a PNG."})
def plan(env_name, planner, dynamics, x0, v0, start, steps, horizon, samples, iterations, time_budget_ms, model_path, runner,
         seed, plot_path, device):
    """One closed-loop episode with one planner, step by step (next to the optimum where it is known)."""
    from benchmarks.suite import BenchmarkConfig, plan_episode

    env, runner, device = prepare(env_name, runner, plot_path, device)
    distinct_outputs({"--plot": plot_path}, model=(model_path, env_name) if dynamics == "model" else None)
    with bad_values():
        config = BenchmarkConfig(planners=(planner,), dynamics=(dynamics,), episodes=1, steps=steps, horizon=horizon,
                                 samples=samples, iterations=iterations, seed=seed, runner=runner, time_budget_ms=time_budget_ms)
    start, given = resolve_start(env, x0, v0, start, seed)
    source = env.true_dynamics()
    if dynamics == "model":
        model, _, env = load_model_for(env_name, model_path, start=start if given else None)
        source = model.folded()
    plan_episode(planner, dynamics, source, env, config.for_env(env), start, given, click.echo, plot_path,
                 intro=f"Device: {device}\n")


@main.command()
@options("env", "planners", "dynamics", "episodes", "steps", "horizon", "samples", "iterations", "time_budget_ms", "model",
         "runner", "propagation", "particles", "seed", "json", "plot", "device", episodes={"default": 20, "show_default": True},
         plot={"help": "Draw the return distributions to a PNG."})
@click.option("--init-states", type=click.Path(), callback=_not_empty, help="CSV of starts, its header the env's state names (x,v).")
def benchmark(env_name, planners, dynamics, episodes, steps, horizon, samples, iterations, time_budget_ms, model_path, runner,
              propagation, particles, seed, json_path, plot_path, device, init_states):
    """Closed-loop planner benchmark in the real environment.

    Every planner with every dynamics, against baselines and the optimum or a large-budget reference
    row: returns, the env's score, the model gap, ms per step. Under mlx.launch episodes are shared.
    """
    import time

    from benchmarks.plots import plot_returns
    from benchmarks.report import footer, table, write_outputs
    from benchmarks.suite import BenchmarkConfig, count_runs, prepare_run, run_benchmark
    from worldmodel.distributed import world as current_world

    env, runner, device = prepare(env_name, runner, plot_path, device)
    distinct_outputs({"--json": json_path, "--plot": plot_path}, {"--init-states": init_states},
                     model=(model_path, env_name) if "model" in split(dynamics) else None)
    with bad_values():
        config = BenchmarkConfig(planners=split(planners), dynamics=split(dynamics), episodes=episodes, steps=steps,
                                 horizon=horizon, samples=samples, iterations=iterations, seed=seed, model=model_path,
                                 init_states=init_states, runner=runner, propagation=propagation, particles=particles,
                                 time_budget_ms=time_budget_ms)
    world = current_world()
    env, model, starts = prepare_run(config, env, env_name, world, log=lambda line: click.echo(line, err=True))
    start = time.perf_counter()
    if not world.is_root:
        run_benchmark(config, env, model, starts, world=world)
        return  # rank 0 prints and writes
    if sys.stderr.isatty():
        with click.progressbar(length=count_runs(config, env) * config.for_env(env).steps, label="benchmark", file=sys.stderr) as bar:
            result = run_benchmark(config, env, model, starts, on_step=bar.update, world=world)
    else:  # a log file or a pipe: a line per run
        result = run_benchmark(config, env, model, starts, world=world, log=lambda line: click.echo(line, err=True))
    result["config"].update(wall_seconds=round(time.perf_counter() - start, 2), device=device)
    click.echo(f"{table(result)}\n{footer(result)}; {result['config']['wall_seconds']:.1f} s\n{world.describe(device)}")
    write_outputs(result, json_path, plot_path, plot_returns, announce=click.echo)


@main.command()
@options("env", "planners", "iterations", "model", "json", "device", "horizons", horizons={"default": "15,30", "show_default": True})
@click.option("--samples", default="256,1024,4096,16384", show_default=True, help="Comma-separated N.")
@click.option("--repeats", default=5, show_default=True, help="Timed calls per cell (the median is shown).")
def speed(env_name, planners, iterations, model_path, json_path, device, samples, horizons, repeats):
    """Planning throughput on the learned model, from the env's demo start: ms per call, transitions/s, GFLOP/s."""
    from benchmarks.speed import check_speed_settings, run_speed, write_speed

    _, _, device = prepare(env_name, device=device)
    distinct_outputs({"--json": json_path}, model=(model_path, env_name))
    with bad_values():
        names, samples, horizons = check_speed_settings(split(planners), samples, horizons, iterations, repeats)
    model, _, env = load_model_for(env_name, model_path)
    result = run_speed(model, env, names, samples, horizons, iterations, repeats, device, log=lambda line: click.echo(line, err=True))
    write_speed(result, json_path, click.echo)


@main.command()
@options("env", "planners", "samples", "iterations", "horizons", "episodes", "steps", "model", "runner", "seed", "json", "plot",
         "device", planners={"default": "cem,mppi", "help": "Comma-separated names: {planners}; NAME+compile: compiled calls."}, samples={"type": str, "help": "Comma-separated N. Default: 0.1, 0.3, 1 x the env's."},
         iterations={"type": str, "default": "1,3", "show_default": True, "callback": None, "help": "Comma-separated iterations."},
         episodes={"default": 5, "show_default": True}, plot={"help": "Draw return vs ms/step (log x) to a PNG."})
@click.option("--peers", default="", help="Peers planning the same model and episodes (the peers extra): pytorch_mppi, mbrl-lib, jax.")
def frontier(env_name, runner, json_path, plot_path, device, planners, peers, model_path, **given):
    """Return vs planning ms per step of each planner over a grid of budgets, and of its peers: the Pareto fronts."""
    from benchmarks.frontier import FrontierConfig, measure_frontier, write_frontier

    env, runner, device = prepare(env_name, runner, plot_path, device)
    distinct_outputs({"--json": json_path, "--plot": plot_path}, model=(model_path, env_name))
    with bad_values():
        config = FrontierConfig(planners=split(planners), peers=split(peers), runner=runner, model=model_path, **given)
    write_frontier(measure_frontier(config, env, device, log=lambda line: click.echo(line, err=True)), json_path, plot_path, click.echo)


MBRL_OPTION = {"env": "env_name", "plan_iterations": "iterations"}
"""``MbrlConfig`` fields whose ``wmplan mbrl`` option has another name; every other field is its own option."""


@main.command()
@options("env", "planner", "horizon", "samples", "iterations", "ensemble", "propagation", "particles", "batch_size",
         "lr", "runner", "seed", "out", "json", "plot", "device",
         out={"help": "Run folder (its parent must exist). Default: $WMPLAN_HOME/mbrl-ENV."}, plot={"help": "Draw the learning curve to a PNG."},
         planner={"default": None, "show_default": False, "help": "One of: {planners}. Default: the env's (cem)."})
@renamed("--plan-iterations", "--iterations", "iterations", type=int)
@renamed("--episodes-per-iteration", "--episodes-per-round", "episodes_per_round", type=int)
@click.option("--rounds", type=int, help="Rounds of planning, adding data and retraining (0: the random data only). Default: the env's.")
@click.option("--episodes-per-round", type=int, help="Episodes planned with the current model per round. Default: the env's.")
@click.option("--random-episodes", type=int, help="Random-action episodes the run starts from. Default: the env's.")
@click.option("--random-steps", type=int, help="Steps of each random episode. Default: the env's.")
@click.option("--first-train-steps", type=int, help="Gradient steps on the random data. Default: the env's.")
@click.option("--train-steps", type=int, help="Gradient steps after every round, from the current weights. Default: the env's.")
@click.option("--normalization", type=click.Choice(["refit", "fixed"]), help="Statistics fit on all data every round, or fixed.")
@click.option("--eval-episodes", type=int, help="Evaluation episodes after every round, from the benchmark's starts. Default: the env's.")
@click.option("--resume", is_flag=True, help="Continue the run in --out up to --rounds; other settings must be the run's.")
def mbrl(out, resume, json_path, plot_path, device, **options):
    """Model-based RL: learn a world model from the episodes it plans.

    After random episodes, every round plans episodes with the current model, adds them, retrains and
    evaluates; the run folder is snapshot after every round (--resume continues it exactly).
    """
    import dataclasses
    import time

    from benchmarks.mbrl_report import curve_table, references_line
    from benchmarks.plots import plot_learning_curve
    from benchmarks.report import write_outputs
    from worldmodel.mbrl import MbrlConfig, check_outputs, default_run_folder, resume_config, run_mbrl

    ctx = click.get_current_context()
    option_of = {f.name: MBRL_OPTION.get(f.name, f.name) for f in dataclasses.fields(MbrlConfig)}
    settings = {field: options[name] for field, name in option_of.items() if options[name] is not None}
    given = {field: settings[field] for field, name in option_of.items()
             if ctx.get_parameter_source(name).name == "COMMANDLINE" or name in ctx.meta.get("renamed", {})}
    env, _, device = prepare(settings["env"], "any" if resume else options["runner"], plot_path, device)
    run_path = default_run_folder(env.name) if out is None else out  # creates $WMPLAN_HOME if missing
    with bad_values():
        config = MbrlConfig(**settings)
        check_outputs(run_path, {"--json": json_path, "--plot": plot_path}, resume, how="--resume")
        config = resume_config(run_path, **given) if resume else config
    start = time.perf_counter()
    result = run_mbrl(config, run_path, resume=resume, log=lambda line: click.echo(line, err=True))
    click.echo(f"{curve_table(result)}\n{references_line(result)}\nEpisodes in {result['runner']}; "
               f"{time.perf_counter() - start:.1f} s; device: {device}")
    click.echo(f"Run folder: {run_path}; the last model: {result['model']}")
    write_outputs(result, json_path, plot_path, plot_learning_curve, announce=click.echo)


if __name__ == "__main__":  # pragma: no cover - `python -m cli`, as the distributed launches run it
    sys.exit(main())
