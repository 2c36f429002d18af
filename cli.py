"""The ``wmplan`` command: train, rollout, plan, benchmark, speed.

Heavy imports (MLX, the packages) happen inside the subcommands, so ``wmplan --help`` is instant.
Every expected failure ends in a one-line error: exit 2 for a bad command line (click's usage
errors: an unknown option, a bad value, an output path that cannot be written -- all found before
any work starts), exit 1 for what goes wrong while running (a missing or corrupt checkpoint, a
malformed start-states file, a run too large for the memory).
"""

from __future__ import annotations

import functools
import os
import sys
from importlib.metadata import PackageNotFoundError, version

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _version() -> str:
    try:
        return version("wmplan")
    except PackageNotFoundError:
        return "unknown"


def _print_version(ctx, _param, value):
    if not value or ctx.resilient_parsing:
        return
    import mlx.core as mx

    import planners.runtime

    blas = planners.runtime.blas.status()
    try:
        gflops = planners.runtime.blas.measure_matmul_gflops()
    except ValueError as err:  # e.g. a malformed WMPLAN_CPU_STREAMS
        raise click.ClickException(str(err)) from None
    click.echo(f"wmplan {_version()} (mlx {mx.__version__}, device {mx.default_device()})")
    threads = planners.runtime.blas.threads()
    click.echo(f"BLAS: {blas.name}{'' if blas.active else ' — ' + (blas.message or 'not optimised')}"
               + (f", {blas.kernels} kernels" if blas.kernels else "")
               + (" (set by OPENBLAS_CORETYPE)" if blas.kernels and os.environ.get("OPENBLAS_CORETYPE") else "")
               + f", route: {blas.route}" + (f", {threads} thread(s) (WMPLAN_BLAS_THREADS)" if threads else ""))
    click.echo(f"Rollouts split over {planners.runtime.streams.default_count()} CPU stream(s) (WMPLAN_CPU_STREAMS)"
               if mx.default_device() == mx.cpu else "Rollouts on one GPU stream")
    click.echo(f"float32 matmul 1024x1024: {gflops:.1f} GFLOP/s")
    ctx.exit()


def friendly_errors(func):
    """Turn the errors a user can cause into one-line messages (exit 1) instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from worldmodel import CheckpointError, DatasetError
        from worldmodel.distributed import DistributedError

        try:
            return func(*args, **kwargs)
        except (CheckpointError, DatasetError, DistributedError, ValueError, FloatingPointError, OSError) as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise click.ClickException(message) from None

    return wrapper


@click.group(context_settings=CONTEXT)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version, the active BLAS and its measured GFLOP/s, and exit.")
def main():
    """wmplan: train small MLX world models and plan with them.

    Planners (random shooting, CEM/iCEM, MPPI, gradient) run on any batched MLX dynamics; the
    benchmark compares them in closed loop in the real environment (the 1-D particle, or Gymnasium's
    pendulum, cartpole, acrobot and mountain car) against baselines and the exact optimum or a
    large-budget reference planner.
    """


def device_option(func):
    """The ``--device cpu|gpu`` option of the commands that compute."""
    return click.option(
        "--device", type=click.Choice(["cpu", "gpu"]), default=None,
        help="Where MLX computes. Default: MLX's default device (the GPU when this MLX build has one).",
    )(func)


def gpu_available() -> bool:
    """Whether this MLX build can use a GPU here (Metal on macOS, CUDA with mlx[cuda12|cuda13] on Linux)."""
    import mlx.core as mx

    for backend in ("metal", "cuda"):
        module = getattr(mx, backend, None)
        try:
            if module is not None and module.is_available():
                return True
        except Exception:  # noqa: BLE001 - a backend that cannot even be queried is not available
            pass
    return False


def use_device(name):
    """Make ``name`` (``"cpu"``, ``"gpu"`` or ``None``: keep MLX's default) the default device; return its name."""
    import mlx.core as mx

    if name == "gpu":
        if not gpu_available():
            raise click.ClickException(
                "--device gpu: this MLX build sees no GPU (neither Metal nor CUDA is available); "
                "use --device cpu, or on Linux with an NVIDIA GPU install mlx[cuda12] or mlx[cuda13]"
            )
        mx.set_default_device(mx.gpu)
    elif name == "cpu":
        mx.set_default_device(mx.cpu)
    return "gpu" if mx.default_device().type == mx.gpu else "cpu"


def current_world():
    """This process's place in a ``mlx.launch`` job (rank 0 of 1 without a launcher)."""
    from worldmodel.distributed import world

    return world()


def device_line(device, world) -> str:
    """``Device: cpu`` and, with several processes, how many and over what."""
    if world.size == 1:
        return f"Device: {device}"
    return f"Device: {device}; {world.size} processes (mx.distributed, {world.backend} backend)"


def _bounded(name, holds, wording):
    """Option callback: ``value`` (or ``None``) unless ``holds(value)`` fails: then ``{name} must be {wording}``."""
    def check(_ctx, _param, value):
        if value is not None and not holds(value):
            raise click.BadParameter(f"{name} must be {wording}, got {value}")
        return value

    return check


def positive(name):
    return _bounded(name, lambda value: value >= 1, ">= 1")


def non_negative(name):
    return _bounded(name, lambda value: value >= 0, ">= 0")


def positive_number(name):
    return _bounded(name, lambda value: value > 0, "a positive number")


def seed_range(_ctx, param, value):
    """Option callback: a seed, an integer from 0 to 2**64 - 1 (what every random generator takes)."""
    if value is not None and not 0 <= value < 2**64:
        raise click.BadParameter(f"{param.opts[0]} must be an integer from 0 to 2**64 - 1, got {value}")
    return value


def non_empty(_ctx, param, value):
    """Option callback: a path that is not ``""``."""
    if value is not None and value.strip() == "":
        raise click.BadParameter(f"{param.opts[0]} must not be empty")
    return value


def output_file(_ctx, _param, value):
    """Option callback: a file path wmplan can write (checked now, before any work; see worldmodel.files)."""
    from worldmodel.files import check_output_path

    if value is not None:
        try:
            check_output_path(value)
        except OSError as err:
            raise click.BadParameter(str(err)) from None
    return value


def output_folder(_ctx, _param, value):
    """Option callback: a folder wmplan can create or write into (checked now, before any work)."""
    from worldmodel.files import check_output_folder

    if value is not None:
        try:
            check_output_folder(value)
        except OSError as err:
            raise click.BadParameter(str(err)) from None
    return value


def _planner_names():
    from planners.registry import PLANNERS

    return tuple(PLANNERS)


class NamesInHelp(click.Option):
    """An option whose help text names the registered planners (``{planners}``) or environments
    (``{envs}``), looked up only when help is shown (importing them loads MLX, which ``wmplan --help``
    should not wait for)."""

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None:
            return record
        text = record[1]
        for key, names in (("{planners}", _planner_names), ("{envs}", _env_names)):
            if key in text:
                text = text.replace(key, ", ".join(names()))
        return record[0], text


def _split_names(text, known, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise click.BadParameter(f"give at least one {what}")
    for name in names:
        if name not in known:
            raise click.BadParameter(f"unknown {what} {name!r}; choose from {', '.join(known)}")
    return tuple(dict.fromkeys(names))


DEFAULT_ENV = "particle"
"""The environment of ``--env`` when none is given (the seed's, which ``wmplan train`` trains by default)."""


def _env_names():
    from worldmodel.envs import ENV_NAMES

    return ENV_NAMES


def env_option(func):
    """The ``--env NAME`` option of the commands that run an environment."""
    return click.option("--env", "env_name", default=DEFAULT_ENV, show_default=True, cls=NamesInHelp,
                        help="Environment: {envs}.")(func)


def resolve_env(name):
    """The environment ``name`` with its default options; a usage error naming the choices else."""
    from worldmodel.envs import get_env

    try:
        return get_env(name)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--env'") from None


def resolve_start(env, x0, v0, start, seed):
    """The start ``[S]`` of ``plan``/``rollout`` and whether the user gave it: ``--start``, the particle's
    ``--x0/--v0``, else the env's demo start (``reset(seed=seed)``; the particle: (1, 0)).
    Checked against the env's state box; a usage error else."""
    import numpy as np

    from benchmarks.starts import check_start, parse_start

    if start is not None:
        if x0 is not None or v0 is not None:
            raise click.BadParameter("give the start as --start or as --x0/--v0, not both", param_hint="'--start'")
        try:
            return parse_start(env, start), True
        except ValueError as err:
            raise click.BadParameter(f"the start {err}", param_hint="'--start'") from None
    if x0 is None and v0 is None:
        return env.demo_start(seed), False
    if tuple(env.state_names) != ("x", "v"):
        raise click.BadParameter(f"--x0/--v0 set the particle's x and v; give {env.name}'s start as "
                                 f"--start {','.join(env.state_names)}", param_hint="'--x0' / '--v0'")
    demo = env.demo_start(seed)
    values = (demo[0] if x0 is None else x0, demo[1] if v0 is None else v0)
    try:
        return np.array(check_start(env, values), dtype=np.float32), True
    except ValueError as err:
        raise click.BadParameter(f"the start {err}", param_hint="'--x0' / '--v0'") from None


def recheck_start(env, start, given):
    """The start checked again against ``env`` (a checkpoint's env may have another state box)."""
    from benchmarks.starts import check_start

    if given:
        try:
            check_start(env, start)
        except ValueError as err:
            raise click.BadParameter(f"the start {err} (in the model's env, {env!r})") from None


def resolve_runner(env, requested):
    """``"gymnasium"`` or ``"mlx"`` for ``env`` (:func:`benchmarks.closed_loop.choose_runner`): a usage
    error for an env without a Gymnasium counterpart, a one-line error when Gymnasium is missing."""
    from benchmarks.closed_loop import choose_runner

    if requested == "gymnasium" and env.gym_id is None:
        raise click.BadParameter(f"{env.name} has no Gymnasium counterpart; use --runner mlx", param_hint="'--runner'")
    try:
        return choose_runner(env, requested)
    except ValueError as err:
        raise click.ClickException(f"--runner {requested}: {err}") from None


def runner_option(func):
    """The ``--runner gymnasium|mlx`` option: where closed-loop episodes run."""
    return click.option(
        "--runner", type=click.Choice(["gymnasium", "mlx"]), default=None,
        help="Where the episodes run: Gymnasium's env or the MLX copy. Default: Gymnasium's when the env "
             "mirrors one and gymnasium is installed (the 'gym' extra), else the MLX copy.",
    )(func)


def start_options(func):
    """``--x0/--v0`` (the particle's) and ``--start`` (any env's) of ``plan`` and ``rollout``."""
    func = click.option("--start", default=None, help="Start state, one number per state variable, e.g. 3.1,0 "
                        "for the pendulum (theta,theta_dot). Default: where reset(seed=--seed) puts the env "
                        "(the particle: x = 1, v = 0).")(func)
    func = click.option("--v0", default=None, type=float, help="The particle's start v (default 0).")(func)
    return click.option("--x0", default=None, type=float, help="The particle's start x (default 1).")(func)


def data_source(_ctx, _param, value):
    """Option callback: where training episodes run, one of :data:`worldmodel.data.SOURCES` (a usage error else)."""
    from worldmodel.data import SOURCES

    if value not in SOURCES:
        raise click.BadParameter(f"unknown source {value!r}; choose from {', '.join(SOURCES)}")
    return value


@main.command(context_settings=CONTEXT)
@env_option
@click.option("--source", default="mlx", show_default=True, callback=data_source,
              help="Where the random-action episodes run: mlx (the env's MLX dynamics) or gym (Gymnasium itself).")
@click.option("--episodes", type=int, default=None, callback=positive("--episodes"),
              help="Random-action episodes to record. Default: the env's training budget.")
@click.option("--steps", type=int, default=None, callback=positive("--steps"), help="Steps per episode. Default: the env's training budget.")
@click.option("--epochs", type=int, default=None, callback=positive("--epochs"), help="Default: the env's training budget.")
@click.option("--batch-size", type=int, default=None, callback=positive("--batch-size"), help="Default: the env's training budget.")
@click.option("--lr", default=1e-3, show_default=True, help="Adam's base learning rate (the seed's).")
@click.option("--max-lr", default=2e-2, show_default=True, help="Peak of the one-cycle schedule.")
@click.option("--schedule", type=click.Choice(["onecycle", "constant"]), default="onecycle", show_default=True,
              help="'constant' keeps --lr throughout, as the seed did.")
@click.option("--hidden", type=int, default=None, callback=positive("--hidden"),
              help="Units in each of the two hidden layers. Default: the env's training budget.")
@click.option("--angle-features/--raw-angles", default=None,
              help="Feed the env's angles to the model as (cos, sin), or as they are. Default: the env's choice.")
@click.option("--ensemble", type=int, default=None, callback=positive("--ensemble"),
              help="Members of an ensemble of world models, each trained on its own bootstrap of the data "
                   "(1: one model). Default: the env's training budget.")
@click.option("--balance-bins", default=10, show_default=True, help="Flatten the state histogram of batches over this many bins per dim (0: off).")
@click.option("--compile/--no-compile", default=True, show_default=True, help="Run the training step under mx.compile.")
@click.option("--seed", default=0, show_default=True, callback=seed_range)
@click.option("--out", type=click.Path(file_okay=False), default=None, callback=output_folder, help="Checkpoint folder (its parent must exist). Default: $WMPLAN_HOME/model for the particle, $WMPLAN_HOME/model-ENV for the others.")
@device_option
@friendly_errors
def train(env_name, source, episodes, steps, epochs, batch_size, lr, max_lr, schedule, hidden, angle_features,
          ensemble, balance_bins, compile, seed, out, device):
    """Generate random-action data, train the world model, report held-out accuracy, save it.

    The data are random-action episodes from states drawn uniformly over the env's training box
    (restarted from a new draw where an episode terminates); the held-out one-step MSE is measured
    on 20,000 single transitions drawn the same way. The checkpoint records the env.

    Under mlx.launch (several processes) the training is data-parallel: each process takes its
    share of every batch, gradients are averaged; rank 0 prints and saves.
    """
    import time

    from worldmodel.recipe import default_model_path, held_out_line, train_config, train_world_model

    env = resolve_env(env_name)
    if source == "gym" and env.gym_id is None:
        raise click.BadParameter(f"{env_name} has no Gymnasium counterpart", param_hint="'--source'")
    if angle_features and not env.angles:
        raise click.BadParameter(f"{env_name} has no angles", param_hint="'--angle-features'")
    if source == "gym":
        try:  # before any work: gymnasium may be missing
            env.make_gym_env().close()
        except ImportError as err:
            raise click.ClickException(f"--source gym: {err}") from None
    device = use_device(device)
    world = current_world()
    out = default_model_path(env_name) if out is None else out
    settings = {"epochs": epochs, "batch_size": batch_size}
    config = train_config(env, lr=lr, max_lr=max_lr, schedule=schedule, balance_bins=balance_bins, seed=seed,
                          compile=compile, **{k: v for k, v in settings.items() if v is not None})
    if config.batch_size < world.size:
        raise click.BadParameter(f"--batch-size {config.batch_size} is smaller than the {world.size} processes")
    start = time.perf_counter()
    _, metrics = train_world_model(out, episodes, steps, hidden=None if hidden is None else (hidden, hidden),
                                   config=config, env=env, log=click.echo, world=world if world.size > 1 else None,
                                   source=source, angles=angle_features, ensemble=ensemble)
    if not world.is_root:
        return
    click.echo(held_out_line(env, metrics))
    click.echo(device_line(device, world))
    click.echo(f"Saved model to {out} ({time.perf_counter() - start:.1f} s)")


def load_or_train_model(path, world=None, env_name="particle"):
    """The model at ``path``; with no path, ``env_name``'s default one, trained first with the env's
    default budget (and said so) if missing.

    With several processes (``world``), rank 0 alone trains a missing default model while the
    others wait for it (the path must be visible to every process).
    """
    import os

    from worldmodel import load_model
    from worldmodel.distributed import all_max
    from worldmodel.envs import get_env
    from worldmodel.recipe import default_model_path, train_world_model

    if path is not None:
        return load_model(path), path
    path = default_model_path(env_name)

    missing = not os.path.exists(os.path.join(path, "config.json"))
    if world is not None and world.size > 1:
        missing = all_max(float(missing), world) > 0  # every rank takes the same branch
    if missing:
        if world is None or world.is_root:
            click.echo(f"No model at {path}: training the default one first (wmplan train --env {env_name}).", err=True)
            train_world_model(path, env=get_env(env_name), log=lambda line: click.echo(line, err=True))
        if world is not None and world.size > 1:
            all_max(0.0, world)  # wait until rank 0 has saved it
    return load_model(path), path


def load_model_for(env_name, path, world=None):
    """``(model, path, env)``: the model at ``path`` (the default one without a path; see
    :func:`load_or_train_model`) and the environment it was trained on, which must be ``env_name``.

    A missing default model is trained first with the env's default budget.
    """
    from worldmodel import read_config
    from worldmodel.envs import env_of_checkpoint

    model, path = load_or_train_model(path, world, env_name)
    env = env_of_checkpoint(read_config(path))
    if env.name != env_name:
        raise click.ClickException(f"the model at {path} was trained for {env.name}, not {env_name}; "
                                   f"pass --env {env.name} or a model of {env_name}")
    return model, path, env


def parse_actions(env, text):
    """``"+1,0,-1"`` -> actions ``[T, A]`` of ``env`` (its ``Discrete`` values, or numbers in its ``Box``)."""
    import numpy as np

    try:
        actions = [env.encode_action(float(tok)) for tok in text.replace(" ", "").split(",")]
    except ValueError as err:
        detail = str(err) if "actions are" in str(err) else f"{env.name}'s actions are numbers"
        raise click.BadParameter(f"actions must be a comma-separated list; {detail}, got {text!r}") from None
    return np.stack(actions)


@main.command(context_settings=CONTEXT)
@env_option
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (the particle's), $WMPLAN_HOME/model-ENV for the others; trained if missing.")
@click.option("--steps", default=15, show_default=True, callback=positive("--steps"), help="Steps of random actions (ignored with --actions).")
@start_options
@click.option("--actions", default=None, help="Actions to apply, one step each: the particle's pushes +1,+1,-1,0; "
              "CartPole's forces -10,10; a Box's numbers, e.g. 0.5,-2 for the pendulum's torques.")
@click.option("--seed", default=0, show_default=True, callback=seed_range, help="Seed of the random actions and of reset.")
@device_option
@friendly_errors
def rollout(env_name, model_path, steps, x0, v0, start, actions, seed, device):
    """Open-loop rollout: the true physics and the model's imagination side by side."""
    import numpy as np

    from worldmodel.rollout import compare_open_loop

    env = resolve_env(env_name)
    start, given = resolve_start(env, x0, v0, start, seed)
    chosen = parse_actions(env, actions) if actions else env.sample_actions(np.random.default_rng(seed), steps)
    device = use_device(device)
    model, _, env = load_model_for(env_name, model_path)
    recheck_start(env, start, given)
    true, imagined = compare_open_loop(env, model, start, chosen)
    names = [*env.state_names, "r"]
    for t, action in enumerate(chosen):
        row = lambda values: ", ".join(f"{n}={v:+.3f}" for n, v in zip(names, values))  # noqa: E731
        click.echo(f"t={t:02d} a={env.describe_action(action)} | TRUE {row(true[t])}  ||  MODEL {row(imagined[t])}")
    err = np.abs(true - imagined).max(axis=0)
    click.echo(f"Max |error| over {len(chosen)} steps: " + ", ".join(f"{n} = {e:.4f}" for n, e in zip(names, err)))
    click.echo(f"Device: {device}")


@main.command(context_settings=CONTEXT)
@env_option
@click.option("--planners", "planner_names", default="cem,mppi,random-shooting", show_default=True, cls=NamesInHelp,
              help="Comma-separated: {planners}. Baselines (random-policy, zero, the env's controller) and the "
                   "reference row (optimal, or a large-budget CEM) are always added.")
@click.option("--dynamics", default="model,true", show_default=True, help="Comma-separated: model (the learned world model), true (the env's own dynamics).")
@click.option("--episodes", default=20, show_default=True, callback=positive("--episodes"),
              help="Episodes: episode i starts from reset(seed=--seed + i) (the particle: 6 hard starts, then uniform draws); overridden by --init-states.")
@click.option("--steps", type=int, default=None, callback=positive("--steps"), help="Closed-loop steps per episode (at most). Default: the env's episode length.")
@click.option("--horizon", type=int, default=None, callback=positive("--horizon"), help="Planning horizon. Default: the env's.")
@click.option("--samples", type=int, default=None, callback=positive("--samples"), help="Imagined action sequences per episode and iteration. Default: the env's.")
@click.option("--iterations", type=int, default=None, callback=positive("--iterations"), help="Optimiser iterations per step. Default: each planner's own.")
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (the particle's), $WMPLAN_HOME/model-ENV for the others; trained if missing.")
@click.option("--init-states", type=click.Path(), default=None, callback=non_empty,
              help="CSV whose header names the env's state variables (the particle: x,v) and with one start per row.")
@runner_option
@click.option("--propagation", type=click.Choice(["expectation", "ts1", "tsinf"]), default=None,
              help="How an ensemble model imagines each sequence (particles; ignored, with a note, for a single "
                   "model). Default: the members' mean.")
@click.option("--particles", type=int, default=None, callback=positive("--particles"),
              help="Particles per sequence with --propagation. Default: the members (1 for expectation).")
@click.option("--seed", default=0, show_default=True, callback=seed_range)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Also write the results as JSON here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Draw the return distributions to a PNG (needs the 'plot' extra).")
@device_option
@friendly_errors
def benchmark(env_name, planner_names, dynamics, episodes, steps, horizon, samples, iterations, model_path, init_states, runner,
              propagation, particles, seed, json_path, plot_path, device):
    """Closed-loop planner benchmark in the real environment.

    Every planner plans with every dynamics source; all episodes step together (one planning call
    per step for all of them), in Gymnasium's environment or the env's MLX copy (--runner). Rows
    report the return, the env's score against the reference row (cost ratio, return ratio or gap),
    the final |x| and success rate where the env defines them, the model gap (return with true
    dynamics minus return with the model), the planning time per step and the imagined transitions
    per second.

    Under mlx.launch (several processes) each process runs a contiguous share of the episodes;
    rank 0 gathers them and prints and writes the results, identical per episode to one process's.
    """
    import time

    from benchmarks.report import footer, table
    from benchmarks.starts import read_init_states
    from benchmarks.suite import BenchmarkConfig, check_memory, count_runs, run_benchmark

    env = resolve_env(env_name)
    names = _split_names(planner_names, _planner_names(), "planner")
    sources = _split_names(dynamics, ("model", "true"), "dynamics")
    runner = resolve_runner(env, runner)
    if particles is not None and propagation is None:
        raise click.BadParameter("--particles needs --propagation", param_hint="'--particles'")
    config = BenchmarkConfig(planners=names, dynamics=sources, episodes=episodes, steps=steps, horizon=horizon,
                             samples=samples, iterations=iterations, seed=seed, model=model_path, init_states=init_states,
                             runner=runner, propagation=propagation, particles=particles)
    if plot_path:
        _require_matplotlib()
    device = use_device(device)
    world = current_world()
    starts = read_init_states(init_states, env) if init_states else env.benchmark_starts(episodes, seed)
    check_memory(config.for_env(env), env, len(starts))  # before a model is trained or loaded
    model = None
    if "model" in sources:
        model, config.model, env = load_model_for(env_name, model_path, world)
        model = model.folded()  # same function, normalisations folded into the weights: faster planning
        if propagation is not None and not config.model_options(model):
            click.echo(f"Note: --propagation {propagation} ignored: the model is a single model, not an ensemble.", err=True)
            config.propagation = config.particles = None
        if init_states:
            starts = read_init_states(init_states, env)  # the model's env may have another state box
    start = time.perf_counter()
    if world.is_root:
        total = count_runs(config, env) * config.for_env(env).steps
        with click.progressbar(length=total, label="benchmark", file=sys.stderr) as bar:
            result = run_benchmark(config, env, model, starts, on_step=bar.update, world=world)
    else:
        run_benchmark(config, env, model, starts, world=world)
        return  # rank 0 prints and writes
    result["config"]["wall_seconds"] = round(time.perf_counter() - start, 2)
    result["config"]["device"] = device
    click.echo(table(result))
    click.echo(f"{footer(result)}; {result['config']['wall_seconds']:.1f} s")
    click.echo(device_line(device, world))
    from benchmarks.plots import plot_returns

    write_outputs(result, json_path, plot_path, plot_returns)


@main.command(context_settings=CONTEXT)
@env_option
@click.option("--planner", "planner_name", default="cem", show_default=True, cls=NamesInHelp, help="One of: {planners}.")
@click.option("--dynamics", type=click.Choice(["model", "true"]), default="model", show_default=True, help="What the planner imagines with.")
@start_options
@click.option("--steps", type=int, default=None, callback=positive("--steps"), help="Steps (at most). Default: the env's episode length.")
@click.option("--horizon", type=int, default=None, callback=positive("--horizon"), help="Default: the env's.")
@click.option("--samples", type=int, default=None, callback=positive("--samples"), help="Default: the env's.")
@click.option("--iterations", type=int, default=None, callback=positive("--iterations"), help="Default: the planner's own.")
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (the particle's), $WMPLAN_HOME/model-ENV for the others; trained if missing.")
@runner_option
@click.option("--seed", default=0, show_default=True, callback=seed_range)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=output_file,
              help="Draw the state variables, the actions and the one-step predictions over the episode to a PNG (needs the 'plot' extra).")
@device_option
@friendly_errors
def plan(env_name, planner_name, dynamics, x0, v0, start, steps, horizon, samples, iterations, model_path, runner, seed,
         plot_path, device):
    """One closed-loop episode with one planner, step by step (next to the optimum where it is known)."""
    from benchmarks.closed_loop import PlanRecorder, describe_runner, run_episodes
    from benchmarks.report import episode_lines, state_text
    from benchmarks.suite import BenchmarkConfig, make_planner

    env = resolve_env(env_name)
    _split_names(planner_name, _planner_names(), "planner")
    start, given = resolve_start(env, x0, v0, start, seed)
    runner = resolve_runner(env, runner)
    if plot_path:
        _require_matplotlib()
    device = use_device(device)
    source = env
    if dynamics == "model":
        model, _, env = load_model_for(env_name, model_path)
        recheck_start(env, start, given)
        source = model.folded()
    config = BenchmarkConfig(planners=(planner_name,), dynamics=(dynamics,), episodes=1, steps=steps, horizon=horizon,
                             samples=samples, iterations=iterations, seed=seed, runner=runner).for_env(env)
    recorder = PlanRecorder(make_planner(planner_name, source, env, config), source)
    best = env.optimal_plan(start, config.steps)
    click.echo(f"Device: {device}")
    click.echo(f"{planner_name} planning with the {dynamics} dynamics in {describe_runner(config.runner, env.name, env.gym_id)} "
               f"from ({state_text(env, start)}), {config.steps} steps" + (f"; optimal return {best[0]:.3f}" if best else ""))
    ep = run_episodes(recorder, env, start[None], config.steps, runner=config.runner, seeds=[seed], set_starts=given)
    for line in episode_lines(env, ep, recorder.expected_returns, start, best):
        click.echo(line)
    length = int(ep.lengths[0])
    if plot_path:
        from benchmarks.plots import plot_episode

        plot_episode(env, ep.states[0, : length + 1], recorder.predictions()[:length], ep.actions[0, :length], plot_path,
                     title=f"{env.name}: {planner_name} planning with the {dynamics} dynamics, return {ep.returns[0]:.2f}")
        click.echo(f"Wrote {plot_path}")


def _int_list(text, what):
    try:
        values = [int(tok) for tok in text.split(",") if tok.strip()]
    except ValueError:
        raise click.BadParameter(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{what} must be positive integers, got {text!r}")
    return values


@main.command(context_settings=CONTEXT)
@env_option
@click.option("--planners", "planner_names", default="cem,mppi,random-shooting", show_default=True, cls=NamesInHelp, help="Comma-separated: {planners}.")
@click.option("--samples", "samples_text", default="256,1024,4096,16384", show_default=True, help="Comma-separated N.")
@click.option("--horizons", "horizons_text", default="15,30", show_default=True, help="Comma-separated H.")
@click.option("--iterations", type=int, default=None, callback=positive("--iterations"), help="Default: each planner's own.")
@click.option("--repeats", default=5, show_default=True, callback=positive("--repeats"), help="Timed calls per cell (the median is shown).")
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (the particle's), $WMPLAN_HOME/model-ENV for the others; trained if missing.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Also write the results as JSON here.")
@device_option
@friendly_errors
def speed(env_name, planner_names, samples_text, horizons_text, iterations, repeats, model_path, json_path, device):
    """Planning throughput on the learned model: ms per call, imagined transitions/s, GFLOP/s.

    The model plans in its env's action space, from the env's demo start, with its termination.
    """
    from tabulate import tabulate

    import planners as planners_pkg
    from benchmarks.report import write_json
    from benchmarks.speed import measure_planning
    from worldmodel.envs import env_record

    resolve_env(env_name)
    names = _split_names(planner_names, _planner_names(), "planner")
    sizes = _int_list(samples_text, "--samples")
    horizons = _int_list(horizons_text, "--horizons")
    device = use_device(device)
    model, _, env = load_model_for(env_name, model_path)
    model = model.folded()
    blas = planners_pkg.runtime.blas.status()
    peak = planners_pkg.runtime.blas.measure_matmul_gflops()
    click.echo(f"Device: {device}")
    click.echo(f"BLAS: {blas.name}; float32 matmul peak (1024x1024): {peak:.1f} GFLOP/s; "
               f"model: {model.flops_per_transition()} FLOP per transition; env: {env!r}")
    rows = measure_planning(model, env, names, sizes, horizons, iterations, repeats, peak)
    click.echo(tabulate(
        [(r["planner"], r["samples"], r["horizon"], r["iterations"], f"{r['ms_per_call']:.1f}",
          f"{r['transitions_per_s']:.3g}", f"{r['gflops']:.1f}", f"{r['percent_of_peak']:.0f}%") for r in rows],
        headers=("planner", "N", "H", "iters", "ms/call", "transitions/s", "GFLOP/s", "of peak"),
        disable_numparse=True,
    ))
    if json_path:
        write_json(json_path, {"device": device, "env": env_record(env), "blas": blas.name, "matmul_peak_gflops": peak,
                               "rows": rows})
        click.echo(f"Wrote {json_path}")


MBRL_SETTINGS = {
    # option name -> MbrlConfig field
    "env_name": "env", "seed": "seed", "iterations": "iterations", "random_episodes": "random_episodes",
    "random_steps": "random_steps", "episodes_per_iteration": "episodes_per_iteration", "ensemble": "ensemble",
    "propagation": "propagation", "particles": "particles", "planner_name": "planner", "horizon": "horizon",
    "samples": "samples", "plan_iterations": "plan_iterations", "first_train_steps": "first_train_steps",
    "train_steps": "train_steps", "batch_size": "batch_size", "lr": "lr", "normalization": "normalization",
    "eval_episodes": "eval_episodes", "runner": "runner",
}


@main.command(context_settings=CONTEXT)
@env_option
@click.option("--iterations", type=int, default=None, callback=non_negative("--iterations"),
              help="Planning iterations after the random start (0: the random-data model only). Default: the env's.")
@click.option("--episodes-per-iteration", type=int, default=None, callback=positive("--episodes-per-iteration"),
              help="Episodes planned with the current model per iteration. Default: the env's.")
@click.option("--random-episodes", type=int, default=None, callback=positive("--random-episodes"),
              help="Random-action episodes the run starts from. Default: the env's.")
@click.option("--random-steps", type=int, default=None, callback=positive("--random-steps"),
              help="Steps of each random episode. Default: the env's.")
@click.option("--ensemble", type=int, default=None, callback=positive("--ensemble"),
              help="Members of the world model (1: one model). Default: the env's.")
@click.option("--propagation", type=click.Choice(["expectation", "ts1", "tsinf"]), default="tsinf", show_default=True,
              help="How an ensemble imagines each sequence (ignored for one model).")
@click.option("--particles", type=int, default=None, callback=positive("--particles"),
              help="Particles per sequence with an ensemble. Default: the members (1 for expectation).")
@click.option("--planner", "planner_name", default="cem", show_default=True, cls=NamesInHelp, help="One of: {planners}.")
@click.option("--horizon", type=int, default=None, callback=positive("--horizon"), help="Planning horizon. Default: the env's.")
@click.option("--samples", type=int, default=None, callback=positive("--samples"), help="Imagined sequences per planning iteration. Default: the env's.")
@click.option("--plan-iterations", type=int, default=None, callback=positive("--plan-iterations"),
              help="Optimiser iterations per planning call. Default: the planner's own.")
@click.option("--first-train-steps", type=int, default=None, callback=positive("--first-train-steps"),
              help="Gradient steps on the random data. Default: the env's.")
@click.option("--train-steps", type=int, default=None, callback=positive("--train-steps"),
              help="Gradient steps after every iteration, from the current weights. Default: the env's.")
@click.option("--batch-size", type=int, default=None, callback=positive("--batch-size"), help="Default: the env's.")
@click.option("--lr", type=float, default=None, callback=positive_number("--lr"), help="Adam's learning rate (constant). Default: the env's.")
@click.option("--normalization", type=click.Choice(["refit", "fixed"]), default=None,
              help="refit: normalisation statistics fit again on all data before every training; fixed: fit on the "
                   "random data only. Default: the env's.")
@click.option("--eval-episodes", type=int, default=None, callback=positive("--eval-episodes"),
              help="Evaluation episodes after every iteration, from the benchmark's starts. Default: the env's.")
@runner_option
@click.option("--out", "run_path", type=click.Path(file_okay=False), default=None, callback=output_folder,
              help="Run folder, snapshot after every iteration (its parent must exist). Default: $WMPLAN_HOME/mbrl-ENV.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last snapshot, up to --iterations "
              "(default: the run's own); other settings given must equal the run's.")
@click.option("--seed", default=0, show_default=True, callback=seed_range)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Also write the result as JSON here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=output_file,
              help="Draw the learning curve (return vs environment steps) to a PNG (needs the 'plot' extra).")
@device_option
@friendly_errors
def mbrl(run_path, resume, json_path, plot_path, device, **options):
    """Model-based RL: learn a world model from the episodes it plans.

    Starts from a few random-action episodes; every iteration then plans episodes with the current
    model in the real environment (Gymnasium's, or the MLX copy: --runner), adds their transitions,
    retrains from the current weights for a fixed number of gradient steps, and evaluates the model
    with the planner from the benchmark's starts. Prints the return per iteration against the
    environment steps so far (random ones included) and the references: the planner with the true
    dynamics, the exact optimum where known, the random-data model. The run folder is snapshot
    atomically after every iteration; --resume continues an interrupted run exactly.
    """
    import dataclasses
    import time

    from click.core import ParameterSource

    from benchmarks.mbrl import MbrlConfig, default_run_folder, run_mbrl, saved_config
    from benchmarks.mbrl_report import curve_table, references_line

    ctx = click.get_current_context()
    given = {key for key in MBRL_SETTINGS if ctx.get_parameter_source(key) == ParameterSource.COMMANDLINE}
    settings = {field: options[key] for key, field in MBRL_SETTINGS.items()}
    env = resolve_env(settings["env"])
    _split_names(settings["planner"], _planner_names(), "planner")
    if run_path is None:
        run_path = default_run_folder(env.name)  # creates $WMPLAN_HOME if missing
    if resume:
        saved = saved_config(run_path)
        for key in sorted(given - {"iterations"}):
            field = MBRL_SETTINGS[key]
            if settings[field] != getattr(saved, field):
                flag = {p.name: p.opts[0] for p in ctx.command.params}[key]
                raise click.UsageError(f"--resume: {flag} {settings[field]} differs from the run's {getattr(saved, field)!r}")
        config = dataclasses.replace(saved, iterations=settings["iterations"] if "iterations" in given else saved.iterations)
    else:
        resolve_runner(env, settings["runner"])
        config = MbrlConfig(**settings)
    if plot_path:
        _require_matplotlib()
    device = use_device(device)
    start = time.perf_counter()
    result = run_mbrl(config, run_path, resume=resume, log=lambda line: click.echo(line, err=True))
    click.echo(curve_table(result))
    click.echo(references_line(result))
    click.echo(f"Episodes in {result['runner']}; {time.perf_counter() - start:.1f} s; device: {device}")
    click.echo(f"Run folder: {run_path}; the last model: {result['model']}")
    from benchmarks.plots import plot_learning_curve

    write_outputs(result, json_path, plot_path, plot_learning_curve)


def write_outputs(result: dict, json_path, plot_path, plot) -> None:
    """``--json``: ``result`` as JSON; ``--plot``: ``plot(result, path)`` (a :mod:`benchmarks.plots` function); each announced."""
    from benchmarks.report import write_json

    if json_path:
        write_json(json_path, result)
        click.echo(f"Wrote {json_path}")
    if plot_path:
        plot(result, plot_path)
        click.echo(f"Wrote {plot_path}")


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise click.ClickException("--plot needs matplotlib: pip install 'wmplan[plot]'") from None



if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
