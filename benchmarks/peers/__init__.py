"""Peer implementations for side-by-side speed comparisons (``python -m benchmarks.speed_compare``).

Nothing here is imported by wmplan itself. Each worker module runs in its own process, because torch
and MLX in one process slow each other down:

- :mod:`benchmarks.peers.mlp_weights` — one deterministic MLP (numpy, seed 0) that every framework loads;
- :mod:`benchmarks.peers.torch_planners` — hand-written torch CEM/MPPI and the ``pytorch_mppi`` package
  (torch is optional: ``pip install ".[peers]"``);
- :mod:`benchmarks.peers.jax_planners` — the same CEM/MPPI in JAX, one ``jax.jit`` per planning call with
  ``lax.scan`` over the horizon (jax is optional too, in the same extra);
- :mod:`benchmarks.peers.mlx_planners` — the same MLP as an ``mlx.nn.Module``, planned with wmplan's
  ``planners.CEM`` / ``planners.MPPI``.
"""
