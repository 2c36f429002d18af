"""Benchmark results as a table (tabulate), its footer, and JSON."""

from __future__ import annotations

from tabulate import tabulate

from worldmodel import files

from .closed_loop import describe_runner
from .scores import SCORES


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _percent(value):
    return "-" if value is None else f"{100 * value:.0f}%"


def columns(result: dict) -> list:
    """``(header, cell(row) -> str)`` of the table: the env's score column; ``final |x|`` and ``success``
    where the env defines them, ``length`` (mean steps) where its episodes can end early."""
    rows = result["rows"]
    score = SCORES[result["config"]["score"]]
    spec = "+.3f" if score.key == "gap" else ".4f"
    out = [
        ("planner", lambda r: r["planner"]),
        ("dynamics", lambda r: r["dynamics"] or "-"),
        ("return (mean ± std)", lambda r: f"{r['mean_return']:.3f} ± {r['std_return']:.3f}"),
        (score.header, lambda r: _fmt(r[score.key], spec)),
    ]
    if any(r["mean_final_abs_x"] is not None for r in rows):
        out.append(("final |x|", lambda r: _fmt(r["mean_final_abs_x"], ".3f")))
    if any(r["success_rate"] is not None for r in rows):
        out.append(("success", lambda r: _percent(r["success_rate"])))
    steps = result["config"]["steps"]
    if any(r["mean_length"] is not None and r["mean_length"] != steps for r in rows):
        out.append(("length", lambda r: _fmt(r["mean_length"], ".1f")))
    out += [
        ("model gap", lambda r: _fmt(r["model_gap"], "+.3f")),
        ("ms/step", lambda r: _fmt(r["ms_per_step"], ".1f")),
        ("imagined/s", lambda r: _fmt(r["imagined_per_s"], ".3g")),
    ]
    return out


def table(result: dict) -> str:
    """The rows of :func:`benchmarks.suite.run_benchmark`'s result as a plain-text table."""
    cols = columns(result)
    return tabulate([[cell(row) for _, cell in cols] for row in result["rows"]], headers=[h for h, _ in cols],
                    disable_numparse=True)


def footer(result: dict) -> str:
    """``20 episodes x 50 steps in the MLX particle; cost ratio = ...``: the runs, the runner and the score."""
    config = result["config"]
    reference = result["rows"][-1]["planner"]
    definition = SCORES[config["score"]].definition.format(reference=reference)
    ran_in = describe_runner(config["runner"], config["env"]["name"], config["gym_id"])
    return f"{config['episodes']} episodes x {config['steps']} steps in {ran_in}; {definition}"


def write_json(path: str, result: dict) -> None:
    """Write the result as JSON (atomically; see :func:`worldmodel.files.open_output`)."""
    files.write_json(path, result)
