"""benchmarks.mujoco_true: the MuJoCo evaluator's throughput rows and closed-loop episodes (with the mujoco extra)."""

from __future__ import annotations

import json

from tests.conftest import need

need("gymnasium")
need("mujoco")

from benchmarks.mujoco_true import closed_loop, main, throughput  # noqa: E402


def test_throughput_has_a_row_per_thread_count():
    rows = throughput("Reacher-v5", sequences=4, horizon=3, threads=[1, 2], repeats=1)
    assert [row["threads"] for row in rows] == [1, 2]
    assert all(row["steps_per_second"] > 0 and row["sequences"] * row["horizon"] == 12 for row in rows)


def test_closed_loop_rows_and_the_command_line(capsys):
    rows = closed_loop("InvertedPendulum-v5", "random-shooting", episodes=2, steps=3, samples=8, horizon=4)
    assert [row["steps"] for row in rows] == [3, 3] and all(row["return"] == 3.0 and row["ms_per_action"] > 0 for row in rows)
    main(["closed-loop", "--episodes", "1", "--steps", "2", "--samples", "4", "--horizon", "3", "--iterations", "1"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 1 and printed[0]["planner"] == "cem" and printed[0]["steps"] == 2
