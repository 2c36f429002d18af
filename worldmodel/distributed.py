"""Scale-out with MLX's own distributed engine (``mx.distributed``, started by ``mlx.launch``).

Under a launcher every process runs the same command; :func:`world` tells it its rank and the
number of processes. Without one, nothing is initialised and the world is one process (rank 0),
so plain runs behave exactly as before.

``mlx.launch`` (ring backend) sets ``MLX_RANK`` and ``MLX_HOSTFILE`` in each process; the MPI
backend's ``mpirun`` sets ``OMPI_COMM_WORLD_*`` (or ``PMI_*``); the NCCL backend sets ``MLX_RANK``
and ``MLX_WORLD_SIZE``. ``mx.distributed.init()`` is only called when one of these is present.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

import mlx.core as mx
import numpy as np

from planners.runtime import streams

from .files import read_bounded

__all__ = ["World", "world", "launched", "local_processes", "share", "gather_rows", "all_max", "all_sum", "LAUNCHER_VARIABLES"]

MAX_HOSTFILE_BYTES = 1 << 20
"""The launcher's hostfile (``MLX_HOSTFILE``) is read only up to this size."""

LAUNCHER_VARIABLES = ("MLX_RANK", "MLX_HOSTFILE", "MLX_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")


class DistributedError(RuntimeError):
    """The launcher's environment is there, but the processes could not connect."""


@dataclass(frozen=True)
class World:
    """This process's place among the ``size`` processes of the job.

    Attributes:
        rank: 0 .. size - 1; rank 0 prints and writes files.
        size: number of processes (1 without a launcher).
        group: the ``mx.distributed.Group``, or ``None`` for a single process.
    """

    rank: int = 0
    size: int = 1
    group: Optional[object] = None

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "none" if self.size == 1 else ("ring" if os.environ.get("MLX_HOSTFILE") else "mx.distributed")

    def describe(self, device: str) -> str:
        """``Device: cpu`` and, with several processes, how many and over what (the line commands print)."""
        several = f"; {self.size} processes (mx.distributed, {self.backend} backend)" if self.size > 1 else ""
        return f"Device: {device}{several}"


_WORLD: Optional[World] = None


def launched() -> bool:
    """Whether a distributed launcher's variables are present in the environment."""
    return any(os.environ.get(name) for name in LAUNCHER_VARIABLES)


def world() -> World:
    """The job's :class:`World`, initialised once (``mx.distributed.init()`` only under a launcher).

    Raises:
        DistributedError: under a launcher, when the processes cannot connect.
    """
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    if not launched() or not mx.distributed.is_available():
        _WORLD = World()
        return _WORLD
    try:
        group = mx.distributed.init()
    except RuntimeError as err:
        if _single_host_ring():  # `mlx.launch -n 1` hands over an empty hostfile: one process
            _WORLD = World()
            return _WORLD
        raise DistributedError(f"mx.distributed.init() failed under a launcher: {str(err).strip()}") from None
    _WORLD = World(group.rank(), group.size(), group if group.size() > 1 else None)
    if _WORLD.size > 1:  # the ranks on this machine share its cores: fewer rollout streams each
        streams.set_process_share(local_processes(_WORLD.rank, _WORLD.size))
    return _WORLD


def local_processes(rank: int, size: int) -> int:
    """How many of the job's processes run on this machine (this one included).

    ``OMPI_COMM_WORLD_LOCAL_SIZE`` / ``MPI_LOCALNRANKS`` under MPI; under the ring backend the
    hostfile entries with this rank's address; otherwise ``size`` (assume one machine).
    """
    for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(name, "").isdigit():
            return max(1, int(os.environ[name]))
    path = os.environ.get("MLX_HOSTFILE")
    if path:
        try:
            hosts = json.loads(read_bounded(path, MAX_HOSTFILE_BYTES))
            hosts_of = [[address.rsplit(":", 1)[0] for address in entry] for entry in hosts]  # drop the ports
            return max(1, hosts_of.count(hosts_of[rank]))
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            pass
    return size


def _single_host_ring() -> bool:
    path = os.environ.get("MLX_HOSTFILE")
    if not path:
        return False
    try:
        return not read_bounded(path, MAX_HOSTFILE_BYTES).strip()
    except OSError:
        return False


def share(total: int, rank: int, size: int) -> slice:
    """Contiguous share of ``total`` items for ``rank``: the first ``total % size`` ranks get one more."""
    base, extra = divmod(total, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def gather_rows(local: np.ndarray, total: int, w: World) -> np.ndarray:
    """Every rank's :func:`share` of rows ``[n_r, ...]``, concatenated in rank order: ``[total, ...]``.

    Shares are padded to the largest one for ``mx.distributed.all_gather`` and cut back after.
    The bytes travel unchanged, so float64 values arrive bit for bit.
    """
    local = np.ascontiguousarray(local)
    if w.size == 1:
        return local
    longest = share(total, 0, w.size).stop
    padded = np.zeros((longest, *local.shape[1:]), dtype=local.dtype)
    padded[: len(local)] = local
    # As raw bytes: mx.array() would turn float64 into float32.
    raw = padded.reshape(longest, -1).view(np.uint8)
    gathered = np.array(mx.distributed.all_gather(mx.array(raw), group=w.group))
    gathered = gathered.view(local.dtype).reshape(w.size * longest, *local.shape[1:])
    parts = [gathered[r * longest : r * longest + _len(share(total, r, w.size))] for r in range(w.size)]
    return np.concatenate(parts)


def _len(s: slice) -> int:
    return s.stop - s.start


def all_max(value: float, w: World) -> float:
    """The largest ``value`` over the ranks."""
    if w.size == 1:
        return float(value)
    return float(mx.distributed.all_max(mx.array([float(value)], dtype=mx.float64), group=w.group).item())


def all_sum(value: float, w: World) -> float:
    """The sum of ``value`` over the ranks."""
    if w.size == 1:
        return float(value)
    return float(mx.distributed.all_sum(mx.array([float(value)], dtype=mx.float64), group=w.group).item())
