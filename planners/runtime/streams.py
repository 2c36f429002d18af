"""How a batch of independent rows executes on this machine: CPU streams, lockstep shards, row chunks.

Each fact measured on this project's 2-core x86-64 machine:

* **CPU streams.** MLX's CPU backend executes each stream's operations on that stream's own thread,
  and its element-wise operations on one thread. A batch of ``B`` independent rows split into ``K``
  contiguous shards, each on its own CPU stream, keeps ``K`` cores busy with everything -- matmuls
  (one BLAS thread per shard) and element-wise work alike. 3 -> 128 -> 128 -> 3 MLP, 16384 rows,
  30 steps: one stream 250 ms, one stream with a 2-thread BLAS 144 ms, two streams 124 ms,
  identical results. Shards are at least :data:`MIN_SHARD_ROWS` rows.
* **Lockstep.** Work done in steps (a rollout's horizon) advances its shards one step at a time,
  each step handed to ``mx.async_eval``: evaluated as one graph, MLX runs one shard's long chain
  almost to its end before the next shard's starts, and the second core idles (folded particle
  model, 40,000 rows, 15 steps: 409 ms at 1.1 cores busy in one graph, 210 ms at 1.9 in lockstep).
* **Row chunks.** Within a shard, a step over more than ``2 * CHUNK_ROWS`` rows is computed in
  slices of :data:`CHUNK_ROWS`: the slices' ``[rows, 128]`` temporaries stay in cache and the
  allocator reuses them (2.3x faster at 100k rows).

Both splits assume each row's step depends on that row alone, as in any per-sample model; dynamics
that mix the batch (batch statistics) ask for ``streams=1``, which also turns chunking off.

The stream count: ``$WMPLAN_CPU_STREAMS`` if set (at most the CPU cores; more is clamped with a
warning), else the CPU cores this process may use, divided among the processes of a local
``mx.distributed`` job (:func:`set_process_share`); ``1`` whenever the default device is a GPU.
"""

from __future__ import annotations

import os
import warnings

import mlx.core as mx

__all__ = [
    "CHUNK_ROWS",
    "MIN_SHARD_ROWS",
    "default_count",
    "cpu_streams",
    "shards",
    "on_streams",
    "in_chunks",
    "map_rows_in_steps",
    "compile_works",
    "set_process_share",
]

MIN_SHARD_ROWS = 256
"""Below this many rows per shard the per-operation overhead outweighs the second core."""

CHUNK_ROWS = 8192
"""Rows per slice of one step when a shard holds more than twice as many."""

_STREAMS: list = []
_PROCESSES_PER_HOST = 1
_WARNED: set = set()
_COMPILE_WORKS: bool | None = None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def set_process_share(processes_per_host: int) -> None:
    """Tell wmplan that ``processes_per_host`` processes share this machine's cores (distributed runs)."""
    global _PROCESSES_PER_HOST
    _PROCESSES_PER_HOST = max(1, int(processes_per_host))


def default_count() -> int:
    """Streams a batch is split over now: ``$WMPLAN_CPU_STREAMS``, else cores per process on the CPU, else 1.

    Raises:
        ValueError: when ``$WMPLAN_CPU_STREAMS`` is not a positive integer.
    """
    text = os.environ.get("WMPLAN_CPU_STREAMS")
    on_cpu = mx.default_device() == mx.cpu
    if text:
        try:
            count = int(text)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"WMPLAN_CPU_STREAMS must be a positive integer, got {text!r}")
        cores = _cores()
        if count > cores:
            _warn_once(f"WMPLAN_CPU_STREAMS={count} is more than the {cores} CPU core(s) here; using {cores}")
            count = cores
        return count if on_cpu else 1
    if not on_cpu:
        return 1
    return max(1, _cores() // _PROCESSES_PER_HOST)


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(f"wmplan: {message}", RuntimeWarning, stacklevel=3)


def cpu_streams(count: int) -> list:
    """``count`` CPU streams, created once and reused (each stream owns a thread)."""
    while len(_STREAMS) < count:
        _STREAMS.append(mx.new_stream(mx.cpu))
    return _STREAMS[:count]


def shards(rows: int, count: int, minimum: int = MIN_SHARD_ROWS) -> list:
    """Contiguous ``(start, stop)`` row ranges: at most ``count``, each at least ``minimum`` rows (one if fewer)."""
    count = max(1, min(count, rows // max(1, minimum)))
    bounds = [rows * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def on_streams(ranges: list, build) -> list:
    """``[build(start, stop) for each range]``, each built on its own CPU stream (its ops run on that stream's thread)."""
    parts = []
    for stream, (start, stop) in zip(cpu_streams(len(ranges)), ranges):
        with mx.stream(stream):
            parts.append(build(start, stop))
    return parts


def in_chunks(step, state: mx.array, action: mx.array, chunk_rows: int = CHUNK_ROWS) -> tuple[mx.array, mx.array]:
    """``step(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``, in slices of
    ``chunk_rows`` rows when ``B > 2 * chunk_rows`` (one call otherwise)."""
    rows = state.shape[0]
    if rows <= 2 * chunk_rows:
        return step(state, action)
    parts = [step(state[i : i + chunk_rows], action[i : i + chunk_rows]) for i in range(0, rows, chunk_rows)]
    return mx.concatenate([p[0] for p in parts]), mx.concatenate([p[1] for p in parts])


def compile_works() -> bool:
    """Whether ``mx.compile`` can build kernels here, checked once with a tiny function; never raises.

    MLX compiles CPU kernels with the system's C++ compiler at run time: without one (a slim
    container) compiled functions fail, and callers run the plain function instead.
    """
    global _COMPILE_WORKS
    if _COMPILE_WORKS is None:
        try:
            probe = mx.compile(lambda x: mx.maximum(x * 2.0 + 1.0, 0.0))
            _COMPILE_WORKS = bool(mx.array_equal(probe(mx.arange(4.0)), mx.array([1.0, 3.0, 5.0, 7.0])).item())
        except Exception:  # noqa: BLE001 - any failure to build or run a kernel means: do not compile
            _COMPILE_WORKS = False
    return _COMPILE_WORKS


def map_rows_in_steps(build, rows: int, streams: int | None = None, minimum: int = MIN_SHARD_ROWS) -> list:
    """Split ``rows`` independent rows over CPU streams for work done in steps, the shards kept in lockstep:
    ``[result of build(start, stop) for each shard]``.

    ``build(start, stop)`` returns a generator that yields the arrays each step produced (what the
    next step builds on) and returns the shard's result. With several shards every generator
    advances one step on its own stream, then that step's arrays go to ``mx.async_eval``, so all
    the streams' threads work at once (inside ``mx.grad``, ``mx.vmap`` or ``mx.compile``, where
    nothing may be evaluated, the steps just build one graph); with one shard the generator runs to
    its end on the current stream (one graph, evaluated by the caller). ``streams``: at most this
    many shards (``None``: :func:`default_count`); ``minimum``: rows per shard at least (see :func:`shards`).
    """
    ranges = shards(rows, default_count() if streams is None else streams, minimum)
    if len(ranges) == 1:
        return [_run_to_end(build(0, rows))]
    own = cpu_streams(len(ranges))
    steps = [build(start, stop) for start, stop in ranges]  # generators: nothing runs until next()
    results: list = [None] * len(steps)
    running = list(range(len(steps)))
    lockstep = True
    while running:
        produced = []
        for index in list(running):
            with mx.stream(own[index]):
                try:
                    produced.append(next(steps[index]))
                except StopIteration as finished:
                    results[index] = finished.value
                    running.remove(index)
        if produced and lockstep:
            try:
                mx.async_eval(produced)
            except ValueError:  # inside mx.grad / vmap / compile nothing may be evaluated: one graph then
                lockstep = False
    return results


def _run_to_end(steps):
    """The value a generator returns, after running it through."""
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value
