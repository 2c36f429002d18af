"""Memory a run will need against the memory the machine has: a one-line error instead of a crash.

Estimates are rough (within a factor of about 1.5, on the safe side, for wmplan's world model);
they exist to stop absurd sizes (``--samples 100000000``) before they allocate, not to pack
memory tight. The memory available is the host's (``MemAvailable``, or a lower cgroup limit); on
Apple silicon the GPU shares it.
"""

from __future__ import annotations

import os

__all__ = ["MemoryBudgetError", "available_bytes", "check_fits", "format_bytes"]


class MemoryBudgetError(ValueError):
    """A run whose estimated memory exceeds what the machine has available."""


def available_bytes() -> int | None:
    """Bytes this process can still allocate: ``MemAvailable`` of ``/proc/meminfo`` (capped by a
    cgroup v2 limit), else the free physical pages, else all physical memory; ``None`` if unknown."""
    known = [_meminfo_available(), _cgroup_headroom()]
    known = [k for k in known if k is not None]
    if known:
        return min(known)
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # macOS has only the total
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
    return None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """Limit less usage of this process's memory cgroup (v2, else v1 as a container sees it); ``None`` without a limit."""
    files = [("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")]
    try:
        with open("/proc/self/cgroup") as f:
            group = next((line.strip().split(":", 2)[2] for line in f if line.startswith("0::")), "/")
    except (OSError, IndexError):
        group = "/"
    for folder, (limit_name, usage_name) in zip((os.path.join("/sys/fs/cgroup", group.lstrip("/")), "/sys/fs/cgroup"), files):
        try:
            with open(os.path.join(folder, limit_name)) as f:
                limit = f.read().strip()
            with open(os.path.join(folder, usage_name)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < 1 << 60:  # v1 writes "no limit" as a huge number
            return max(0, int(limit) - usage)
    return None


def format_bytes(count: float) -> str:
    """``1.5e9 -> '1.5 GB'`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def check_fits(needed: int, what: str) -> None:
    """:class:`MemoryBudgetError` when ``needed`` bytes exceed :func:`available_bytes` (nothing when unknown).

    ``what`` names the work, e.g. ``"planning 20 environment(s) x 500 samples x horizon 15"``.
    """
    available = available_bytes()
    if available is not None and needed > available:
        raise MemoryBudgetError(
            f"{what} needs about {format_bytes(needed)} of memory, more than the {format_bytes(available)} available"
        )
