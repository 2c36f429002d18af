"""Benchmark results as a table (tabulate), its footer, and JSON; ``wmplan plan``'s step-by-step printout."""

from __future__ import annotations

import numpy as np
from tabulate import tabulate

from worldmodel import files
from worldmodel.rollout import open_loop

from worldmodel.envs.runner import describe_runner
from worldmodel.envs.scores import SCORES


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _percent(value):
    return "-" if value is None else f"{100 * value:.0f}%"


def columns(result: dict) -> list:
    """``(header, cell(row) -> str)`` of the table: the env's score column; ``final |x|`` and ``success``
    where the env defines them, ``length`` (mean steps) where its episodes can end early; with a time
    budget, the planning time's 99th percentile per step and the search's iterations per step."""
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
    ]
    if result["config"].get("time_budget_ms") is not None:
        out += [("p99 ms", lambda r: _fmt(r.get("step_ms_p99"), ".1f")),
                ("iterations", lambda r: _fmt(r.get("iterations_per_step"), ".2f"))]
    return out + [("imagined/s", lambda r: _fmt(r["imagined_per_s"], ".3g"))]


def table(result: dict) -> str:
    """The rows of :func:`benchmarks.suite.run_benchmark`'s result as a plain-text table."""
    cols = columns(result)
    return tabulate([[cell(row) for _, cell in cols] for row in result["rows"]], headers=[h for h, _ in cols],
                    disable_numparse=True)


def footer(result: dict) -> str:
    """``20 episodes x 50 steps in the MLX particle; cost ratio = ...``: the runs, the runner and the score."""
    config = result["config"]
    reference = result["rows"][-1]["planner"] if "optimal_solver" in config or "reference" in config else None
    definition = ("no reference row (no true dynamics to plan with): no score" if reference is None
                  else SCORES[config["score"]].definition.format(reference=reference))
    ran_in = describe_runner(config["runner"], config["env"]["name"], config["gym_id"])
    return f"{config['episodes']} episodes x {config['steps']} steps in {ran_in}; {definition}"


def state_text(env, state) -> str:
    """``x=+1.000, v=+0.000``: a state ``[S]`` with the env's state names."""
    return ", ".join(f"{name}={value:+.3f}" for name, value in zip(env.state_names, state))


class EpisodeLines:
    """``wmplan plan``'s printout of episode 0, a line per step as the step ends (``run_episodes``'
    ``on_transition``), then a summary: the action, state, reward, the plan's imagined return
    ``expected_returns[t][0]``, the return so far, and the optimal plan's action and return so far when
    ``optimal = (return, actions [T, A])``; the summary gives the score against the optimum where it is known.
    With ``searches`` (a ``benchmarks.suite.SearchLog``), each line also gives the step's planning time and
    iterations, and the summary their median, 99th percentile and mean.

    Each line goes to ``echo`` as it is made (``None``: only kept, in :attr:`lines`).
    """

    def __init__(self, env, expected_returns, start, optimal=None, echo=None, searches=None):
        self.env, self.expected_returns, self.optimal, self.echo = env, expected_returns, optimal, echo
        self.searches = searches
        self.lines, self.total = [], 0.0
        if optimal is not None:
            _, optimal_rewards = open_loop(env, np.asarray(start)[None], optimal[1][None])
            self.optimal_totals = np.cumsum(optimal_rewards[0], dtype=np.float64)

    def __call__(self, t: int, actions, rewards, next_states, alive) -> None:
        """Step ``t`` of every episode: ``actions [E, A]``, ``rewards [E]``, ``next_states [E, S]``, ``alive [E]``."""
        if not alive[0]:
            return
        env = self.env
        self.total += rewards[0]
        line = (f"t={t:02d} a={env.describe_action(actions[0])} | {state_text(env, next_states[0])}, "
                f"r={rewards[0]:+.3f} | predicted return {self.expected_returns[t][0]:+.3f} | return {self.total:+.3f}")
        if self.searches is not None:
            count = self.searches.iterations[t]
            line += f" | {self.searches.ms[t]:.1f} ms, {count} iteration{'s' * (count != 1)}"
        if self.optimal is not None:
            line += f" | optimal a={env.describe_action(self.optimal[1][t])}, return {self.optimal_totals[t]:+.3f}"
        self._say(line)

    def summary(self, ep) -> str:
        """The last line, of the ended :class:`~worldmodel.envs.runner.Episodes` ``ep`` (also echoed)."""
        length, optimal = int(ep.lengths[0]), self.optimal
        summary = f"Return {ep.returns[0]:.3f}" + (f", terminated after {length} steps" if ep.terminated[0] else "")
        if optimal is not None:
            score = SCORES[self.env.defaults.benchmark.score]
            value = score.compute(ep.returns[:1], np.array([optimal[0]]))
            summary += f", optimal {optimal[0]:.3f}, {score.header} {float('nan') if value is None else value:.4f}"
        if self.searches is not None:
            stats = self.searches.summary()
            summary += (f"; planning {stats['step_ms_p50']:.1f} ms per step (p50), {stats['step_ms_p99']:.1f} (p99), "
                        f"{stats['iterations_per_step']:.2f} iterations per step")
        self._say(summary)
        return summary

    def _say(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)


def episode_lines(env, ep, expected_returns, start, optimal=None) -> list:
    """:class:`EpisodeLines` of the ended episode 0 of ``ep`` (:class:`~worldmodel.envs.runner.Episodes`), all at once."""
    lines = EpisodeLines(env, expected_returns, start, optimal)
    alive = np.ones(len(ep.lengths), bool)
    for t in range(int(ep.lengths[0])):
        lines(t, ep.actions[:, t], ep.rewards[:, t], ep.states[:, t + 1], alive)
    lines.summary(ep)
    return lines.lines


def write_json(path: str, result: dict) -> None:
    """Write the result as JSON (atomically; see :func:`worldmodel.files.open_output`)."""
    files.write_json(path, result)


def write_outputs(result: dict, json_path, plot_path=None, plot=None, announce=print) -> None:
    """``result`` as JSON to ``json_path`` and drawn by ``plot(result, path)`` (a :mod:`benchmarks.plots`
    function) to ``plot_path``; each written path (``None``: skipped) said through ``announce``."""
    for path, write in ((json_path, write_json), (plot_path, lambda path, result: plot(result, path))):
        if path:
            write(path, result)
            announce(f"Wrote {path}")
