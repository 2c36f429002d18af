"""Action spaces shared by environments, world models and planners.

``Discrete(n)``: an action is a one-hot (or probability) vector of length ``n``.
``Box(low, high, shape)``: an action is a float vector, clipped to ``[low, high]``.
Both describe the last axis of an action array, so a batch of actions is ``[B, dim]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Discrete:
    """``n`` discrete actions, given to dynamics as one-hot vectors ``[..., n]``.

    Args:
        n: number of actions (at least 2).
        values: optional meaning of each action (e.g. the pushes ``(-1, 0, 1)``), for display.
    """

    n: int
    values: tuple | None = None

    def __post_init__(self):
        if not isinstance(self.n, (int, np.integer)) or self.n < 2:
            raise ValueError(f"Discrete needs n >= 2 actions, got {self.n!r}")
        if self.values is not None and len(self.values) != self.n:
            raise ValueError(f"Discrete({self.n}) got {len(self.values)} values")

    @property
    def dim(self) -> int:
        """Length of one action vector."""
        return int(self.n)


@dataclass(frozen=True)
class Box:
    """Continuous actions in ``[low, high]`` (element-wise), shape ``(dim,)``.

    Args:
        low, high: floats or array-likes of shape ``shape``.
        shape: ``(dim,)``; inferred from ``low``/``high`` when either is an array. With two scalar
            bounds and no ``shape`` the size is open (``shape`` is ``None``): a planner takes it from
            its dynamics' declared ``action_dim`` (:meth:`sized`) and refuses it otherwise.
    """

    low: np.ndarray
    high: np.ndarray
    shape: tuple = field(default=None)

    def __init__(self, low, high, shape=None):
        low_arr = np.asarray(low, dtype=np.float32)
        high_arr = np.asarray(high, dtype=np.float32)
        if shape is None and low_arr.ndim == 0 and high_arr.ndim == 0:
            shape = None  # the size is open: see sized()
        else:
            if shape is None:
                shape = np.broadcast_shapes(low_arr.shape, high_arr.shape)
            shape = tuple(int(s) for s in np.atleast_1d(shape))
            if len(shape) != 1 or shape[0] < 1:
                raise ValueError(f"Box shape must be (dim,) with dim >= 1, got {shape}")
            try:
                low_arr = np.broadcast_to(low_arr, shape).copy()
                high_arr = np.broadcast_to(high_arr, shape).copy()
            except ValueError:
                raise ValueError(f"Box bounds of shapes {np.shape(low)} and {np.shape(high)} do not fit shape {shape}") from None
        if not (np.all(np.isfinite(low_arr)) and np.all(np.isfinite(high_arr))):
            raise ValueError("Box bounds must be finite")
        if np.any(low_arr > high_arr):
            raise ValueError(f"Box needs low <= high, got low={low_arr.tolist()} high={high_arr.tolist()}")
        object.__setattr__(self, "low", low_arr)
        object.__setattr__(self, "high", high_arr)
        object.__setattr__(self, "shape", shape)

    @property
    def dim(self) -> int:
        """Length of one action vector (``ValueError`` while the size is open)."""
        if self.shape is None:
            raise ValueError(self.open_size_message())
        return self.shape[0]

    def sized(self, dim: int) -> "Box":
        """This box with shape ``(dim,)`` (its bounds broadcast); ``ValueError`` if it has another size."""
        if self.shape is not None and self.shape != (int(dim),):
            raise ValueError(f"{self!r} has shape {self.shape}, not ({int(dim)},)")
        return Box(self.low, self.high, shape=(int(dim),))

    def open_size_message(self, where: str = "") -> str:
        """Why a box of open size cannot be used, with both fixes."""
        low, high = self.low.item(), self.high.item()
        return (
            f"Box({low}, {high}) has scalar bounds and no shape, so its action size is unknown{where}: "
            f"write Box({low}, {high}, shape=(A,)) for A-dimensional actions, or declare action_dim = A on the dynamics"
        )

    def __eq__(self, other):
        return (
            isinstance(other, Box)
            and self.shape == other.shape
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    def __hash__(self):
        return hash((self.shape, self.low.tobytes(), self.high.tobytes()))

    def __repr__(self):
        if self.shape is None:
            return f"Box(low={self.low.item()}, high={self.high.item()}, shape=None)"
        return f"Box(low={self.low.tolist()}, high={self.high.tolist()})"
