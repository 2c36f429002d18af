"""``wmplan train`` / ``wmplan rollout`` / ``wmplan --version`` through click's test runner."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from worldmodel import load_model, read_config
from tests.conftest import TINY_TRAIN, invoke

TINY = ["--episodes", "20", "--steps", "10", "--epochs", "2"]
EPOCH = re.compile(r"^Epoch (\d\d) \| loss = \d+\.\d{6} \| val = \d+\.\d{6}$", re.M)
ROW = re.compile(
    r"^t=(\d\d) a=([+-]\d) \| TRUE x=([+-]\d\.\d{3}), v=([+-]\d\.\d{3}), r=([+-]\d\.\d{3})  \|\|  "
    r"MODEL x=([+-]\d\.\d{3}), v=([+-]\d\.\d{3}), r=([+-]\d\.\d{3})$",
    re.M,
)


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "rollout"):
        assert re.search(rf"^\s+{command}\s", result.output, re.M), result.output
    assert invoke("-h").output == result.output
    assert "--episodes" in invoke("train", "--help").output


def test_help_imports_no_mlx():
    """``wmplan --help`` stays instant: the commands import MLX and the packages only when they run."""
    import subprocess
    import sys

    code = ("import sys, cli; from click.testing import CliRunner; "
            "assert CliRunner().invoke(cli.main, ['--help']).exit_code == 0; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('mlx', 'planners', 'worldmodel', 'benchmarks')]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version_shows_blas():
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wmplan ")
    assert re.search(r"^BLAS: \S", result.output, re.M)
    assert re.search(r"^float32 matmul 1024x1024: \d+\.\d GFLOP/s$", result.output, re.M)


def test_train_tiny(tmp_path):
    out = str(tmp_path / "m")
    result = invoke("train", *TINY, "--hidden", "16", "--out", out)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Dataset size: 200 transitions"
    assert [m.group(1) for m in EPOCH.finditer(result.output)] == ["01", "02"]
    assert re.match(r"^Epoch 01 \| loss = \d+\.\d{6} \| val = \d+\.\d{6}$", lines[1])
    assert re.search(
        r"^Held-out one-step MSE \(20000 uniform transitions\): x = \S+, v = \S+, r = \S+, mean = \S+$",
        result.output,
        re.M,
    )
    assert lines[-1].startswith(f"Saved model to {out} (")
    config = read_config(out)
    assert config["model"]["hidden"] == [16, 16]
    assert config["data"]["transitions"] == 200 and config["training"]["epochs"] == 2
    load_model(out)


def test_rollout_with_actions(tiny_model_path):
    result = invoke("rollout", "--model", tiny_model_path, "--actions", "+1,+1,-1")
    assert result.exit_code == 0, result.output
    rows = ROW.findall(result.output)
    assert len(rows) == 3, result.output
    assert [(r[0], r[1]) for r in rows] == [("00", "+1"), ("01", "+1"), ("02", "-1")]
    # the true columns, by hand from (x0, v0) = (1, 0)
    assert [r[2:5] for r in rows] == [
        ("+1.000", "+0.000", "-1.100"),
        ("+1.100", "+0.100", "-1.300"),
        ("+1.300", "+0.200", "-1.400"),
    ]
    assert result.output.startswith("t=00 a=+1 | TRUE x=+1.000, v=+0.000, r=-1.100  ||  MODEL x=")
    # the model starts from the same state
    assert rows[0][5:7] == ("+1.000", "+0.000")
    assert re.search(r"^Max \|error\| over 3 steps: x = \d\.\d{4}, v = \d\.\d{4}, r = \d\.\d{4}$", result.output, re.M)


def test_rollout_random_actions_and_start(tiny_model_path):
    result = invoke("rollout", "--model", tiny_model_path, "--steps", "4", "--x0", "-0.5", "--v0", "0.2", "--seed", "3")
    assert result.exit_code == 0, result.output
    rows = ROW.findall(result.output)
    assert len(rows) == 4 and rows[0][2:4] == ("-0.500", "+0.200")
    again = invoke("rollout", "--model", tiny_model_path, "--steps", "4", "--x0", "-0.5", "--v0", "0.2", "--seed", "3")
    assert again.output == result.output


def test_rollout_missing_model(tmp_path):
    missing = str(tmp_path / "nowhere")
    result = invoke("rollout", "--model", missing, "--actions", "+1")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: no checkpoint at {missing}")


def test_rollout_corrupt_model(tiny_model_path, tmp_path):
    path = str(tmp_path / "model")
    shutil.copytree(tiny_model_path, path)
    with open(f"{path}/config.json", "w") as f:
        f.write("{")
    result = invoke("rollout", "--model", path, "--actions", "+1")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: corrupt checkpoint {path}")


@pytest.mark.parametrize("actions", ["+2", "1,x", ",", "0.5"])
def test_rollout_bad_actions(tiny_model_path, actions):
    result = invoke("rollout", "--model", tiny_model_path, "--actions", actions)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "actions must be a comma-separated list" in result.output
    assert not ROW.search(result.output)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--episodes", "0"], "--episodes must be >= 1"),
        (["--steps", "-1"], "--steps must be >= 1"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--lr", "0"], "--lr must be a positive finite number"),
        (["--schedule", "cosine"], "cosine"),
    ],
)
def test_train_bad_arguments(tmp_path, args, message):
    out = tmp_path / "m"
    result = invoke("train", *TINY, *args, "--out", str(out))
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert "Dataset size" not in result.output and not out.exists()


def test_rollout_bad_start(tiny_model_path):
    result = invoke("rollout", "--model", tiny_model_path, "--x0", "nan")
    assert result.exit_code != 0 and "finite" in result.output


def test_rollout_trains_default_model_when_missing(tmp_path, monkeypatch):
    """With no --model and nothing at $WMPLAN_HOME/model, rollout trains the default model first.

    This is the full default budget (400 x 50 transitions, 20 epochs): about 2 s on 2 idle cores.
    """
    monkeypatch.setenv("WMPLAN_HOME", str(tmp_path))
    result = invoke("rollout", "--actions", "+1,0")
    assert result.exit_code == 0, result.output
    default = str(tmp_path / "model")
    assert f"No model at {default}: training the default one first" in result.stderr
    assert "Dataset size: 20000 transitions" in result.stderr
    assert len(EPOCH.findall(result.stderr)) == 20
    # what `wmplan train` says at the end, on stderr too (issue 18 item 22)
    assert re.search(r"^Held-out one-step MSE \(20000 uniform transitions\): .*, mean = \S+$", result.stderr, re.M)
    assert result.stderr.splitlines()[-1] == f"Saved model to {default}"
    assert len(ROW.findall(result.stdout)) == 2 and "Epoch" not in result.stdout and "Saved" not in result.stdout
    config = read_config(default)
    assert config["data"]["transitions"] == 20000 and config["training"]["epochs"] == 20
    # the second time the saved default model is used as is
    again = invoke("rollout", "--actions", "+1,0")
    assert again.exit_code == 0 and "No model" not in again.stderr and "Epoch" not in again.stderr
    assert again.stdout == result.stdout


def test_train_into_a_folder_whose_name_is_not_utf8(tmp_path):
    """``train --out $'bad\\xffname'`` saves (was ``RuntimeError: std::bad_cast`` after training), and the model loads."""
    out = tmp_path / os.fsdecode(b"bad\xffname")
    # a real process: click's test runner cannot print such a name
    result = subprocess.run([sys.executable, "-m", "cli", "train", *TINY_TRAIN, "--out", out], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert load_model(str(out)).state_dim == 2


def test_version_names_blas_threads_only_when_set(monkeypatch):
    """``WMPLAN_BLAS_THREADS`` appears (with its value) only when it is set (issue 18 item 23)."""
    monkeypatch.delenv("WMPLAN_BLAS_THREADS", raising=False)
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert "WMPLAN_BLAS_THREADS" not in result.output
    monkeypatch.setenv("WMPLAN_BLAS_THREADS", "2")
    result = invoke("--version")
    line = next(line for line in result.output.splitlines() if line.startswith("BLAS: "))
    assert "thread(s)" not in line or line.endswith(" (WMPLAN_BLAS_THREADS=2)"), line
