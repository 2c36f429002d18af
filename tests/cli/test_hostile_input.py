"""Hostile command lines: output paths checked before any work, empty paths, start states checked
alike everywhere, seeds, byte-order marks; usage errors exit 2, runtime errors 1, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys

import pytest

from worldmodel.recipe import default_model_path
from tests.conftest import char_device, invoke, one_error_line, pipe_with_reader

# a benchmark that runs in well under a second: the true dynamics, one cheap planner
QUICK = ["benchmark", "--dynamics", "true", "--planners", "random-shooting", "--episodes", "2", "--steps", "2",
         "--horizon", "2", "--samples", "8"]


@pytest.mark.parametrize(
    "command, option",
    [
        (["benchmark", "--model", "/no/such/model"], "--json"),
        (["benchmark", "--model", "/no/such/model"], "--plot"),
        (["plan", "--model", "/no/such/model"], "--plot"),
        (["speed", "--model", "/no/such/model"], "--json"),
    ],
)
def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path, command, option):
    path = str(tmp_path / "missing" / "out")
    message = one_error_line(invoke(*command, option, path), 2)
    # the option's check, not the missing model found later
    assert message == f"Invalid value for '{option}': cannot write {path}: the folder {tmp_path / 'missing'} does not exist"
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_empty_output_path_is_an_error(option):
    assert one_error_line(invoke(*QUICK, option, ""), 2) == f"Invalid value for '{option}': the output path is empty"


def test_json_through_a_symlink_updates_its_target(tmp_path):
    target, link = tmp_path / "results.json", tmp_path / "latest.json"
    target.write_text("stale")
    link.symlink_to(target)
    result = invoke(*QUICK, "--json", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and json.loads(target.read_text())["config"]["episodes"] == 2


def test_json_and_plot_into_a_device_leave_the_device(tmp_path):
    device = char_device(str(tmp_path / "null"))
    result = invoke(*QUICK, "--json", device, "--plot", device)
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(os.stat(device).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null"]


def test_json_into_a_named_pipe_reaches_its_reader(tmp_path):
    pipe, got, reader = pipe_with_reader(tmp_path / "pipe")
    result = invoke(*QUICK, "--json", pipe)
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert got and json.loads(got[0])["config"]["episodes"] == 2
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)


def test_outputs_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        result = invoke(*QUICK, "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for name in ("r.json", "r.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_a_write_that_fails_after_the_run_names_the_given_path(tmp_path, monkeypatch):
    path = str(tmp_path / "r.json")

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src)

    monkeypatch.setattr(os, "replace", full)
    message = one_error_line(invoke(*QUICK, "--json", path), 1)
    assert message == f"cannot write {path}: No space left on device"
    assert os.listdir(tmp_path) == []


def test_train_out_empty_is_an_error_and_keeps_the_default_model(tmp_path, monkeypatch):
    monkeypatch.setenv("WMPLAN_HOME", str(tmp_path))
    message = one_error_line(invoke("train", "--episodes", "5", "--steps", "2", "--epochs", "1", "--out", ""), 2)
    assert message == "Invalid value for '--out': the output folder path is empty"
    assert not os.path.exists(default_model_path())


def test_train_out_in_a_missing_folder_is_refused_before_training(tmp_path):
    out = str(tmp_path / "runs" / "model")
    result = invoke("train", "--out", out)  # the full default budget, were it to start
    message = one_error_line(result, 2)
    assert message == f"Invalid value for '--out': cannot write {out}: the folder {tmp_path / 'runs'} does not exist"
    assert "Dataset size" not in result.output


@pytest.mark.parametrize(
    "command, option",
    [(["rollout"], "--model"), (["plan"], "--model"), (["benchmark"], "--model"), (["speed"], "--model"),
     (["benchmark"], "--init-states")],
)
def test_empty_input_paths_are_errors(command, option):
    assert one_error_line(invoke(*command, option, ""), 2) == f"Invalid value for '{option}': {option} must not be empty"


@pytest.mark.parametrize("command", [["rollout", "--actions", "+1"], ["plan", "--dynamics", "true", "--steps", "1"]])
@pytest.mark.parametrize("x0, v0", [("100", "0"), ("0", "-1.5"), ("nan", "0")])
def test_start_outside_the_box_is_refused_as_init_states_are(tmp_path, command, x0, v0):
    message = one_error_line(invoke(*command, "--model", "/no/such/model", "--x0", x0, "--v0", v0), 2)
    assert message.startswith("Invalid value for '--x0' / '--v0': the start ")
    csv_path = tmp_path / "starts.csv"
    csv_path.write_text(f"x,v\n{x0},{v0}\n")
    from_file = one_error_line(invoke(*QUICK, "--init-states", str(csv_path)), 1)
    # one check, one wording
    assert from_file.split("line 2: ", 1)[1] == message.split("the start ", 1)[1]


def test_init_states_with_a_byte_order_mark(tmp_path):
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes("x,v\r\n1.5,1.0\r\n-0.25,0\r\n".encode("utf-8-sig"))
    result = invoke(*QUICK, "--init-states", str(csv_path), "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["config"]["episodes"] == 2


@pytest.mark.parametrize("command", ["train", "rollout", "plan", "benchmark"])
@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_seeds_out_of_range_name_the_option(command, seed):
    message = one_error_line(invoke(command, "--seed", seed), 2)
    assert message == f"Invalid value for '--seed': --seed must be an integer from 0 to 2**64 - 1, got {seed}"


@pytest.mark.parametrize("module, name, command", [
    ("benchmarks.suite", "run_benchmark", QUICK),
    ("worldmodel.recipe", "train_world_model", ["train", "--episodes", "2", "--steps", "2", "--epochs", "1"]),
])
def test_ctrl_c_exits_130_with_one_line(monkeypatch, tmp_path, module, name, command):
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setenv("WMPLAN_HOME", str(tmp_path))
    monkeypatch.setattr(importlib.import_module(module), name, interrupted)
    result = invoke(*command)
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines()[-1] == "Interrupted" and "Aborted" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["train", "--batch-size", "0"], "Invalid value for '--batch-size': --batch-size must be >= 1, got 0"),
    (["train", "--hidden", "0"], "Invalid value for '--hidden': --hidden must be >= 1, got 0"),
    (["rollout", "--steps", "0"], "Invalid value for '--steps': --steps must be >= 1, got 0"),
    (["plan", "--horizon", "0"], "Invalid value for '--horizon': --horizon must be >= 1, got 0"),
    (["plan", "--planner", "warp"], "Invalid value for '--planner': unknown planner 'warp'"),
    (["speed", "--repeats", "0"], "Invalid value for '--repeats': --repeats must be >= 1, got 0"),
    (["benchmark", "--dynamics", "dream"], "Invalid value for '--dynamics': unknown dynamics 'dream'"),
    (["benchmark", "--planners", "cem,warp"], "Invalid value for '--planners': unknown planner 'warp'"),
    (["speed", "--samples", "10,-1"], "Invalid value for '--samples': --samples must be positive integers"),
    # one learning-rate check everywhere (issue 18 item 11): 0, negative, inf and nan alike, exit 2
    (["train", "--lr", "0"], "Invalid value for '--lr': --lr must be a positive finite number, got 0.0"),
    (["train", "--lr", "-1"], "Invalid value for '--lr': --lr must be a positive finite number, got -1.0"),
    (["train", "--lr", "inf"], "Invalid value for '--lr': --lr must be a positive finite number, got inf"),
    (["train", "--max-lr", "nan"], "Invalid value for '--max-lr': --max-lr must be a positive finite number, got nan"),
    (["mbrl", "--lr", "0"], "Invalid value for '--lr': --lr must be a positive finite number, got 0.0"),
    (["mbrl", "--lr", "inf"], "Invalid value for '--lr': --lr must be a positive finite number, got inf"),
    # an empty --actions was random actions (issue 18 item 11)
    (["rollout", "--actions", ""], "Invalid value for '--actions': --actions must be a comma-separated list"),
    (["rollout", "--actions", " "], "Invalid value for '--actions': --actions must be a comma-separated list"),
])
def test_a_bad_value_is_a_usage_error_naming_its_option(tmp_path, monkeypatch, args, message):
    """The config or library check finds the bad value; the CLI names the option (exit 2) before any work."""
    monkeypatch.setenv("WMPLAN_HOME", str(tmp_path))
    assert one_error_line(invoke(*args), 2).startswith(message)
    assert os.listdir(tmp_path) == []  # no default model trained


@pytest.mark.parametrize("command", [
    QUICK + ["--json", "{out}", "--plot", "{out}"],
    QUICK + ["--init-states", "{in}", "--json", "{in}"],
    QUICK + ["--init-states", "{in}", "--plot", "{link}"],
    ["benchmark", "--model", "{model}", "--json", "{model}/config.json"],
    ["plan", "--model", "{model}", "--plot", "{model}/weights.png"],
    ["speed", "--model", "{model}", "--json", "{model}/config.json"],
    ["mbrl", "--out", "{out}", "--json", "{out}"],
    ["mbrl", "--out", "{run}", "--json", "{run}/run.json"],
    ["mbrl", "--resume", "--out", "{run}", "--plot", "{run}/iteration-0002/model/config.json"],
])
def test_an_output_onto_another_output_or_an_input_is_refused_before_any_work(tmp_path, command):
    """Two outputs on one file, an output onto --init-states (a link to it too), into --model's checkpoint folder
    or onto an mbrl run's own files: exit 2 before anything is read or written."""
    starts = tmp_path / "starts.csv"
    starts.write_text("x,v\n1,0\n")
    (tmp_path / "link.csv").symlink_to(starts)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "run" / "iteration-0002" / "model").mkdir(parents=True)
    names = {"out": tmp_path / "out.json", "in": starts, "link": tmp_path / "link.csv", "model": tmp_path / "model",
             "run": tmp_path / "run"}
    args = [arg.format(**{k: str(v) for k, v in names.items()}) for arg in command]
    message = one_error_line(invoke(*args), 2)
    assert "must not overwrite" in message or "give each output its own path" in message or "run folder's own" in message
    assert sorted(os.listdir(tmp_path)) == ["link.csv", "model", "run", "starts.csv"]  # nothing written
    assert starts.read_text() == "x,v\n1,0\n" and os.listdir(tmp_path / "model") == ["config.json"]
    assert [p.name for p in (tmp_path / "run").rglob("*")] == ["iteration-0002", "model"]


@pytest.mark.parametrize("kind", ["fifo", "zero", "huge"])
def test_init_states_that_are_not_a_bounded_regular_file_are_one_line(tmp_path, kind):
    """A named pipe (would wait for a writer forever), /dev/zero (endless) or a file past the bound: refused unread."""
    from benchmarks.starts import MAX_INIT_STATES_BYTES

    path = tmp_path / "starts.csv"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    else:
        with open(path, "wb") as f:
            f.truncate(MAX_INIT_STATES_BYTES + 1)  # sparse: no disk used
    message = one_error_line(invoke(*QUICK, "--init-states", path), 1)
    reason = "has 67108865 bytes, more than the 67108864 it may have" if kind == "huge" else "is not a regular file"
    assert message == f"cannot read initial-states file {path}: it {reason}"


def test_a_run_manifest_that_is_a_pipe_is_refused_unread(tmp_path):
    run = tmp_path / "run"
    (run / "iteration-0000").mkdir(parents=True)
    os.mkfifo(run / "run.json")
    message = one_error_line(invoke("mbrl", "--resume", "--out", run), 1)
    assert message == f"corrupt run folder {run}: run.json is not a regular file"


@pytest.mark.parametrize("command", ["plan", "benchmark", "mbrl"])
def test_plot_without_matplotlib_says_how_to_install_it_from_the_repository(monkeypatch, tmp_path, command):
    """wmplan is not on the package index: the hint installs the extra from the repository (issue 18 item 21)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    message = one_error_line(invoke(command, "--plot", tmp_path / "p.png"), 1)
    assert message == "--plot needs matplotlib: pip install '.[plot]' in the wmplan repository"
