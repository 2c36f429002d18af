"""Give MLX's Linux CPU build a fast BLAS, whatever the import order.

The Linux ``mlx[cpu]`` wheel links the netlib *reference* BLAS: single-threaded, about 6 GFLOP/s
for float32 matmuls. ``libmlx.so`` calls ``cblas_sgemm`` through a GOT slot that the dynamic linker
fills when ``mlx.core`` is imported. :func:`activate` loads an optimised CBLAS (``RTLD_LOCAL``: its
symbols are not offered to anything else), checks it, imports ``mlx.core`` itself (if nobody has
yet) and writes the CBLAS's ``cblas_sgemm`` into MLX's slot (:mod:`planners.runtime.elf_slots`), then checks
a few products through MLX; if they are wrong, the old slot values are written back. One route for
every order: ``mlx.core`` imported before or after ``planners``, matmuls already run or not.

Sources, tried in order (the first that loads and passes the checks wins):

1. ``$WMPLAN_BLAS`` — a path to any CBLAS shared library (``WMPLAN_BLAS=off`` disables all this);
   a path that fails is named in a warning.
2. ``ngsolve-openblas`` (a Linux x86-64 dependency of wmplan): OpenBLAS with the standard symbol
   names and an ``$ORIGIN`` run path. It needs ``libgfortran.so.5``; where the system has none, the
   copy that the ``mlx[cpu]`` wheel itself bundles is linked beside it in a small cache folder.
3. The system's OpenBLAS (Debian: ``apt install libopenblas0``).

Only float32 matrix products change (``cblas_sgemm`` is the one CBLAS function of MLX's float32
path); float64/complex products and LAPACK routines keep MLX's own libraries. On macOS MLX uses
Accelerate and nothing is done. Failures never raise: they warn once and MLX keeps its reference BLAS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import importlib.util
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import elf_slots
from .home import wmplan_home
from .streams import default_count, on_streams, shards

__all__ = ["BlasStatus", "activate", "status", "measure_matmul_gflops", "set_threads", "threads"]

ROUTE_PATCHED = "patched libmlx GOT slot"
ROUTE_ACCELERATE = "macOS Accelerate"
ROUTE_OFF = "off"
SYMBOLS = ("cblas_sgemm",)
"""The CBLAS functions redirected in MLX's libraries: those of MLX's float32 matmul path."""


@dataclass(frozen=True)
class BlasStatus:
    """What BLAS MLX's float32 matmuls run on.

    Attributes:
        name: short description, e.g. ``"OpenBLAS (ngsolve-openblas)"``.
        path: the shared library that was loaded, or ``None``.
        active: ``True`` when an optimised BLAS serves MLX's matmuls (or on macOS).
        message: why it is not active, when it is not.
        route: how it got there: ``"patched libmlx GOT slot"``, ``"macOS Accelerate"`` or ``"off"``.
        kernels: the CPU kernels OpenBLAS chose (``openblas_get_corename``, e.g. ``"Cooperlake"``), or
            ``""`` when the library does not say. ``$OPENBLAS_CORETYPE`` overrides OpenBLAS's own
            choice, and wmplan leaves it so (a machine may set it for an older OpenBLAS's sake).
    """

    name: str
    path: str | None
    active: bool
    message: str = ""
    route: str = ROUTE_OFF
    kernels: str = ""


_STATUS: BlasStatus | None = None
_HANDLES: list[ctypes.CDLL] = []  # the library MLX now calls into: kept referenced for good


def status() -> BlasStatus:
    """The result of :func:`activate` (calling it if it has not run yet)."""
    return _STATUS if _STATUS is not None else activate()


def activate() -> BlasStatus:
    """Give MLX's float32 matmuls an optimised CBLAS, once. Never raises; each problem warns once."""
    global _STATUS
    if _STATUS is not None:
        return _STATUS
    notes: list[str] = []
    _STATUS = _activate(notes)
    if not _STATUS.active and _STATUS.message and sys.platform.startswith("linux"):
        notes.append(f"slow reference BLAS in use: {_STATUS.message}")
    for note in notes:
        warnings.warn(f"wmplan: {note}", RuntimeWarning, stacklevel=3)
    return _STATUS


def _activate(notes: list[str]) -> BlasStatus:
    """Try the sources in order; ``notes`` receives warnings about the user's settings."""
    if sys.platform == "darwin":
        return BlasStatus("Accelerate (MLX's own)", None, True, route=ROUTE_ACCELERATE)
    if not sys.platform.startswith("linux"):
        return BlasStatus("MLX's own", None, False, f"no BLAS loader for platform {sys.platform!r}")
    choice = os.environ.get("WMPLAN_BLAS", "").strip()
    if choice.lower() in {"off", "0", "none", "reference"}:
        return BlasStatus("reference BLAS (netlib)", None, False, "")
    try:
        import mlx.core as mx
    except ImportError as err:
        return BlasStatus("reference BLAS (netlib)", None, False, f"mlx.core cannot be imported: {err}")
    return _first_working(choice, mx, _default_threads(notes), notes)


def _first_working(choice: str, mx, count: int, notes: list[str]) -> BlasStatus:
    """Load, check and install the first candidate that works, with ``count`` threads."""
    errors = []
    for name, finder in _candidates(choice):
        try:
            path = finder()
            if path is None:
                continue
            lib = _load(path, count)
            _install(lib, mx)
        except (OSError, AttributeError, ArithmeticError, RuntimeError, ValueError, elf_slots.ElfError) as err:
            errors.append((name, err))
            continue
        if choice and errors:  # the first candidate, $WMPLAN_BLAS, failed
            notes.append(f"WMPLAN_BLAS={choice} not used: {errors[0][1]}; using {name} instead")
        return BlasStatus(name, path, True, route=ROUTE_PATCHED, kernels=_kernels(lib))
    detail = ("; ".join(f"{name}: {err}" for name, err in errors) if errors
              else "no optimised BLAS found (pip install ngsolve-openblas, or apt install libopenblas0)")
    return BlasStatus("reference BLAS (netlib)", None, False, detail)


def _load(path: str, count: int) -> ctypes.CDLL:
    """Open the CBLAS at ``path`` privately, set its thread count and check ``cblas_sgemm`` directly."""
    lib = ctypes.CDLL(path, mode=os.RTLD_LOCAL)
    setter = getattr(lib, "openblas_set_num_threads", None)
    if setter is not None:
        setter(int(count))
    _check_sgemm(lib)
    return lib


def _kernels(lib: ctypes.CDLL) -> str:
    """OpenBLAS's kernel family (``"Haswell"``, ``"SkylakeX"``, ...), or ``""`` for another CBLAS."""
    corename = getattr(lib, "openblas_get_corename", None)
    if corename is None:
        return ""
    corename.restype = ctypes.c_char_p
    return (corename() or b"").decode("ascii", "replace").strip()


def _install(lib: ctypes.CDLL, mx) -> None:
    """Point MLX's ``cblas_sgemm`` slots at ``lib``'s and check products through MLX; undo on failure.

    Raises:
        ElfError, OSError: the slots cannot be found or written (nothing changed).
        ArithmeticError: MLX's products were wrong with ``lib`` (the old slot values are back).
    """
    address = ctypes.cast(lib.cblas_sgemm, ctypes.c_void_p).value
    slots = elf_slots.slots_under(os.path.dirname(os.path.realpath(mx.__file__)), SYMBOLS)
    if not slots:
        raise elf_slots.ElfError("MLX's libraries import no cblas_sgemm")
    patches = elf_slots.patch(slots, address)
    try:
        _check_mlx_matmul(mx)
    except BaseException:
        elf_slots.restore(patches)
        raise
    _HANDLES.append(lib)


def _check_mlx_matmul(mx) -> None:
    """Compare MLX CPU products (plain, transposed operands, ``addmm``) with exact integers.

    Raises:
        ArithmeticError: an entry differs.
    """
    m, k, n = 13, 9, 7
    a = [[float((3 * i + 5 * t) % 7 - 3) for t in range(k)] for i in range(m)]
    b = [[float((2 * t + i) % 5 - 2) for i in range(n)] for t in range(k)]
    c = [[float((i + j) % 3 - 1) for j in range(n)] for i in range(m)]
    want = [[sum(a[i][t] * b[t][j] for t in range(k)) for j in range(n)] for i in range(m)]
    x, y, z = mx.array(a), mx.array(b), mx.array(c)
    cpu = mx.cpu
    results = {
        "a @ b": mx.matmul(x, y, stream=cpu),
        "(a.T).T @ (b.T).T": mx.matmul(mx.array(x.T.tolist()).T, mx.array(y.T.tolist()).T, stream=cpu),
        "addmm(c, a, b) - c": mx.subtract(mx.addmm(z, x, y, stream=cpu), z, stream=cpu),
    }
    for label, result in results.items():
        got = result.tolist()
        if got != want:
            raise ArithmeticError(f"MLX matmul check failed after redirecting cblas_sgemm: {label} differs")


def _default_threads(notes: list[str] | None = None) -> int:
    """``$WMPLAN_BLAS_THREADS`` within [1, usable cores], else 1; a bad value adds a note and is not used.

    One thread is the default because OpenBLAS's worker threads spin while they wait: with every
    core busy (a test run beside a build, two ranks on two cores) training ran 30-60x slower with two
    threads than with one, while the gain of two threads on a quiet machine is at most 2x on large
    products and nothing on the 128-row batches of training.
    """
    notes = [] if notes is None else notes
    raw = os.environ.get("WMPLAN_BLAS_THREADS", "").strip()
    if not raw:
        return 1
    try:
        wanted = int(raw)
    except ValueError:
        notes.append(f"WMPLAN_BLAS_THREADS={raw!r} is not an integer; using 1 thread")
        return 1
    cores = _usable_cores()
    count = min(max(wanted, 1), cores)
    if count != wanted:
        notes.append(f"WMPLAN_BLAS_THREADS={wanted} is outside [1, {cores}] (usable CPU cores); using {count}")
    return count


def _usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_threads(count: int) -> bool:
    """Set the loaded OpenBLAS's thread count; ``False`` when no OpenBLAS is loaded."""
    for lib in _HANDLES:
        setter = getattr(lib, "openblas_set_num_threads", None)
        if setter is not None:
            setter(int(count))
            return True
    return False


def threads() -> int | None:
    """The loaded OpenBLAS's thread count, or ``None``."""
    for lib in _HANDLES:
        getter = getattr(lib, "openblas_get_num_threads", None)
        if getter is not None:
            getter.restype = ctypes.c_int
            return int(getter())
    return None


def _candidates(choice: str):
    if choice:
        yield f"$WMPLAN_BLAS ({choice})", lambda: _existing(choice)
    if platform.machine() in {"x86_64", "AMD64"}:
        yield "OpenBLAS (ngsolve-openblas)", _ngsolve_openblas
    yield "OpenBLAS (system)", lambda: ctypes.util.find_library("openblas")


def _existing(path: str) -> str:
    if not os.path.exists(path):
        raise OSError("no such file")
    return path


def _ngsolve_openblas() -> str | None:
    spec = importlib.util.find_spec("ngsolve_openblas")  # the locations only: its __init__ prints on failure
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "libopenblas*.so*")))
    if not libs:
        raise OSError("ngsolve-openblas is installed but holds no libopenblas*.so")
    library = libs[0]
    if ctypes.util.find_library("gfortran"):
        return library
    return _link_beside_bundled_gfortran(library)


def _link_beside_bundled_gfortran(library: str) -> str:
    """A folder with ``library`` and ``libgfortran.so.5`` (MLX's bundled copy) side by side.

    The library's run path is ``$ORIGIN``, resolved from the folder it is opened from, so a folder of
    symbolic links lets the dynamic linker find the Fortran runtime and its own dependencies.
    """
    mlx_spec = importlib.util.find_spec("mlx")
    if mlx_spec is None or not mlx_spec.submodule_search_locations:
        raise OSError("libgfortran.so.5 is missing and mlx is not installed")
    # mlx is a namespace package: a folder named "mlx" in the working directory can come first.
    sites = dict.fromkeys(Path(p).parent for p in mlx_spec.submodule_search_locations)
    bundled = sorted(p for site in sites for p in glob.glob(str(site / "mlx*.libs" / "*.so*")))
    gfortran = [p for p in bundled if os.path.basename(p).startswith("libgfortran")]
    if not gfortran:
        raise OSError("libgfortran.so.5 is missing (install libgfortran5, or use the mlx[cpu] wheel)")
    links = {"libopenblas.so.0": library, "libgfortran.so.5": gfortran[0]}
    links.update({os.path.basename(p): p for p in bundled})
    key = hashlib.sha1(repr(sorted(links.items())).encode()).hexdigest()[:12]
    for root in (_cache_root(), Path(tempfile.gettempdir()) / f"wmplan-{os.getuid()}"):
        folder = root / f"blas-{key}"
        if (folder / "libopenblas.so.0").exists():
            return str(folder / "libopenblas.so.0")
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="blas-", dir=root))
            for name, target in links.items():
                os.symlink(target, staging / name)
            try:
                os.rename(staging, folder)
            except OSError:  # another process made it first
                if not (folder / "libopenblas.so.0").exists():
                    raise
            return str(folder / "libopenblas.so.0")
        except OSError:
            continue
    raise OSError("could not create a folder for the BLAS links")


def _cache_root() -> Path:
    return Path(wmplan_home())


def _check_sgemm(lib: ctypes.CDLL) -> None:
    """Multiply two small matrices through ``cblas_sgemm`` and compare with exact integers."""
    sgemm = lib.cblas_sgemm
    m, k, n = 3, 4, 2
    a = (ctypes.c_float * (m * k))(*[float(i % 5 - 2) for i in range(m * k)])
    b = (ctypes.c_float * (k * n))(*[float(i % 3 - 1) for i in range(k * n)])
    c = (ctypes.c_float * (m * n))()
    row_major, no_trans = 101, 111
    sgemm.restype = None
    sgemm(row_major, no_trans, no_trans, m, n, k, ctypes.c_float(1.0), a, k, b, n, ctypes.c_float(0.0), c, n)
    for i in range(m):
        for j in range(n):
            want = sum(a[i * k + t] * b[t * n + j] for t in range(k))
            if c[i * n + j] != want:
                raise ArithmeticError(f"cblas_sgemm check failed: C[{i},{j}] = {c[i * n + j]}, expected {want}")


def measure_matmul_gflops(size: int = 1024, repeats: int = 5, streams: int | None = None) -> float:
    """Best-of-``repeats`` float32 ``[size, size] @ [size, size]`` rate in GFLOP/s on MLX's default device.

    On the CPU the rows are split over ``streams`` CPU streams computed side by side (default: as
    many as a rollout uses, :func:`planners.runtime.streams.default_count`), so the figure is the machine's
    peak as wmplan's planners can reach it, not one thread's.
    """
    import mlx.core as mx

    a = mx.random.normal((size, size), key=mx.random.key(0))
    b = mx.random.normal((size, size), key=mx.random.key(1))
    mx.eval(a, b)
    count = default_count() if streams is None else streams
    ranges = shards(size, count, minimum=1)

    def product():
        if len(ranges) == 1:
            return [a @ b]
        return on_streams(ranges, lambda start, stop: a[start:stop] @ b)

    mx.eval(product())  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(product())
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9
