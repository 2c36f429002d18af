"""How work executes on this machine: the BLAS behind MLX's matmuls, CPU streams, memory estimates.

* :mod:`~planners.runtime.blas` points MLX's float32 matmuls at an optimised CBLAS (Linux), through
  :mod:`~planners.runtime.elf_slots` (reads and rewrites a loaded library's GOT slots).
* :mod:`~planners.runtime.streams` splits a batch of independent rows over CPU streams, in
  lockstep, and in cache-sized chunks.
* :mod:`~planners.runtime.memory` estimates a run's memory against what the machine has.
* :mod:`~planners.runtime.home` reads ``$WMPLAN_HOME``, where wmplan keeps models, runs and the BLAS link cache.

:func:`activate` is called once, by ``planners/__init__.py``: every import of ``planners`` or of
anything below it reaches it, before or after ``mlx.core`` is imported.
"""

from __future__ import annotations

from . import blas, elf_slots, home, memory, streams

__all__ = ["activate", "blas", "elf_slots", "home", "memory", "streams"]


def activate() -> blas.BlasStatus:
    """Make MLX's float32 matmuls use an optimised CBLAS (Linux; a no-op elsewhere); idempotent, never raises."""
    return blas.activate()
