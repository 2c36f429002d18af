"""Start states given by a user: checked against an environment, read from a CSV file or a text.

The default starts are the environment's own (``env.benchmark_starts``); these functions only read
and check the ones a user gives (``--init-states FILE.csv``, ``--start a,b``, ``--x0/--v0``), with
the environment's state names as the CSV header (the particle's ``x,v``; the pendulum's
``theta,theta_dot``; ...) and the environment's state box as the range.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from worldmodel.files import InputError, read_bounded
from worldmodel.recipe import demo_start

MAX_INIT_STATES_BYTES = 64 << 20
"""An initial-states CSV is read only up to this size (about two million starts)."""


class InitStatesError(ValueError):
    """An initial-states file that is missing or malformed."""


def _bound(name: str, low: float, high: float) -> str:
    return f"|{name}| <= {high:g}" if low == -high else f"{low:g} <= {name} <= {high:g}"


def check_start(env, values) -> tuple:
    """``values`` (``S`` numbers) as a tuple of floats when they are finite and inside the env's state box
    ``[state_low, state_high]``; else ``ValueError`` naming the state variables."""
    values = tuple(float(v) for v in values)
    names = env.state_names
    if len(values) != len(names):
        raise ValueError(f"expected {len(names)} values ({','.join(names)}), got {len(values)}")
    if not all(np.isfinite(values)):
        raise ValueError(f"{' and '.join(names) if len(names) == 2 else ', '.join(names)} must be finite, "
                         f"got {', '.join(map(str, values))}")
    low, high = np.asarray(env.state_low, np.float64), np.asarray(env.state_high, np.float64)
    if np.any(np.array(values) < low) or np.any(np.array(values) > high):
        box = ", ".join(_bound(n, lo, hi) for n, lo, hi in zip(names, low, high))
        raise ValueError(f"({', '.join(map(str, values))}) is outside the box {box}")
    return values


def parse_start(env, text: str) -> np.ndarray:
    """A start ``[S]`` float32 from ``"a,b,..."`` (one number per state variable), checked by :func:`check_start`."""
    try:
        values = [float(tok) for tok in text.split(",")]
    except ValueError:
        raise ValueError(f"expected {len(env.state_names)} comma-separated numbers ({','.join(env.state_names)}), got {text!r}") from None
    return np.array(check_start(env, values), dtype=np.float32)


def read_init_states(path: str, env) -> np.ndarray:
    """Starts ``[E, S]`` float32 from a CSV whose header names the env's state variables (``x,v`` for the
    particle) and with one start per row.

    Raises:
        InitStatesError: missing file, wrong columns, a non-number, NaN/inf, a state outside the box,
            or no rows; the message names the line (counted in the file, blank lines included).
    """
    names = list(env.state_names)
    header_text = ",".join(names)
    try:
        text = read_bounded(path, MAX_INIT_STATES_BYTES).decode("utf-8-sig")  # a byte-order mark is not part of the header
        reader = csv.reader(io.StringIO(text, newline=""))
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]  # (line in the file, cells)
    except FileNotFoundError:
        raise InitStatesError(f"no initial-states file at {path}") from None
    except InputError as err:
        raise InitStatesError(f"cannot read initial-states file {path}: it {err.reason}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InitStatesError(f"cannot read initial-states file {path}: {err}") from None
    if not rows:
        raise InitStatesError(f"{path} is empty: expected a header '{header_text}' and one start per row")
    header = [cell.strip().lower() for cell in rows[0][1]]
    if header != names:
        raise InitStatesError(f"{path}: the header must be '{header_text}' for {env.name}, got {','.join(rows[0][1])!r}")
    if len(rows) == 1:
        raise InitStatesError(f"{path} has a header but no starts")
    starts = []
    for line, row in rows[1:]:
        if len(row) != len(names):
            raise InitStatesError(f"{path} line {line}: expected {len(names)} values ({header_text}), got {len(row)}")
        try:
            values = [float(cell) for cell in row]
        except ValueError:
            raise InitStatesError(f"{path} line {line}: not a number: {','.join(row)!r}") from None
        try:
            starts.append(check_start(env, values))
        except ValueError as err:
            raise InitStatesError(f"{path} line {line}: {err}") from None
    return np.array(starts, dtype=np.float32)


def given_start(env, text: str | None = None, position: tuple | None = None, seed: int = 0) -> tuple[np.ndarray, bool]:
    """The start ``[S]`` float32 of one episode (``wmplan plan``/``rollout``) and whether it was given:
    ``text`` (``"a,b,..."``, :func:`parse_start`), else the particle's ``position`` ``(x, v)`` (``None``
    parts from the demo start), else the env's demo start (:func:`worldmodel.recipe.demo_start` of ``seed``).

    Raises:
        ValueError: a start outside the env's state box, not numbers, or ``position`` for an env whose state is not ``(x, v)``.
    """
    if text is not None:
        return parse_start(env, text), True
    if position is None or position == (None, None):
        return demo_start(env, seed), False
    if tuple(env.state_names) != ("x", "v"):
        raise ValueError(f"x and v are the particle's state; {env.name}'s start is {','.join(env.state_names)}")
    demo = demo_start(env, seed)
    values = tuple(demo[i] if value is None else value for i, value in enumerate(position))
    return np.array(check_start(env, values), dtype=np.float32), True
