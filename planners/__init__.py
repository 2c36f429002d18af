"""Batched model-predictive planners over any MLX dynamics ``f(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``."""

from . import blas as _blas

_blas.activate()  # before mlx.core is imported anywhere below

from .spaces import Box, Discrete  # noqa: E402

__all__ = ["Box", "Discrete"]
