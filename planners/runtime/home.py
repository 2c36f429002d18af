"""wmplan's folder for what it keeps between runs (default models, MBRL runs, the BLAS link cache): one reader of
``$WMPLAN_HOME``."""

from __future__ import annotations

import os


def wmplan_home() -> str:
    """``$WMPLAN_HOME``, else ``~/.cache/wmplan``; an empty ``WMPLAN_HOME=`` counts as unset (never the current folder)."""
    return os.environ.get("WMPLAN_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "wmplan")
