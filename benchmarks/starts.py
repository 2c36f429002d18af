"""Start states for benchmark episodes: a default varied set, or a user's CSV file."""

from __future__ import annotations

import csv

import numpy as np

# Hard starts first: at a wall moving outward at full speed, at a wall at rest, at rest in the centre.
HARD_STARTS = ((1.5, 1.0), (-1.5, -1.0), (1.5, 0.0), (-1.5, 0.0), (0.0, 0.0), (1.0, 0.0))


class InitStatesError(ValueError):
    """An initial-states file that is missing or malformed."""


def default_starts(num: int, seed: int = 0, x_limit: float = 1.5, v_limit: float = 1.0) -> np.ndarray:
    """``num`` start states ``[num, 2]`` float32: the hard starts, then uniform draws over the box."""
    if num < 1:
        raise ValueError(f"episodes must be >= 1, got {num}")
    hard = np.array(HARD_STARTS[:num], dtype=np.float32)
    rng = np.random.default_rng(seed)
    rest = num - len(hard)
    uniform = np.stack([rng.uniform(-x_limit, x_limit, rest), rng.uniform(-v_limit, v_limit, rest)], axis=-1)
    return np.concatenate([hard, uniform.astype(np.float32)]).astype(np.float32)


def check_start(x: float, v: float, x_limit: float = 1.5, v_limit: float = 1.0) -> tuple[float, float]:
    """``(x, v)`` as floats when the start lies in the box ``|x| <= x_limit``, ``|v| <= v_limit``; else ``ValueError``."""
    x, v = float(x), float(v)
    if not (np.isfinite(x) and np.isfinite(v)):
        raise ValueError(f"x and v must be finite, got {x}, {v}")
    if abs(x) > x_limit or abs(v) > v_limit:
        raise ValueError(f"({x}, {v}) is outside the box |x| <= {x_limit}, |v| <= {v_limit}")
    return x, v


def read_init_states(path: str, x_limit: float = 1.5, v_limit: float = 1.0) -> np.ndarray:
    """Starts ``[E, 2]`` float32 from a CSV with header ``x,v`` and one start per row.

    Raises:
        InitStatesError: missing file, wrong columns, a non-number, NaN/inf, a state outside the box,
            or no rows; the message names the line.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a byte-order mark is not part of the header
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise InitStatesError(f"no initial-states file at {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InitStatesError(f"cannot read initial-states file {path}: {err}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InitStatesError(f"{path} is empty: expected a header 'x,v' and one start per row")
    header = [cell.strip().lower() for cell in rows[0]]
    if header != ["x", "v"]:
        raise InitStatesError(f"{path}: the header must be 'x,v', got {','.join(rows[0])!r}")
    if len(rows) == 1:
        raise InitStatesError(f"{path} has a header but no starts")
    starts = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise InitStatesError(f"{path} line {line}: expected 2 values (x,v), got {len(row)}")
        try:
            x, v = float(row[0]), float(row[1])
        except ValueError:
            raise InitStatesError(f"{path} line {line}: not a number: {','.join(row)!r}") from None
        try:
            starts.append(check_start(x, v, x_limit, v_limit))
        except ValueError as err:
            raise InitStatesError(f"{path} line {line}: {err}") from None
    return np.array(starts, dtype=np.float32)
