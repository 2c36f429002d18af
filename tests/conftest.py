"""Shared test setup: a private ``$WMPLAN_HOME`` for the whole session."""

from __future__ import annotations

import pytest


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
