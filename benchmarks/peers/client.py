"""The frontier's side of a peer process (:mod:`benchmarks.peers.closed_loop`): start it, configure a planner,
and use it as an episode policy whose planning time is measured in the peer's process (numpy only).

    with PeerProcess("pytorch_mppi", "model.npz") as peer:
        policy = peer.policy("mppi", horizon=40, samples=300, iterations=2, episodes=5, seed=0)
        episodes = run_episodes(policy, env, starts, steps)     # policy.ms: every call's milliseconds
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .closed_loop import MARKER, PEERS

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the benchmarks package
NEEDS = {"pytorch_mppi": ("torch", "pytorch_mppi"), "mbrl-lib": ("torch", "mbrl", "omegaconf", "hydra"), "jax": ("jax",)}
"""The modules each peer imports (all from the ``peers`` extra)."""


def check_peers(names) -> None:
    """``ValueError`` naming the first unknown peer, or the first whose modules are not installed (and the extra)."""
    for name in names:
        if name not in PEERS:
            raise ValueError(f"peers must be among {', '.join(PEERS)}, got {name!r}")
        missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
        if missing:
            how = "pip install --no-deps mbrl==0.2.0" if missing == ["mbrl"] else "pip install '.[peers]'" + (
                ", then pip install --no-deps mbrl==0.2.0" if "mbrl" in missing else "")
            raise ValueError(f"peers {name} needs {', '.join(missing)} ({how})")


class PeerError(RuntimeError):
    """A peer process that exited or answered something else than its protocol's line."""


class PeerProcess:
    """One running peer (``python -m benchmarks.peers.closed_loop``); a context manager that ends it."""

    def __init__(self, peer: str, model_path, python: str | None = None):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        self.peer = peer
        self.process = subprocess.Popen(
            [python or sys.executable, "-m", "benchmarks.peers.closed_loop", "--peer", peer, "--model", str(model_path)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.versions = self._read()["versions"]

    def _read(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER):])
        raise PeerError(f"the {self.peer} process ended (exit code {self.process.wait()}); its error is above")

    def request(self, payload: dict) -> dict:
        """Send one request line; the answer."""
        try:
            self.process.stdin.write(json.dumps(payload) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise PeerError(f"the {self.peer} process ended (exit code {self.process.wait()}); its error is above") from None
        return self._read()

    def policy(self, planner: str, **settings) -> "PeerPolicy":
        """A fresh controller per episode of ``planner`` (``horizon``, ``samples``, ``iterations``, ``episodes``, ``seed``)."""
        self.request({"configure": {"planner": planner, **settings}})
        return PeerPolicy(self)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.request({"quit": True})
            except PeerError:
                pass
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PeerPolicy:
    """``state [E, S] -> actions [E, A]`` planned by the peer, each episode's state in its own call;
    :attr:`ms` holds every call's milliseconds as the peer measured it."""

    def __init__(self, peer: PeerProcess):
        self.peer, self.ms = peer, []

    def __call__(self, state: np.ndarray) -> np.ndarray:
        answer = self.peer.request({"act": np.asarray(state, np.float64).tolist()})
        self.ms.extend(answer["ms"])
        return np.asarray(answer["actions"], np.float32)
