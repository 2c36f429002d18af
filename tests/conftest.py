"""Shared test setup: a private ``$WMPLAN_HOME`` for the whole session."""

from __future__ import annotations

import worldmodel  # noqa: F401  (first: loads the fast BLAS before anything imports mlx.core)

import pytest  # isort: skip


@pytest.fixture(scope="session", autouse=True)
def wmplan_home(tmp_path_factory):
    """Point ``$WMPLAN_HOME`` (default models; BLAS link folders of subprocesses) at a per-session temporary folder."""
    home = tmp_path_factory.mktemp("wmplan-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WMPLAN_HOME", str(home))
        yield home
