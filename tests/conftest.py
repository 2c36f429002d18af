"""Shared test setup: a private ``$WMPLAN_HOME`` for the whole session, and the helpers tests share
(``from tests.conftest import invoke, one_error_line, char_device, need``)."""

from __future__ import annotations

import importlib.util
import os
import stat
import threading

import pytest

EXTRAS = {"gymnasium": "gym", "mujoco": "mujoco", "matplotlib": "plot", "jax": "peers", "torch": "peers", "pytorch_mppi": "peers"}
"""The optional module a test may need -> the extra that installs it."""


def missing(module: str) -> str:
    """Why a test that needs ``module`` is skipped: the same words everywhere, naming the extra."""
    return f"{module} not installed (pip install '.[{EXTRAS[module]}]')"


def need(module: str):
    """``module``, imported; the test (or the whole file, at module level) is skipped without it."""
    return pytest.importorskip(module, reason=missing(module))


def requires(module: str):
    """A mark that skips a test without ``module`` (for tests that do not import it themselves)."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=missing(module))


def invoke(*args):
    """``wmplan ARGS...`` through click's test runner (the result: exit_code, output)."""
    from click.testing import CliRunner

    from cli import main

    return CliRunner().invoke(main, [str(arg) for arg in args])


def one_error_line(result, code: int) -> str:
    """The single ``Error: ...`` line of a failed command (exit status ``code``), without ``Error: ``."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return errors[0][len("Error: "):]


def with_statistics(model, seed=0):
    """``model`` (state size 2) with non-trivial normalization statistics, as after training."""
    import mlx.core as mx
    import numpy as np

    rng = np.random.default_rng(seed)
    states = rng.normal([0.3, -0.1], [0.8, 0.5], size=(500, 2)).astype(np.float32)
    next_states = states + rng.normal([0.01, 0.02], [0.05, 0.03], size=(500, 2)).astype(np.float32)
    model.fit_normalization(states, next_states, rng.normal(-0.7, 0.4, size=500).astype(np.float32))
    mx.eval(model.parameters())
    return model


def pipe_with_reader(path):
    """A named pipe at ``path`` and a started daemon thread reading it whole: ``(pipe, got, reader)``,
    the text read appended to the list ``got`` (join ``reader`` before looking)."""
    pipe, got = str(path), []
    os.mkfifo(pipe)
    reader = threading.Thread(target=lambda: got.append(open(pipe).read()), daemon=True)
    reader.start()
    return pipe, got, reader


def char_device(path):
    """A /dev/null-like character device node at ``path`` (skips the test where one cannot be made)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as err:
        pytest.skip(f"cannot make a device node here: {err}")
    return path


@pytest.fixture(scope="session", autouse=True)
def wmplan_home(tmp_path_factory):
    """Point ``$WMPLAN_HOME`` (default models; BLAS link folders of subprocesses) at a per-session temporary folder."""
    home = tmp_path_factory.mktemp("wmplan-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WMPLAN_HOME", str(home))
        yield home


TINY_TRAIN = ["--episodes", "20", "--steps", "10", "--epochs", "2"]
"""``wmplan train`` options of a model that trains in well under a second."""


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A checkpoint folder trained once per session with :data:`TINY_TRAIN` through the CLI."""
    from click.testing import CliRunner

    from cli import main

    path = str(tmp_path_factory.mktemp("tiny") / "model")
    result = CliRunner().invoke(main, ["train", *TINY_TRAIN, "--out", path])
    assert result.exit_code == 0, result.output
    return path
