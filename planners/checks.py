"""Checks of the numbers users hand to planners and rollouts, each failing with a ``ValueError`` that names the option."""

from __future__ import annotations

import numbers

__all__ = ["check_int", "check_float"]


def check_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, or ``ValueError`` naming it when it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, or ``ValueError`` naming it when it lies outside the interval."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return value


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or its type's name where it has none (for one-line errors)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
