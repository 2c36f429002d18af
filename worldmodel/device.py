"""Where MLX computes: whether this build sees a GPU, and choosing the default device by name."""

from __future__ import annotations

import mlx.core as mx

DEVICES = ("cpu", "gpu")


def gpu_available() -> bool:
    """Whether this MLX build can use a GPU here (Metal on macOS, CUDA with mlx[cuda12|cuda13] on Linux)."""
    for backend in ("metal", "cuda"):
        module = getattr(mx, backend, None)
        try:
            if module is not None and module.is_available():
                return True
        except Exception:  # noqa: BLE001 - a backend that cannot even be queried is not available
            pass
    return False


def use_device(name: str | None) -> str:
    """Make ``name`` (``"cpu"``, ``"gpu"`` or ``None``: keep MLX's default) the default device; return its name.

    Raises:
        ValueError: ``"gpu"`` where this MLX build sees no GPU, or an unknown name.
    """
    if name not in (None, *DEVICES):
        raise ValueError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    if name == "gpu":
        if not gpu_available():
            raise ValueError("this MLX build sees no GPU (neither Metal nor CUDA is available); use the CPU, "
                             "or on Linux with an NVIDIA GPU install mlx[cuda12] or mlx[cuda13]")
        mx.set_default_device(mx.gpu)
    elif name == "cpu":
        mx.set_default_device(mx.cpu)
    return "gpu" if mx.default_device().type == mx.gpu else "cpu"
