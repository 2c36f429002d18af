"""Benchmark results as a table (tabulate) and as JSON."""

from __future__ import annotations

from tabulate import tabulate

from worldmodel import files

HEADERS = ("planner", "dynamics", "return (mean ± std)", "cost ratio", "final |x|", "success", "model gap", "ms/step", "imagined/s")


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(result: dict) -> str:
    """The rows of :func:`benchmarks.suite.run_benchmark`'s result as a plain-text table."""
    lines = []
    for row in result["rows"]:
        lines.append((
            row["planner"],
            row["dynamics"] or "-",
            f"{row['mean_return']:.3f} ± {row['std_return']:.3f}",
            _fmt(row["cost_ratio"], ".4f"),
            _fmt(row["mean_final_abs_x"], ".3f"),
            _fmt(None if row["success_rate"] is None else 100 * row["success_rate"], ".0f") + ("%" if row["success_rate"] is not None else ""),
            _fmt(row["model_gap"], "+.3f"),
            _fmt(row["ms_per_step"], ".1f"),
            _fmt(row["imagined_per_s"], ".3g"),
        ))
    return tabulate(lines, headers=HEADERS, disable_numparse=True)


def write_json(path: str, result: dict) -> None:
    """Write the result as JSON (atomically; see :func:`worldmodel.files.open_output`)."""
    files.write_json(path, result)
