"""Checks of the settings users give (configs, recipes), each a one-line ``ValueError`` that starts with
the setting's name -- the CLI turns that name into its option (``batch_size`` -> ``--batch-size``)."""

from __future__ import annotations


def at_least(minimum: int, **values) -> None:
    """``ValueError`` ``"NAME must be >= MINIMUM, got VALUE"`` for the first value (not ``None``) below ``minimum``."""
    for name, value in values.items():
        if value is not None and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


def positive_finite(**values) -> None:
    """``ValueError`` ``"NAME must be a positive finite number, got VALUE"`` for the first value (not ``None``) that
    is not (learning rates: ``0``, ``-1``, ``inf`` and ``nan`` are refused alike)."""
    for name, value in values.items():
        if value is not None and not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a positive finite number, got {value}")


def check_seed(seed: int) -> int:
    """``seed`` when it is an integer from 0 to 2**64 - 1 (what every random generator takes); ``ValueError`` else."""
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer from 0 to 2**64 - 1, got {seed}")
    return seed
