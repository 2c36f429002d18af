"""``wmplan mbrl``: the model-based RL loop through the CLI -- JSON shape, exact resume, bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from worldmodel.mbrl import MbrlConfig, run_mbrl
from worldmodel import Transitions, load_model, read_config
from worldmodel.envs import get_env
from worldmodel.run_folder import MANIFEST, RunFolderError
from tests.conftest import invoke as invoke_cli, need, one_error_line

TINY = ["--random-episodes", "2", "--random-steps", "5", "--eval-episodes", "2", "--samples", "16", "--horizon", "4",
        "--plan-iterations", "1", "--first-train-steps", "20", "--train-steps", "10", "--ensemble", "1"]
"""A particle run of about a second per round (one model: the particle's default is an ensemble)."""


def invoke(*args):
    """``wmplan mbrl ARGS...``."""
    return invoke_cli("mbrl", *args)


def run_json(tmp_path, name, *args):
    out, path = str(tmp_path / name), str(tmp_path / f"{name}.json")
    result = invoke(*TINY, "--out", out, "--json", path, *args)
    assert result.exit_code == 0, result.output
    with open(path) as f:
        return json.load(f), out, result.output


def test_json_shape_and_table(tmp_path):
    data, out, output = run_json(tmp_path, "run", "--rounds", "2", "--seed", "3")
    assert set(data) >= {"config", "curve", "references", "env", "runner", "run_folder", "model"}
    config = data["config"]
    assert config["env"] == "particle" and config["seed"] == 3 and config["rounds"] == 2
    assert config["runner"] == "mlx" and data["runner"] == "the MLX particle"
    assert config["ensemble"] == 1 and config["normalization"] in ("refit", "fixed")
    curve = data["curve"]
    assert [e["round"] for e in curve] == [0, 1, 2]
    assert [e["env_steps"] for e in curve] == [10, 60, 110]  # 2 random episodes of 5 steps, then one 50-step episode each
    assert [len(e["train_returns"]) for e in curve] == [2, 1, 1]
    for entry in curve:
        assert set(entry) == {"round", "env_steps", "train_returns", "eval_mean_return", "eval_cost_ratio",
                              "eval_returns", "train_loss"}
        assert len(entry["eval_returns"]) == 2
        assert entry["eval_mean_return"] == pytest.approx(np.mean(entry["eval_returns"]))
        assert entry["eval_cost_ratio"] >= 1.0 - 1e-9  # against the exact optimum
        assert np.isfinite(entry["train_loss"])
    references = data["references"]
    assert len(references["optimal"]["returns"]) == 2 and references["true_dynamics"]["cost_ratio"] >= 1.0 - 1e-9
    assert "round" in output and "cost ratio" in output and "references:" in output
    assert sorted(os.listdir(out)) == ["iteration-0002", MANIFEST]
    model_config = read_config(data["model"])
    assert model_config["env"]["name"] == "particle" and model_config["mbrl"]["round"] == 2


def test_resume_continues_exactly(tmp_path):
    straight, straight_out, _ = run_json(tmp_path, "straight", "--rounds", "3")
    first, resumed_out, _ = run_json(tmp_path, "resumed", "--rounds", "1")
    assert first["curve"] == straight["curve"][:2]
    again, _, output = run_json(tmp_path, "resumed", "--rounds", "3", "--resume")
    assert "round 0 " not in output  # nothing recomputed
    assert again["curve"] == straight["curve"]
    assert again["references"] == straight["references"]
    a, b = (os.path.join(o, "iteration-0003") for o in (straight_out, resumed_out))
    for (name, x), (_, y) in zip(tree_flatten(load_model(os.path.join(a, "model")).parameters()),
                                 tree_flatten(load_model(os.path.join(b, "model")).parameters())):
        np.testing.assert_array_equal(np.array(x), np.array(y), err_msg=name)
    ta, tb = mx.load(os.path.join(a, "trainer.safetensors")), mx.load(os.path.join(b, "trainer.safetensors"))
    assert sorted(ta) == sorted(tb) and all(mx.array_equal(ta[k], tb[k]).item() for k in ta)
    np.testing.assert_array_equal(Transitions.load(os.path.join(a, "data.npz")).states,
                                  Transitions.load(os.path.join(b, "data.npz")).states)
    # --resume without --rounds continues to the run's own number: here nothing is left to do, and it says so
    done, _, output = run_json(tmp_path, "resumed", "--resume")
    assert done["curve"] == straight["curve"]
    note = f"Note: the run in {resumed_out} already has 3 rounds, as many as rounds 3 asks for: nothing to run"
    assert note in output
    fewer = invoke("--resume", "--rounds", "1", "--out", resumed_out)  # issue 18 item 11: not a silent no-op
    assert fewer.exit_code == 0, fewer.output
    assert f"Note: the run in {resumed_out} already has 3 rounds, as many as rounds 1 asks for" in fewer.stderr


def test_old_spellings_run_and_resume(tmp_path):
    """The hidden ``--episodes-per-iteration`` (the old name of ``--episodes-per-round``) still works with a
    note, and a run folder written before the rename (its record says ``iterations``) resumes exactly."""
    straight, _, _ = run_json(tmp_path, "straight", "--rounds", "2")
    old, out, output = run_json(tmp_path, "old", "--rounds", "1", "--episodes-per-iteration", "1")
    assert old["config"]["rounds"] == 1 and old["curve"] == straight["curve"][:2]
    assert output.count("Note: --episodes-per-iteration is deprecated; use --episodes-per-round.") == 1
    with open(os.path.join(out, MANIFEST)) as f:
        manifest = json.load(f)
    record = manifest["record"]  # as b765683 wrote it
    record["config"] = {RENAMED_BACK.get(k, k): v for k, v in record["config"].items()}
    record["curve"] = [{("iteration" if k == "round" else k): v for k, v in e.items()} for e in record["curve"]]
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(manifest, f)
    again, _, _ = run_json(tmp_path, "old", "--rounds", "2", "--resume")
    assert again["curve"] == straight["curve"] and again["config"] == straight["config"]


RENAMED_BACK = {"rounds": "iterations", "episodes_per_round": "episodes_per_iteration"}


def test_iterations_are_the_planners_as_in_every_command(tmp_path):
    """``wmplan mbrl --iterations`` sets the planner's iterations (a note says so once: it used to be the
    loop's count); ``--plan-iterations`` is its hidden old spelling, with a deprecation note."""
    at = TINY.index("--plan-iterations")
    args = [*TINY[:at], *TINY[at + 2:], "--rounds", "0"]
    for flag, note in (("--iterations", "Note: --iterations now sets the planner's iterations; the loop's count is --rounds."),
                       ("--plan-iterations", "Note: --plan-iterations is deprecated; use --iterations.")):
        result = invoke(*args, flag, "2", "--out", str(tmp_path / flag), "--json", str(tmp_path / "r.json"))
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines().count(note) == 1, result.stderr
        with open(tmp_path / "r.json") as f:
            config = json.load(f)["config"]
        assert config["plan_iterations"] == 2 and config["rounds"] == 0
    result = invoke(*args, "--iterations", "0", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "Invalid value for '--iterations': --iterations must be >= 1, got 0" in result.output


def test_same_seed_same_curve_and_ensembles(tmp_path):
    args = ("--rounds", "1", "--ensemble", "2", "--propagation", "ts1", "--particles", "2")
    one, _, _ = run_json(tmp_path, "a", *args)
    two, _, _ = run_json(tmp_path, "b", *args)
    assert one["curve"] == two["curve"]
    assert one["config"]["ensemble"] == 2 and one["config"]["propagation"] == "ts1"
    assert read_config(one["model"])["model"]["kind"] == "ensemble"


def test_env_budget_is_the_default():
    env = get_env("particle")
    config = MbrlConfig(env="particle").resolved(env)
    for name in ("random_episodes", "random_steps", "rounds", "episodes_per_round", "ensemble", "first_train_steps", "train_steps"):
        assert getattr(config, name) == getattr(env.defaults.mbrl, name), name
    assert MbrlConfig(env="particle", random_steps=7, ensemble=1).resolved(env).random_steps == 7


def test_plot(tmp_path):
    need("matplotlib")
    path = str(tmp_path / "curve.png")
    result = invoke(*TINY, "--rounds", "1", "--out", str(tmp_path / "run"), "--plot", path)
    assert result.exit_code == 0, result.output
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rounds", "-1"], "--rounds must be >= 0"),
        (["--ensemble", "0"], "--ensemble must be >= 1"),
        (["--propagation", "ts2"], "'ts2' is not one of"),
        (["--lr", "0"], "--lr must be a positive finite number, got 0.0"),
        (["--lr", "inf"], "--lr must be a positive finite number, got inf"),  # issue 18 item 11: diverged before
        (["--lr", "nan"], "--lr must be a positive finite number, got nan"),
        (["--normalization", "sometimes"], "is not one of"),
        (["--env", "nope"], "unknown environment 'nope'"),
        (["--planner", "nope"], "unknown planner 'nope'"),
        (["--runner", "gymnasium"], "particle has no Gymnasium counterpart"),
        (["--seed", "-1"], "--seed must be an integer from 0"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, args, message):
    result = invoke(*args, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not os.path.exists(tmp_path / "run")


def test_resume_errors(tmp_path):
    out = str(tmp_path / "run")
    result = invoke("--resume", "--out", out)
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1] == f"Error: no run to resume in {out} (no {MANIFEST})"
    result = invoke(*TINY, "--rounds", "0", "--out", out)
    assert result.exit_code == 0, result.output
    result = invoke("--resume", "--out", out, "--seed", "1", "--rounds", "1")
    assert result.exit_code == 2 and "--seed 1 differs from the run's 0" in result.output
    with open(os.path.join(out, MANIFEST), "w") as f:
        f.write("not json")
    result = invoke("--resume", "--out", out)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "corrupt run folder" in result.output
    file_path = tmp_path / "file"
    file_path.write_text("x")
    result = invoke("--out", str(file_path))
    assert result.exit_code == 2 and "is a file" in result.output


def test_a_new_run_never_replaces_an_existing_one(tmp_path, monkeypatch):
    """Without --resume, a folder that holds a run (a manifest or a snapshot) is refused before any work,
    exit 2, naming --resume; nothing in it is touched. The default folder ($WMPLAN_HOME/mbrl-ENV) too."""
    out = tmp_path / "run"
    result = invoke(*TINY, "--rounds", "0", "--out", out)
    assert result.exit_code == 0, result.output
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    message = one_error_line(invoke(*TINY, "--rounds", "1", "--out", out), 2)
    assert "holds a run: pass --resume to continue it, or choose another folder" in message
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    (out / MANIFEST).unlink()  # a snapshot alone is a run too
    assert "holds a run" in one_error_line(invoke(*TINY, "--out", out), 2)
    assert os.listdir(out) == ["iteration-0000"]
    home = tmp_path / "home"
    (home / "mbrl-particle" / "iteration-0003").mkdir(parents=True)
    monkeypatch.setenv("WMPLAN_HOME", str(home))
    assert "mbrl-particle holds a run" in one_error_line(invoke(*TINY), 2)
    assert os.listdir(home / "mbrl-particle") == ["iteration-0003"]
    with pytest.raises(RunFolderError, match="holds a run: pass resume=True"):
        run_mbrl(MbrlConfig(rounds=0, random_episodes=1, random_steps=2, eval_episodes=1, ensemble=1), str(out))


@pytest.mark.parametrize("edit, field", [
    (lambda r: r.update(curve={}), "record.curve must be a list of 1 entries"),
    (lambda r: r.update(curve="x"), "record.curve must be a list"),
    (lambda r: r.update(curve=[]), "record.curve must be a list of 1 entries"),
    (lambda r: r["curve"][0].update(train_loss="x"), "record.curve[0].train_loss must be a number, got 'x'"),
    (lambda r: r["curve"][0].pop("eval_returns"), "record.curve[0].eval_returns must be a list of numbers, got 'missing'"),
    (lambda r: r.pop("references"), "record.references must be an object, got 'missing'"),
    (lambda r: r.update(references=None), "record.references must be an object, got None"),
    (lambda r: r["references"].update(optimal={"returns": "x"}), "record.references.optimal.returns must be a list of numbers"),
    (lambda r: r.update(config=[1, 2]), "record.config must be an object, got [1, 2]"),
    (lambda r: r["config"].update(seed="0"), "record.config.seed must be an integer, got '0'"),
    (lambda r: r.update(env=None), "record.env must be an object"),
])
def test_an_edited_run_manifest_is_one_line_naming_the_field_before_any_work(tmp_path, edit, field):
    out = tmp_path / "run"
    assert invoke(*TINY, "--rounds", "0", "--out", out).exit_code == 0
    with open(out / MANIFEST) as f:
        manifest = json.load(f)
    edit(manifest["record"])
    with open(out / MANIFEST, "w") as f:
        json.dump(manifest, f)
    message = one_error_line(invoke("--resume", "--out", out, "--rounds", "1"), 1)
    assert message.startswith(f"corrupt run folder {out}: run.json's {field}"), message
    assert sorted(os.listdir(out)) == ["iteration-0000", MANIFEST]


def test_a_run_folder_whose_name_is_not_utf8_is_written_and_resumed(tmp_path):
    """MLX's savers fail on such a name (``std::bad_cast``): wmplan hands them file objects."""
    out = tmp_path / os.fsdecode(b"run-\xff")
    straight, _, _ = run_json(tmp_path, "straight", "--rounds", "2")
    for args in (["--rounds", "1"], ["--rounds", "2", "--resume", "--json", tmp_path / "again.json"]):
        # a real process: click's test runner cannot print such a name
        result = subprocess.run([sys.executable, "-m", "cli", "mbrl", *TINY, "--out", out, *args], capture_output=True)
        assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "again.json").read_text())["curve"] == straight["curve"]
    assert sorted(os.listdir(out)) == ["iteration-0002", MANIFEST]
