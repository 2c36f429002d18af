"""How to get an optional extra: installed from the repository, as the README says (wmplan is not on the package index)."""

from __future__ import annotations


def install(extra: str) -> str:
    """The command that installs ``extra`` (``"gym"``, ``"plot"``, ``"peers"``), to end a message with."""
    return f"pip install '.[{extra}]' in the wmplan repository"
