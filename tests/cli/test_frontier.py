"""``wmplan frontier``: a tiny grid through the command, bad grid values as one-line errors (exit 2), a peer."""

from __future__ import annotations

import json

import pytest

from tests.conftest import invoke, one_error_line, requires

TINY = ["--env", "particle", "--samples", "8", "--iterations", "1,2", "--episodes", "2", "--steps", "3"]


@pytest.mark.parametrize("option, value", [("--samples", "0"), ("--samples", "10,x"), ("--iterations", "-1"),
                                           ("--iterations", ""), ("--horizons", "2.5"), ("--episodes", "0"),
                                           ("--planners", "nope"), ("--peers", "nope")])
def test_bad_grid_values_are_one_line_errors_naming_the_option(option, value):
    line = one_error_line(invoke("frontier", "--env", "particle", option, value), 2)
    assert f"'{option}'" in line


def test_a_tiny_frontier_prints_its_table_and_writes_json(tiny_model_path, tmp_path):
    out = tmp_path / "frontier.json"
    result = invoke("frontier", *TINY, "--model", tiny_model_path, "--planners", "cem", "--json", out)
    assert result.exit_code == 0, result.output
    assert "own front" in result.output and "ms/step" in result.output and f"Wrote {out}" in result.output
    data = json.loads(out.read_text())
    assert [(p["planner"], p["samples"], p["iterations"]) for p in data["points"]] == [("cem", 8, 1), ("cem", 8, 2)]
    assert data["config"]["model"] == tiny_model_path and data["config"]["machine"]


@pytest.mark.slow
@requires("pytorch_mppi")
def test_a_peer_plans_the_same_episodes_in_its_own_process(tiny_model_path):
    result = invoke("frontier", *TINY, "--iterations", "1", "--model", tiny_model_path, "--planners", "cem",
                    "--peers", "pytorch_mppi")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.startswith("pytorch_mppi ")]
    assert sorted(row[1] for row in rows[:2]) == ["mppi", "mppi-defaults"] and {row[-1] for row in rows[:2]} <= {"yes", "NO"}
    assert sorted(row[1] for row in rows[2:]) == ["mppi", "mppi-defaults"]  # its ratios
