"""Checkpoints against hostile files and racing writers: non-finite weights, links to devices and
pipes, oversized files, newer formats, killed saves, saves and loads at the same moment."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading

import mlx.core as mx
import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from worldmodel import CheckpointError, WorldModel, load_model, read_config, save_model
from worldmodel import checkpoint as ckpt
from worldmodel.checkpoint import CONFIG_NAME

SMALL = dict(hidden=(8, 8), reward_hidden=4)


def model(seed: int = 0, **changes) -> WorldModel:
    """An untrained (randomly initialised) small model; ``changes`` replace named parameters."""
    mx.random.seed(seed)
    m = WorldModel(**SMALL)
    m.load_weights(list(changes.items()), strict=False)
    mx.eval(m.parameters())  # computed here: MLX cannot compute them in another thread
    return m


def same(a: WorldModel, b: WorldModel) -> bool:
    state, action = mx.array([[0.5, -0.2]]), mx.array([[0.0, 1.0, 0.0]])
    return all(np.array_equal(np.array(x), np.array(y)) for x, y in zip(a(state, action), b(state, action)))


def edit_config(path, **changes):
    config = read_config(path)
    config.update(changes)
    with open(os.path.join(path, CONFIG_NAME), "w") as f:
        json.dump(config, f)


def weights_file(path):
    return os.path.join(path, read_config(path)["weights"])


def in_time(function, seconds: float = 20.0):
    """``function()``'s exception (or ``None``), failing the test if it has not returned within ``seconds``."""
    outcome = []

    def run():
        try:
            function()
            outcome.append(None)
        except Exception as err:  # noqa: BLE001 - handed to the test
            outcome.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still running after {seconds} s (hangs)"
    return outcome[0]


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("trunk.0.weight", mx.full((8, 5), mx.nan), "weight trunk.0.weight holds NaN or infinite values"),
        ("reward_out.bias", mx.array([mx.inf]), "weight reward_out.bias holds NaN or infinite values"),
        ("state_norm.std", mx.array([1.0, 0.0]), "normalizer state_norm has a standard deviation <= 0"),
        ("delta_norm.mean", mx.array([0, 1], dtype=mx.int32), "weight delta_norm.mean is of dtype mlx.core.int32"),
    ],
)
def test_non_finite_weights_are_refused(tmp_path, name, value, message):
    path = str(tmp_path / "m")
    save_model(model(**{name: value}), path)
    with pytest.raises(CheckpointError, match=f"corrupt checkpoint {path}: {message}"):
        load_model(path)


@pytest.mark.parametrize(
    "command",
    [
        ["rollout", "--actions", "+1,0"],
        ["plan", "--steps", "2", "--horizon", "2", "--samples", "8"],
        ["benchmark", "--planners", "random-shooting", "--dynamics", "model", "--episodes", "1", "--steps", "2",
         "--horizon", "2", "--samples", "8"],
    ],
    ids=lambda c: c[0],
)
def test_commands_refuse_a_nan_checkpoint(tmp_path, command):
    path = str(tmp_path / "m")
    save_model(model(**{"delta_out.weight": mx.full((2, 8), mx.nan)}), path)
    result = CliRunner().invoke(main, [*command, "--model", path])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: corrupt checkpoint {path}: weight delta_out.weight holds NaN or infinite values"
    )


def _char_device(path):
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero: endless
    except OSError as err:
        pytest.skip(f"cannot make a device node here: {err}")


@pytest.mark.parametrize("kind", ["pipe", "device"])
@pytest.mark.parametrize("which", ["weights", "config"])
def test_a_link_to_a_pipe_or_device_is_refused_without_reading(tmp_path, kind, which):
    path = str(tmp_path / "m")
    save_model(model(), path)
    special = str(tmp_path / "special")
    os.mkfifo(special) if kind == "pipe" else _char_device(special)
    victim = weights_file(path) if which == "weights" else os.path.join(path, CONFIG_NAME)
    os.remove(victim)
    os.symlink(special, victim)
    err = in_time(lambda: load_model(path))
    assert isinstance(err, CheckpointError)
    assert f"{os.path.basename(victim)} is not a regular file" in str(err)


def test_weights_larger_than_the_architecture_allows_are_refused(tmp_path):
    path = str(tmp_path / "m")
    save_model(model(), path)
    edit_config(path, weights_sha256=None)
    with open(weights_file(path), "ab") as f:
        f.write(b"\0" * (1 << 20))
    with pytest.raises(CheckpointError, match=r"weights-\w+\.safetensors has \d+ bytes, more than the \d+ it may have"):
        load_model(path)


def test_a_newer_format_says_so(tmp_path):
    path = str(tmp_path / "m")
    save_model(model(), path)
    edit_config(path, format="wmplan-worldmodel/7")
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert str(info.value) == f"checkpoint {path} was written by a newer wmplan (format 7); this wmplan reads format 1"


def test_checkpoint_files_get_the_umask_permissions(tmp_path):
    path = str(tmp_path / "m")
    old = os.umask(0o022)
    try:
        save_model(model(), path)
    finally:
        os.umask(old)
    for name in os.listdir(path):
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == 0o644, name


def test_a_save_killed_midway_leaves_temporaries_the_next_save_removes(tmp_path):
    path = str(tmp_path / "m")
    save_model(model(seed=1), path)
    script = textwrap.dedent(f"""
        import os, signal
        import worldmodel
        from worldmodel import WorldModel, save_model
        from worldmodel import checkpoint
        real = checkpoint.mx.save_safetensors
        def write_then_die(file, arrays):
            real(file, arrays)
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.mx.save_safetensors = write_then_die
        save_model(WorldModel(hidden=(8, 8), reward_hidden=4), {path!r})
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    stale = [name for name in os.listdir(path) if name.startswith(".tmp-")]
    assert stale, "the killed save left no temporary file: the test did not kill it mid-save"
    assert same(load_model(path), model(seed=1))  # the previous checkpoint is intact
    save_model(model(seed=2), path)
    assert sorted(os.listdir(path)) == sorted([CONFIG_NAME, read_config(path)["weights"]])
    assert same(load_model(path), model(seed=2))


def test_concurrent_saves_into_one_folder_lose_nothing(tmp_path, monkeypatch):
    """Save A pauses just before removing older weight files; save B runs meanwhile (without a lock
    it would finish in the pause, and A would then delete B's weights under B's config)."""
    path = str(tmp_path / "m")
    a, b = model(seed=3), model(seed=4)
    real_listdir = os.listdir
    b_running, a_paused = threading.Event(), threading.Event()

    def pausing_listdir(folder="."):
        if threading.current_thread().name == "save-a" and os.path.abspath(folder) == path:
            a_paused.set()
            b_running.wait(0.5)
            threading.Event().wait(0.5)  # B's whole save fits in this pause when nothing stops it
        return real_listdir(folder)

    monkeypatch.setattr(os, "listdir", pausing_listdir)
    errors = []

    def save(m):
        try:
            save_model(m, path)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    first = threading.Thread(target=save, args=(a,), name="save-a")
    first.start()
    assert a_paused.wait(20)
    b_running.set()
    second = threading.Thread(target=save, args=(b,), name="save-b")
    second.start()
    first.join(60)
    second.join(60)
    assert not errors
    config = read_config(path)
    assert sorted(real_listdir(path)) == sorted([CONFIG_NAME, config["weights"]])
    assert same(load_model(path), b)  # B waited for A: the last save wins


def test_a_load_that_meets_a_save_reads_the_new_config(tmp_path, monkeypatch):
    path = str(tmp_path / "m")
    save_model(model(seed=5), path)
    newer = model(seed=6)
    real_read = ckpt.read_config
    calls = []

    def read_then_save(folder):
        config = real_read(folder)
        if not calls:  # a save lands between reading the config and opening its weights
            save_model(newer, folder)
        calls.append(config["weights"])
        return config

    monkeypatch.setattr(ckpt, "read_config", read_then_save)
    assert same(load_model(path), newer)
    assert len(calls) == 2 and calls[0] != calls[1]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hidden": [2**31, 128]}, "weights is larger than"),
        ({"hidden": [1e9, 1e9]}, "weights is larger than"),
        ({"kind": "ensemble", "ensemble": 2**40}, "weights is larger than"),
        ({"state_dim": 10**12}, "weights is larger than"),
        ({"hidden": [8] * 1000}, "1 to 64 hidden layers"),
        ({"hidden": [8.5]}, "positive sizes"),
        ({"reward_hidden": True}, "positive sizes"),
        ({"kind": "ensemble", "ensemble": 2.0}, "ensemble must be an integer >= 1"),
    ],
)
def test_absurd_sizes_are_refused_before_a_model_is_built(tmp_path, changes, message):
    path = str(tmp_path / "m")
    save_model(model(), path)
    config = read_config(path)
    edit_config(path, model={**config["model"], **changes})
    err = in_time(lambda: load_model(path), seconds=5.0)
    assert isinstance(err, CheckpointError) and message in str(err), err
    assert str(err).startswith(f"corrupt checkpoint {path}: ") and "\n" not in str(err)


def test_an_infinite_size_is_refused(tmp_path):
    path = str(tmp_path / "m")
    save_model(model(), path)
    text = open(os.path.join(path, CONFIG_NAME)).read().replace('"reward_hidden": 4', '"reward_hidden": 1e400')
    with open(os.path.join(path, CONFIG_NAME), "w") as f:
        f.write(text)
    with pytest.raises(CheckpointError, match="positive sizes"):
        load_model(path)
