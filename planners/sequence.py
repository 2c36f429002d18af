"""Sequence evaluators: black-box simulators as a planner's dynamics, scoring whole action sequences at once.

Step dynamics ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])`` are imagined
step by step by :func:`~planners.dynamics.rollout`. A simulator that can only be driven from
outside -- MuJoCo's ``mujoco.rollout``, a physics engine, a remote service -- instead takes the
start and every sequence at once and returns their returns. Wrapped in :class:`SequenceEvaluator`,
it is the dynamics of :class:`~planners.cem.CEM`, :class:`~planners.cem.ICEM`,
:class:`~planners.mppi.MPPI` and :class:`~planners.random_shooting.RandomShooting`::

    def returns(start, actions):               # numpy in, numpy out: no MLX needed
        ...                                    # start [E, ...] as given to act; actions [E, N, H, A]
        return totals                          # [E, N]

    planner = CEM(SequenceEvaluator(returns, action_dim=2), Box(-1.0, 1.0), horizon=20)
    action = planner.act(start)                # start: passed to ``returns`` untouched

The gradient planners refuse it (a black box has no gradients), and so do the options of step
dynamics (``discount``, ``terminal_value``, ``termination``, ``propagation``, ``streams``): the
evaluator computes the whole return itself. ``compile=True`` is refused too (``mx.compile``
cannot trace a call out of MLX).
"""

from __future__ import annotations

import numbers
from typing import Callable, Optional

import mlx.core as mx
import numpy as np

from .checks import check_int, first_line
from .dynamics import _as_array, finite_or_neg_inf

__all__ = ["SequenceEvaluator", "STEP_OPTIONS", "check_start", "refuse_step_options"]

STEP_OPTIONS = ("discount", "terminal_value", "termination", "propagation", "streams")
"""The planner options of step dynamics that a sequence evaluator refuses (it computes whole returns itself)."""


class SequenceEvaluator:
    """A black-box ``evaluate(start, actions [E, N, H, A]) -> returns [E, N]`` as a planner's dynamics.

    Args:
        evaluate: the simulator's objective. ``start`` is what the caller passes to the planner's
            ``act`` / ``optimize`` / ``step``, untouched: any array with a leading axis of ``E``
            environments (numpy, e.g. MuJoCo's float64 physics states ``[E, nstate]``, or MLX).
            ``actions [E, N, H, A]``: ``N`` sequences of ``H`` actions per environment (one-hot
            for ``Discrete`` spaces), as a float32 numpy array (a fresh copy: the evaluator may
            write into it) or, with ``as_numpy=False``, an MLX array. It returns the sequences'
            returns ``[E, N]`` as a numpy or MLX array of real numbers; they are checked and
            converted to float32 MLX, and NaN or infinite ones become ``-inf`` (never chosen; where
            no return of an environment is finite, the planner keeps its previous plan and warns,
            as with step dynamics).
        action_dim: the action size ``A`` the simulator takes, if known (checked against the action
            space; sizes a ``Box`` given without a shape).
        as_numpy: hand ``actions`` over as numpy (default) or as MLX (``False``).
        bytes_per_step: memory the evaluator holds per sequence and step while it runs (e.g. the
            states it records), added to the planner's memory estimate. Default: ``0`` (unknown:
            only the planner's own arrays and the numpy copy of the actions are counted).

    Calling the wrapper, ``wrapper(start, actions)``, gives the checked ``returns [E, N]`` (float32 MLX).
    An evaluator must be deterministic for the planner's results to be: the planner's own random
    draws depend on its seed only.
    """

    def __init__(self, evaluate: Callable, action_dim: Optional[int] = None, *, as_numpy: bool = True, bytes_per_step: int = 0):
        if not callable(evaluate):
            raise ValueError(f"a sequence evaluator needs a callable evaluate(start, actions) -> returns, got {evaluate!r}")
        if action_dim is not None:
            action_dim = check_int("action_dim", action_dim)
        if not isinstance(as_numpy, bool):
            raise ValueError(f"as_numpy must be True or False, got {as_numpy!r}")
        self.evaluate = evaluate
        self.action_dim = action_dim
        self.as_numpy = as_numpy
        self.bytes_per_step = check_int("bytes_per_step", bytes_per_step, minimum=0)

    def __call__(self, start, actions: mx.array) -> mx.array:
        """The checked returns ``[E, N]`` (float32 MLX; non-finite ones ``-inf``) of ``actions [E, N, H, A]``
        from ``start [E, ...]``."""
        if len(actions.shape) != 4:
            raise ValueError(
                f"a sequence evaluator takes whole sequences, actions [E, N, H, A], got shape {tuple(actions.shape)} "
                "(it is not step dynamics: rollout and the gradient planners need (state, action) -> (next_state, reward))"
            )
        envs, samples = actions.shape[:2]
        given = np.array(actions, dtype=np.float32) if self.as_numpy else actions
        try:
            returns = self.evaluate(start, given)
        except (ValueError, TypeError, IndexError) as err:
            detail = first_line(err)
            raise ValueError(
                f"sequence evaluator failed on start of shape {_shape(start)} and actions of shape {tuple(actions.shape)}: {detail}"
            ) from err
        returns = _as_array("returns", returns, "sequence evaluator")
        if tuple(returns.shape) != (envs, samples):
            raise ValueError(
                f"sequence evaluator returned returns of shape {tuple(returns.shape)}, expected ({envs}, {samples}): "
                f"{_plural(envs, 'environment')} × {_plural(samples, 'sample')}"
            )
        return finite_or_neg_inf(returns.astype(mx.float32))

    def decoding(self, decode: Callable) -> "SequenceEvaluator":
        """This evaluator handed ``decode(actions)`` instead of the search's actions: for
        ``Discrete(values=..., one_hot=False)``, whose one-hot sequences ``[E, N, H, n]`` reach ``evaluate``
        as their values ``[E, N, H, D]``."""
        evaluate = self.evaluate
        return SequenceEvaluator(
            lambda start, actions: evaluate(start, decode(actions)), action_dim=self.action_dim, as_numpy=self.as_numpy,
            bytes_per_step=self.bytes_per_step,
        )

    def memory_per_sequence(self, horizon: int, action_dim: int) -> int:
        """Bytes per sequence besides the planner's populations: the actions handed over, the returns
        and the evaluator's declared ``bytes_per_step``."""
        handed = 4 * horizon * action_dim if self.as_numpy else 0
        return handed + 8 + horizon * self.bytes_per_step

    def __repr__(self):
        return f"SequenceEvaluator({self.evaluate!r}, action_dim={self.action_dim})"


def check_start(start) -> object:
    """``start`` for a sequence evaluator: any array (numpy, MLX, ...) with a leading axis ``E``, untouched; else ``ValueError``."""
    shape = getattr(start, "shape", None)
    if shape is None or len(shape) < 1 or not all(isinstance(n, numbers.Integral) for n in shape):
        raise ValueError(
            f"a sequence evaluator's start must be an array [E, ...] (numpy or MLX; one row per environment), got {_describe(start)}"
        )
    return start


def refuse_step_options(
    planner: str, *, differentiates: bool, discount: float, terminal_value, termination, streams, propagation, compile
) -> None:
    """``ValueError`` naming the first option of ``planner`` that a sequence evaluator cannot serve."""
    if differentiates:
        raise ValueError(
            f"{planner} follows gradients through step dynamics; a sequence evaluator (a black box) has none: "
            "use CEM, ICEM, MPPI or RandomShooting"
        )
    refused = [  # STEP_OPTIONS, then compile
        ("discount", discount != 1.0), ("terminal_value", terminal_value is not None), ("termination", termination is not None),
        ("propagation", propagation is not None), ("streams", streams is not None), ("compile=True", compile is True),
    ]
    for name, given in refused:
        if given:
            why = "mx.compile cannot trace a black box" if name == "compile=True" else "the evaluator computes whole returns itself"
            raise ValueError(f"{name} does not apply to a sequence evaluator ({why}); leave it out")


def _shape(value) -> tuple | str:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else type(value).__name__


def _describe(value) -> str:
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else f"a {type(value).__name__}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
