"""Planning within a deadline: a search iterates while its next iteration still fits the time left."""

from __future__ import annotations

import time
from typing import NamedTuple, Optional

import mlx.core as mx

from .checks import check_float

__all__ = ["Deadline", "SearchInfo", "check_time_budget"]


class SearchInfo(NamedTuple):
    """What one planning call's search did (``planner.last_search``).

    Attributes:
        iterations: iterations the search ran (sampling planners: populations; gradient planners:
            Adam steps; ``cem-gd``: both). Without a time budget, always the planner's own count.
        seconds: wall time of the call, from its start to its plan evaluated.
        time_budget_ms: the call's budget, or ``None`` when it had none.
    """

    iterations: int
    seconds: float
    time_budget_ms: Optional[float] = None


def check_time_budget(value) -> Optional[float]:
    """``value`` (ms, ``> 0``, ``inf`` allowed) as a float, ``None`` kept; else ``ValueError`` naming ``time_budget_ms``."""
    return None if value is None else check_float("time_budget_ms", value, 0.0, float("inf"), low_open=True)


class Deadline:
    """The clock of one planning call with a budget of ``milliseconds``, started when made.

    A search calls :meth:`next_fits` after each iteration with the arrays that iteration made: they
    are evaluated (the one host sync per iteration a deadline costs), the iteration's wall time is
    recorded, and the answer is whether another iteration, estimated as the slowest one so far,
    ends within the budget. The first iteration always runs, so a call overruns its budget by at
    most about one iteration (plus the search's short finish, e.g. MPPI's evaluation of its mean).
    """

    def __init__(self, milliseconds: float):
        self.budget_ms = check_time_budget(milliseconds)
        self.start = self._mark = time.perf_counter()
        self.end = self.start + self.budget_ms / 1000.0
        self.durations: list = []

    @property
    def iterations(self) -> int:
        """Iterations recorded so far."""
        return len(self.durations)

    def next_fits(self, *arrays) -> bool:
        """Evaluate ``arrays`` (``None`` entries skipped), record the iteration that made them; :meth:`fits`."""
        mx.eval(*[a for a in arrays if a is not None])
        now = time.perf_counter()
        self.durations.append(now - self._mark)
        self._mark = now
        return self.fits()

    def fits(self) -> bool:
        """Whether one more iteration, as long as the slowest so far, ends within the budget (``True`` before any)."""
        return time.perf_counter() + max(self.durations, default=0.0) <= self.end
