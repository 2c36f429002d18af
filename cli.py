"""The ``wmplan`` command: train, rollout, plan, benchmark, speed.

Heavy imports (MLX, the packages) happen inside the subcommands, so ``wmplan --help`` is instant.
Every expected failure ends in a one-line error: exit 2 for a bad command line (click's usage
errors: an unknown option, a bad value, an output path that cannot be written -- all found before
any work starts), exit 1 for what goes wrong while running (a missing or corrupt checkpoint, a
malformed start-states file, a run too large for the memory).
"""

from __future__ import annotations

import functools
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
    import planners
    import mlx.core as mx

    blas = planners.blas.status()
    try:
        gflops = planners.blas.measure_matmul_gflops()
    except ValueError as err:  # e.g. a malformed WMPLAN_CPU_STREAMS
        raise click.ClickException(str(err)) from None
    click.echo(f"wmplan {_version()} (mlx {mx.__version__}, device {mx.default_device()})")
    threads = planners.blas.threads()
    click.echo(f"BLAS: {blas.name}{'' if blas.active else ' — ' + (blas.message or 'not optimised')}"
               + f", route: {blas.route}" + (f", {threads} thread(s) (WMPLAN_BLAS_THREADS)" if threads else ""))
    click.echo(f"Rollouts split over {planners.execution.default_count()} CPU stream(s) (WMPLAN_CPU_STREAMS)"
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
    """wmplan: train a small MLX world model of a 1-D particle and plan with it.

    Planners (random shooting, CEM/iCEM, MPPI, gradient) run on any batched MLX dynamics; the
    benchmark compares them in closed loop in the true environment against the exact optimum.
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


def positive(name):
    def check(_ctx, _param, value):
        if value is not None and value < 1:
            raise click.BadParameter(f"{name} must be >= 1, got {value}")
        return value

    return check


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


def check_start(x0, v0):
    """``(x0, v0)`` checked as every start state is (:func:`benchmarks.starts.check_start`); a usage error else."""
    from benchmarks.starts import check_start as check

    try:
        return check(x0, v0)
    except ValueError as err:
        raise click.BadParameter(f"the start {err}", param_hint="'--x0' / '--v0'") from None


@main.command(context_settings=CONTEXT)
@click.option("--episodes", default=400, show_default=True, callback=positive("--episodes"), help="Random-action episodes to record.")
@click.option("--steps", default=50, show_default=True, callback=positive("--steps"), help="Steps per episode.")
@click.option("--epochs", default=20, show_default=True, callback=positive("--epochs"))
@click.option("--batch-size", default=128, show_default=True, callback=positive("--batch-size"))
@click.option("--lr", default=1e-3, show_default=True, help="Adam's base learning rate (the seed's).")
@click.option("--max-lr", default=2e-2, show_default=True, help="Peak of the one-cycle schedule.")
@click.option("--schedule", type=click.Choice(["onecycle", "constant"]), default="onecycle", show_default=True,
              help="'constant' keeps --lr throughout, as the seed did.")
@click.option("--hidden", default=128, show_default=True, callback=positive("--hidden"), help="Units in each of the two hidden layers.")
@click.option("--ensemble", default=1, show_default=True, callback=positive("--ensemble"),
              help="Members of an ensemble of world models, each trained on its own bootstrap of the data (1: one model).")
@click.option("--balance-bins", default=10, show_default=True, help="Flatten the state histogram of batches over this many bins per dim (0: off).")
@click.option("--compile/--no-compile", default=True, show_default=True, help="Run the training step under mx.compile.")
@click.option("--seed", default=0, show_default=True, callback=seed_range)
@click.option("--out", type=click.Path(file_okay=False), default=None, callback=output_folder, help="Checkpoint folder (its parent must exist). Default: $WMPLAN_HOME/model.")
@device_option
@friendly_errors
def train(episodes, steps, epochs, batch_size, lr, max_lr, schedule, hidden, ensemble, balance_bins, compile, seed, out, device):
    """Generate random-action data, train the world model, report held-out accuracy, save it.

    Under mlx.launch (several processes) the training is data-parallel: each process takes its
    share of every batch, gradients are averaged; rank 0 prints and saves.
    """
    import time

    from worldmodel import TrainConfig
    from worldmodel.recipe import HELD_OUT_SIZE, default_model_path, train_world_model

    device = use_device(device)
    world = current_world()
    out = default_model_path() if out is None else out
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, max_lr=max_lr, schedule=schedule,
                         balance_bins=balance_bins, seed=seed, compile=compile)
    if batch_size < world.size:
        raise click.BadParameter(f"--batch-size {batch_size} is smaller than the {world.size} processes")
    start = time.perf_counter()
    _, metrics = train_world_model(out, episodes, steps, hidden=(hidden, hidden), config=config, log=click.echo,
                                   world=world if world.size > 1 else None, ensemble=ensemble if ensemble > 1 else None)
    if not world.is_root:
        return
    x, v, r = metrics["held_out_mse"]
    click.echo(f"Held-out one-step MSE ({HELD_OUT_SIZE} uniform transitions): "
               f"x = {x:.2e}, v = {v:.2e}, r = {r:.2e}, mean = {metrics['held_out_mse_mean']:.2e}")
    click.echo(device_line(device, world))
    click.echo(f"Saved model to {out} ({time.perf_counter() - start:.1f} s)")


def load_or_train_model(path, world=None):
    """The model at ``path``; with no path, the default one, trained first (and said so) if missing.

    With several processes (``world``), rank 0 alone trains a missing default model while the
    others wait for it (the path must be visible to every process).
    """
    from worldmodel import load_model
    from worldmodel.distributed import all_max
    from worldmodel.recipe import default_model_path, train_world_model

    if path is not None:
        return load_model(path), path
    path = default_model_path()
    import os

    missing = not os.path.exists(os.path.join(path, "config.json"))
    if world is not None and world.size > 1:
        missing = all_max(float(missing), world) > 0  # every rank takes the same branch
    if missing:
        if world is None or world.is_root:
            click.echo(f"No model at {path}: training the default one first (wmplan train).", err=True)
            train_world_model(path, log=lambda line: click.echo(line, err=True))
        if world is not None and world.size > 1:
            all_max(0.0, world)  # wait until rank 0 has saved it
    return load_model(path), path


def parse_pushes(text):
    """``"+1,0,-1"`` -> ``[1, 0, -1]``; anything else is a one-line error."""
    try:
        pushes = [int(tok) for tok in text.replace(" ", "").split(",") if tok != ""]
    except ValueError:
        raise click.BadParameter(f"actions must be a comma-separated list of -1, 0, +1, got {text!r}") from None
    if not pushes or any(p not in (-1, 0, 1) for p in pushes):
        raise click.BadParameter(f"actions must be a comma-separated list of -1, 0, +1, got {text!r}")
    return pushes


@main.command(context_settings=CONTEXT)
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (trained if missing).")
@click.option("--steps", default=15, show_default=True, callback=positive("--steps"), help="Steps of random actions (ignored with --actions).")
@click.option("--x0", default=1.0, show_default=True, type=float)
@click.option("--v0", default=0.0, show_default=True, type=float)
@click.option("--actions", default=None, help="Pushes to apply, e.g. +1,+1,-1,0 (one step each).")
@click.option("--seed", default=0, show_default=True, callback=seed_range, help="Seed of the random actions.")
@device_option
@friendly_errors
def rollout(model_path, steps, x0, v0, actions, seed, device):
    """Open-loop rollout: the true physics and the model's imagination side by side."""
    import numpy as np

    from worldmodel import ParticleEnv
    from worldmodel.rollout import compare_open_loop

    pushes = parse_pushes(actions) if actions else np.random.default_rng(seed).integers(-1, 2, size=steps).tolist()
    check_start(x0, v0)
    device = use_device(device)
    model, _ = load_or_train_model(model_path)
    true, imagined = compare_open_loop(ParticleEnv(), model, (x0, v0), pushes)
    for t, push in enumerate(pushes):
        (xt, vt, rt), (xm, vm, rm) = true[t], imagined[t]
        click.echo(f"t={t:02d} a={push:+d} | TRUE x={xt:+.3f}, v={vt:+.3f}, r={rt:+.3f}  ||  "
                   f"MODEL x={xm:+.3f}, v={vm:+.3f}, r={rm:+.3f}")
    err = np.abs(true - imagined).max(axis=0)
    click.echo(f"Max |error| over {len(pushes)} steps: x = {err[0]:.4f}, v = {err[1]:.4f}, r = {err[2]:.4f}")
    click.echo(f"Device: {device}")


def _planner_names():
    from planners.registry import PLANNERS

    return tuple(PLANNERS)


class NamesInHelp(click.Option):
    """An option whose help text names the registered planners, looked up only when help is shown
    (importing the planners loads MLX, which ``wmplan --help`` should not wait for)."""

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None or "{planners}" not in record[1]:
            return record
        return record[0], record[1].replace("{planners}", ", ".join(_planner_names()))


def _split_names(text, known, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise click.BadParameter(f"give at least one {what}")
    for name in names:
        if name not in known:
            raise click.BadParameter(f"unknown {what} {name!r}; choose from {', '.join(known)}")
    return tuple(dict.fromkeys(names))


@main.command(context_settings=CONTEXT)
@click.option("--planners", "planner_names", default="cem,mppi,random-shooting", show_default=True, cls=NamesInHelp,
              help="Comma-separated: {planners}. Baselines (random-policy, zero, feedback, optimal) are always added.")
@click.option("--dynamics", default="model,true", show_default=True, help="Comma-separated: model (the learned world model), true (the env's own dynamics).")
@click.option("--episodes", default=20, show_default=True, callback=positive("--episodes"), help="Episodes (start states: 6 hard ones, then uniform draws); overridden by --init-states.")
@click.option("--steps", default=50, show_default=True, callback=positive("--steps"), help="Closed-loop steps per episode.")
@click.option("--horizon", type=int, default=None, callback=positive("--horizon"), help="Planning horizon. Default: each planner's own (15).")
@click.option("--samples", type=int, default=500, show_default=True, callback=positive("--samples"), help="Imagined action sequences per episode and iteration.")
@click.option("--iterations", type=int, default=None, callback=positive("--iterations"), help="Optimiser iterations per step. Default: each planner's own.")
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (trained if missing).")
@click.option("--init-states", type=click.Path(), default=None, callback=non_empty, help="CSV with header x,v and one start per row.")
@click.option("--seed", default=0, show_default=True, callback=seed_range)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Also write the results as JSON here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Draw the return distributions to a PNG (needs the 'plot' extra).")
@device_option
@friendly_errors
def benchmark(planner_names, dynamics, episodes, steps, horizon, samples, iterations, model_path, init_states, seed, json_path, plot_path, device):
    """Closed-loop planner benchmark in the true environment.

    Every planner plans with every dynamics source; all episodes step together (one planning call
    per step for all of them). Rows report the return, the cost ratio to the exact optimum
    (sum of costs / sum of optimal costs), the final |x|, the success rate (|x| < 0.1 in each of the
    last 10 steps), the model gap (return with true dynamics minus return with the model), the
    planning time per step and the imagined transitions per second.

    Under mlx.launch (several processes) each process runs a contiguous share of the episodes;
    rank 0 gathers them and prints and writes the results, identical per episode to one process's.
    """
    import time

    from benchmarks.report import table, write_json
    from benchmarks.starts import default_starts, read_init_states
    from benchmarks.suite import BenchmarkConfig, check_memory, run_benchmark
    from worldmodel import ParticleEnv

    names = _split_names(planner_names, _planner_names(), "planner")
    sources = _split_names(dynamics, ("model", "true"), "dynamics")
    config = BenchmarkConfig(planners=names, dynamics=sources, episodes=episodes, steps=steps, horizon=horizon,
                             samples=samples, iterations=iterations, seed=seed, model=model_path, init_states=init_states)
    if plot_path:
        _require_matplotlib()
    device = use_device(device)
    world = current_world()
    env = ParticleEnv()
    starts = read_init_states(init_states) if init_states else default_starts(episodes, seed)
    check_memory(config, env, len(starts))  # before a model is trained or loaded
    model = None
    if "model" in sources:
        model, config.model = load_or_train_model(model_path, world)
        model = model.folded()  # same function, normalisations folded into the weights: faster planning
    runs = len(names) * len(sources) + 3
    start = time.perf_counter()
    if world.is_root:
        with click.progressbar(length=runs * steps, label="benchmark", file=sys.stderr) as bar:
            result = run_benchmark(config, env, model, starts, on_step=lambda: bar.update(1), world=world)
    else:
        run_benchmark(config, env, model, starts, world=world)
        return  # rank 0 prints and writes
    result["config"]["wall_seconds"] = round(time.perf_counter() - start, 2)
    result["config"]["device"] = device
    click.echo(table(result))
    click.echo(f"{len(starts)} episodes x {steps} steps; cost ratio = sum of costs / sum of optimal costs; "
               f"{result['config']['wall_seconds']:.1f} s")
    click.echo(device_line(device, world))
    if json_path:
        write_json(json_path, result)
        click.echo(f"Wrote {json_path}")
    if plot_path:
        from benchmarks.plots import plot_returns

        plot_returns(result, plot_path)
        click.echo(f"Wrote {plot_path}")


@main.command(context_settings=CONTEXT)
@click.option("--planner", "planner_name", default="cem", show_default=True, cls=NamesInHelp, help="One of: {planners}.")
@click.option("--dynamics", type=click.Choice(["model", "true"]), default="model", show_default=True, help="What the planner imagines with.")
@click.option("--x0", default=1.0, show_default=True, type=float)
@click.option("--v0", default=0.0, show_default=True, type=float)
@click.option("--steps", default=50, show_default=True, callback=positive("--steps"))
@click.option("--horizon", type=int, default=None, callback=positive("--horizon"))
@click.option("--samples", type=int, default=None, callback=positive("--samples"))
@click.option("--iterations", type=int, default=None, callback=positive("--iterations"))
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (trained if missing).")
@click.option("--seed", default=0, show_default=True, callback=seed_range)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Draw x, v and the pushes over time to a PNG (needs the 'plot' extra).")
@device_option
@friendly_errors
def plan(planner_name, dynamics, x0, v0, steps, horizon, samples, iterations, model_path, seed, plot_path, device):
    """One closed-loop episode with one planner, step by step, next to the optimum."""
    import mlx.core as mx
    import numpy as np

    from benchmarks.optimal import optimal_plan
    from benchmarks.suite import BenchmarkConfig, make_planner
    from worldmodel import ParticleEnv

    _split_names(planner_name, _planner_names(), "planner")
    check_start(x0, v0)
    if plot_path:
        _require_matplotlib()
    device = use_device(device)
    env = ParticleEnv()
    source = load_or_train_model(model_path)[0].folded() if dynamics == "model" else env
    config = BenchmarkConfig(planners=(planner_name,), horizon=horizon, samples=samples, iterations=iterations, seed=seed)
    planner = make_planner(planner_name, source, env.action_space, config)
    best_return, best_pushes = optimal_plan((x0, v0), steps)
    state = mx.array([[x0, v0]], dtype=mx.float32)
    states, imagined, pushes, total = [np.array(state[0])], [], [], 0.0
    optimal_total, optimal_state = 0.0, state
    eye = mx.array(np.eye(3, dtype=np.float32))
    click.echo(f"Device: {device}")
    click.echo(f"{planner_name} planning with the {dynamics} dynamics; optimal return from ({x0:+.3f}, {v0:+.3f}) "
               f"over {steps} steps: {best_return:.3f}")
    for t in range(steps):
        result = planner.optimize(state)  # what act() does, keeping the plan's predicted return
        action = result.actions[:, 0]
        predicted_next, _ = source(state, action)
        state, reward = env(state, action)
        optimal_state, optimal_reward = env(optimal_state, eye[int(best_pushes[t]) + 1][None])
        push = int(np.argmax(np.array(action[0]))) - 1
        total += float(reward[0])
        optimal_total += float(optimal_reward[0])
        states.append(np.array(state[0]))
        imagined.append(np.array(predicted_next[0]))
        pushes.append(push)
        click.echo(f"t={t:02d} a={push:+d} | x={float(state[0, 0]):+.3f}, v={float(state[0, 1]):+.3f}, "
                   f"r={float(reward[0]):+.3f} | predicted return {float(result.expected_return[0]):+.3f} | "
                   f"return {total:+.3f} | optimal a={int(best_pushes[t]):+d}, return {optimal_total:+.3f}")
    click.echo(f"Return {total:.3f}, optimal {best_return:.3f}, cost ratio {total / best_return if best_return < 0 else float('nan'):.4f}")
    if plot_path:
        from benchmarks.plots import plot_episode

        plot_episode(np.array(states), np.array(imagined), np.array(pushes), plot_path,
                     title=f"{planner_name} with the {dynamics} dynamics from ({x0:+.2f}, {v0:+.2f})")
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
@click.option("--planners", "planner_names", default="cem,mppi,random-shooting", show_default=True, cls=NamesInHelp, help="Comma-separated: {planners}.")
@click.option("--samples", "samples_text", default="256,1024,4096,16384", show_default=True, help="Comma-separated N.")
@click.option("--horizons", "horizons_text", default="15,30", show_default=True, help="Comma-separated H.")
@click.option("--iterations", type=int, default=None, callback=positive("--iterations"), help="Default: each planner's own.")
@click.option("--repeats", default=5, show_default=True, callback=positive("--repeats"), help="Timed calls per cell (the median is shown).")
@click.option("--model", "model_path", type=click.Path(), default=None, callback=non_empty, help="Checkpoint folder. Default: $WMPLAN_HOME/model (trained if missing).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, callback=output_file, help="Also write the results as JSON here.")
@device_option
@friendly_errors
def speed(planner_names, samples_text, horizons_text, iterations, repeats, model_path, json_path, device):
    """Planning throughput on the learned model: ms per call, imagined transitions/s, GFLOP/s."""
    from tabulate import tabulate

    import planners as planners_pkg
    from benchmarks.report import write_json
    from benchmarks.speed import measure_planning
    names = _split_names(planner_names, _planner_names(), "planner")
    sizes = _int_list(samples_text, "--samples")
    horizons = _int_list(horizons_text, "--horizons")
    device = use_device(device)
    model = load_or_train_model(model_path)[0].folded()
    blas = planners_pkg.blas.status()
    peak = planners_pkg.blas.measure_matmul_gflops()
    click.echo(f"Device: {device}")
    click.echo(f"BLAS: {blas.name}; float32 matmul peak (1024x1024): {peak:.1f} GFLOP/s; "
               f"model: {model.flops_per_transition()} FLOP per transition")
    rows = measure_planning(model, names, sizes, horizons, iterations, repeats, peak)
    click.echo(tabulate(
        [(r["planner"], r["samples"], r["horizon"], r["iterations"], f"{r['ms_per_call']:.1f}",
          f"{r['transitions_per_s']:.3g}", f"{r['gflops']:.1f}", f"{r['percent_of_peak']:.0f}%") for r in rows],
        headers=("planner", "N", "H", "iters", "ms/call", "transitions/s", "GFLOP/s", "of peak"),
        disable_numparse=True,
    ))
    if json_path:
        write_json(json_path, {"device": device, "blas": blas.name, "matmul_peak_gflops": peak, "rows": rows})
        click.echo(f"Wrote {json_path}")


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise click.ClickException("--plot needs matplotlib: pip install 'wmplan[plot]'") from None



if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
