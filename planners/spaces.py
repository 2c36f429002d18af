"""Action spaces shared by environments, world models and planners.

``Discrete(n)``: an action is a one-hot (or probability) vector of length ``n``; with
``values`` and ``one_hot=False`` the dynamics receive (and planners return) the values instead.
``Box(low, high, shape)``: an action is a float vector, clipped to ``[low, high]``.
Both describe the last axis of an action array, so a batch of actions is ``[B, dim]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import mlx.core as mx
import numpy as np


@dataclass(frozen=True)
class Discrete:
    """``n`` discrete actions; the search works with one-hot vectors ``[..., n]``.

    Args:
        n: number of actions (at least 2); may be left out when ``values`` are given.
        values: optional meaning of each action: ``n`` numbers (e.g. the pushes ``(-1, 0, 1)``) or
            ``n`` vectors of one length ``D`` (e.g. nine acceleration pairs ``[[ax, ay], ...]``).
            :meth:`decode` maps actions to them.
        one_hot: what the dynamics receive and the planner returns (``act``, ``Plan.actions``):
            ``True`` (default): one-hot vectors ``[..., n]`` (``values`` are then for display and
            :meth:`decode`); ``False`` (needs numeric ``values``): the values themselves ``[..., D]``
            (``D = 1`` for numbers), so neither the dynamics nor the closed loop decode anything.
            While a gradient planner differentiates, the dynamics receive probability vectors
            (``one_hot=True``) or their probability-weighted values (``one_hot=False``).

    ``Discrete(values=[[ax, ay], ...], one_hot=False)``: the dynamics get ``action [B, 2]`` and
    ``planner.act(state)`` returns ``[E, 2]``, one of the pairs per environment.
    """

    n: int | None = None
    values: tuple | None = None
    one_hot: bool = True

    def __post_init__(self):
        if self.values is not None:
            if isinstance(self.values, (str, bytes)) or not hasattr(self.values, "__len__"):
                raise ValueError(f"Discrete values must be a sequence (one per action), got {self.values!r}")
            values = tuple(tuple(v) if np.ndim(v) else v for v in self.values)
            object.__setattr__(self, "values", values)
            if self.n is None:
                object.__setattr__(self, "n", len(values))
        if not isinstance(self.n, (int, np.integer)) or isinstance(self.n, bool) or self.n < 2:
            raise ValueError(f"Discrete needs n >= 2 actions, got {self.n!r}")
        if self.values is not None and len(self.values) != self.n:
            raise ValueError(f"Discrete({self.n}) got {len(self.values)} values")
        if not isinstance(self.one_hot, (bool, np.bool_)):
            raise ValueError(f"Discrete one_hot must be True or False, got {self.one_hot!r}")
        if not self.one_hot:
            if self.values is None:
                raise ValueError("Discrete(one_hot=False) needs values: the dynamics receive the values of the actions")
            self._value_table()  # numeric, finite, one shape

    @property
    def dim(self) -> int:
        """Length of one action vector as the planners search over it (one-hot): ``n``."""
        return int(self.n)

    @property
    def value_dim(self) -> int:
        """``D``, the length of one decoded action (:meth:`decode`): 1 for numbers."""
        return self._value_table().shape[1]

    @property
    def dynamics_dim(self) -> int:
        """Length of the action vectors the dynamics receive: ``n`` (one-hot) or ``D`` (``one_hot=False``)."""
        return self.dim if self.one_hot else self.value_dim

    def decode(self, actions):
        """The values of one-hot ``actions [..., n]`` (MLX or numpy): ``[..., D]`` float32, of the same kind.

        ``D = 1`` when the values are numbers. Probability vectors give the probability-weighted
        values. ``ValueError`` without numeric values or when the last axis is not ``n``.
        """
        table = self._value_table()
        shape = tuple(getattr(actions, "shape", np.shape(actions)))
        if not shape or shape[-1] != self.n:
            raise ValueError(f"Discrete({self.n}).decode needs actions [..., {self.n}] (one-hot), got shape {shape}")
        if isinstance(actions, mx.array):
            return actions.astype(mx.float32) @ self._mlx_table
        return np.asarray(actions, dtype=np.float32) @ table

    def to_dynamics(self, actions):
        """``actions [..., n]`` in the form the dynamics receive: unchanged (``one_hot``) or :meth:`decode`-d."""
        return actions if self.one_hot else self.decode(actions)

    def __repr__(self):
        return f"Discrete(n={self.n!r}, values={self.values!r}" + ("" if self.one_hot else ", one_hot=False") + ")"

    @cached_property
    def _mlx_table(self) -> mx.array:
        """:meth:`_value_table` as an MLX array (made once)."""
        return mx.array(self._value_table())

    def _value_table(self) -> np.ndarray:
        """The values as float32 ``[n, D]``; ``ValueError`` if there are none or they are not finite
        numbers (or vectors of one length)."""
        if self.values is None:
            raise ValueError(f"Discrete({self.n}) has no values to decode actions to")
        try:
            table = np.array(self.values, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"Discrete values must be numbers or vectors of one length, got {self.values!r}") from None
        if table.ndim == 1:
            table = table[:, None]
        if table.ndim != 2 or table.shape[1] < 1 or not np.all(np.isfinite(table)):
            raise ValueError(f"Discrete values must be finite numbers or vectors of one length, got {self.values!r}")
        return table


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

    @property
    def dynamics_dim(self) -> int:
        """Length of the action vectors the dynamics receive: :attr:`dim`."""
        return self.dim

    def to_dynamics(self, actions):
        """``actions [..., dim]`` in the form the dynamics receive: unchanged."""
        return actions

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
