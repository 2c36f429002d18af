"""The OpenBLAS loader: active in this process, in every import order, and its fallbacks and warnings in fresh interpreters."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest

from planners.runtime import blas

LINUX_X86 = sys.platform.startswith("linux") and platform.machine() in {"x86_64", "AMD64"}
needs_linux_x86 = pytest.mark.skipif(not LINUX_X86, reason="the OpenBLAS loader (ngsolve-openblas) is for Linux x86-64")
needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MLX uses Accelerate on macOS")

# Prints the status, whether ``imports`` alone activated the BLAS, every warning raised while importing,
# the BLAS thread count, and the error and best rate of an [N, N] @ [N, N] float32 matmul on one
# stream, as JSON (the last line of stdout).
PROBE = """
import json, sys, time, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
{imports}
    loaded = sys.modules.get("planners.runtime.blas")
    activated = loaded is not None and loaded._STATUS is not None
    from planners.runtime import blas
    import mlx.core as mx
    import numpy as np
status = blas.status()
n, repeats = {size}, {repeats}
rng = np.random.default_rng(0)
a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
x, y = mx.array(a), mx.array(b)
mx.eval(x, y)
want = a @ b
error = float(np.max(np.abs(np.array(x @ y) - want)) / np.max(np.abs(want)))
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    mx.eval(x @ y)
    best = min(best, time.perf_counter() - start)
print(json.dumps({{
    "activated_by_imports": activated, "name": status.name, "path": status.path, "active": status.active, "message": status.message,
    "route": status.route, "threads": blas.threads(), "error": error, "gflops": 2 * n**3 / best / 1e9,
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
}}))
"""

ORDERS = {
    "planners first": "import planners\nimport mlx.core",
    "mlx.core first": "import mlx.core\nimport planners",
    "mlx.core first, a matmul run": "import mlx.core as mx\nx = mx.ones((64, 64))\nmx.eval(x @ x)\nimport planners",
}
SIZE = 384  # the reference BLAS takes ~20 ms per product, OpenBLAS ~1 ms


def run_python(tmp_path, code, **env_changes):
    """Run ``code`` in a fresh interpreter (cwd: an empty folder, so nothing there shadows a package).

    ``$WMPLAN_BLAS``, ``$WMPLAN_BLAS_THREADS`` and ``$PYTHONWARNINGS`` are taken from ``env_changes`` only.
    Returns: ``(stdout, stderr)``; a non-zero exit fails the test.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("WMPLAN_BLAS", "WMPLAN_BLAS_THREADS", "PYTHONWARNINGS")}
    env.update(env_changes)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def probe(tmp_path, imports="import planners", size=64, repeats=1, **env_changes):
    """Import as ``imports`` says in a fresh interpreter; its :data:`PROBE` report and stderr."""
    indented = "\n".join("    " + line for line in imports.splitlines())
    stdout, stderr = run_python(tmp_path, PROBE.format(imports=indented, size=size, repeats=repeats), **env_changes)
    return json.loads(stdout.splitlines()[-1]), stderr


@pytest.fixture(scope="module")
def reference_gflops(tmp_path_factory):
    """The reference BLAS's single-stream rate at :data:`SIZE` (``WMPLAN_BLAS=off``)."""
    out, _ = probe(tmp_path_factory.mktemp("reference"), size=SIZE, repeats=3, WMPLAN_BLAS="off")
    assert out["route"] == "off" and out["active"] is False
    return out["gflops"]


@needs_linux_x86
@pytest.mark.parametrize("order", sorted(ORDERS))
def test_every_import_order_gets_openblas(tmp_path, reference_gflops, order):
    out, stderr = probe(tmp_path, ORDERS[order], size=SIZE, repeats=8)
    assert out["activated_by_imports"], out
    assert out["active"] and out["name"] == "OpenBLAS (ngsolve-openblas)", out
    assert out["route"] == blas.ROUTE_PATCHED and out["threads"] == 1
    assert out["warnings"] == [] and "Warning" not in stderr, (out["warnings"], stderr)
    assert out["error"] < 1e-5
    assert out["gflops"] >= 10 * reference_gflops, (out["gflops"], reference_gflops)


# Entry points that reach ``planners`` only through another package, after MLX has already multiplied.
MATMUL_FIRST = "import mlx.core as mx\nx = mx.ones((64, 64))\nmx.eval(x @ x)\n"
ENTRY_POINTS = {
    "worldmodel": MATMUL_FIRST + "import worldmodel",
    "benchmarks": MATMUL_FIRST + "import benchmarks.suite",
    "cli command": "import cli\n" + MATMUL_FIRST + "from click.testing import CliRunner\n"
                   "assert CliRunner().invoke(cli.main, ['--version']).exit_code == 0",
}


@needs_linux_x86
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_points_activate_openblas_without_importing_planners(tmp_path, entry):
    out, stderr = probe(tmp_path, ENTRY_POINTS[entry])
    assert out["activated_by_imports"], out
    assert out["active"] and out["route"] == blas.ROUTE_PATCHED and out["threads"] == 1, out
    assert out["warnings"] == [] and "Warning" not in stderr, (out["warnings"], stderr)
    assert out["error"] < 1e-5


@needs_linux_x86
def test_openblas_active_in_this_process():
    status = blas.status()
    assert status.active, status.message
    assert "OpenBLAS" in status.name and status.message == ""
    assert status.path and os.path.exists(status.path)
    assert blas.status() is status  # computed once


@needs_linux_x86
def test_fresh_process_with_a_folder_named_mlx_in_cwd(tmp_path):
    """A folder named ``mlx`` in the working directory joins the ``mlx`` namespace package first."""
    (tmp_path / "mlx" / "0.0").mkdir(parents=True)
    out, _ = probe(tmp_path, WMPLAN_HOME=str(tmp_path / "home"))
    assert out["active"] and out["warnings"] == [], out


@needs_linux
def test_blas_off_is_inactive_without_warning(tmp_path):
    out, stderr = probe(tmp_path, WMPLAN_BLAS="off", WMPLAN_BLAS_THREADS="many")
    assert out["active"] is False and out["path"] is None and out["message"] == ""
    assert out["name"] == "reference BLAS (netlib)" and out["route"] == "off" and out["threads"] is None
    assert out["warnings"] == [] and "Warning" not in stderr


@needs_linux_x86
def test_missing_wmplan_blas_warns_and_falls_back_to_ngsolve_openblas(tmp_path):
    out, stderr = probe(tmp_path, WMPLAN_BLAS="/nonexistent.so")
    assert out["active"] and out["name"] == "OpenBLAS (ngsolve-openblas)", out
    assert out["warnings"] == [["RuntimeWarning", "wmplan: WMPLAN_BLAS=/nonexistent.so not used: no such file; "
                                                  "using OpenBLAS (ngsolve-openblas) instead"]]


@needs_linux_x86
def test_wmplan_blas_path_is_used(tmp_path):
    library = blas.status().path
    out, _ = probe(tmp_path, WMPLAN_BLAS=library)
    assert out["active"] and out["path"] == library and out["name"] == f"$WMPLAN_BLAS ({library})", out
    assert out["warnings"] == []


@needs_linux_x86
@pytest.mark.parametrize("value, expected, warning", [
    ("100000", "cores", "WMPLAN_BLAS_THREADS=100000 is outside [1, {cores}] (usable CPU cores); using {cores}"),
    ("0", 1, "WMPLAN_BLAS_THREADS=0 is outside [1, {cores}] (usable CPU cores); using 1"),
    ("two", 1, "WMPLAN_BLAS_THREADS='two' is not an integer; using 1 thread"),
    (" 1 ", 1, None),
])
def test_blas_threads_is_bounded_and_warned_about(tmp_path, value, expected, warning):
    cores = len(os.sched_getaffinity(0))
    out, stderr = probe(tmp_path, WMPLAN_BLAS_THREADS=value)
    assert out["active"] and out["threads"] == (cores if expected == "cores" else expected), out
    want = [] if warning is None else [["RuntimeWarning", "wmplan: " + warning.format(cores=cores)]]
    assert out["warnings"] == want


@needs_linux_x86
def test_each_warning_is_printed_once(tmp_path):
    code = "import mlx.core\nimport planners\nimport worldmodel\nplanners.runtime.activate()\nplanners.runtime.blas.status()"
    _, stderr = run_python(tmp_path, code, WMPLAN_BLAS="/nonexistent.so", WMPLAN_BLAS_THREADS="two")
    assert stderr.count("RuntimeWarning") == 2, stderr
    assert stderr.count("WMPLAN_BLAS=/nonexistent.so not used") == 1
    assert stderr.count("WMPLAN_BLAS_THREADS='two' is not an integer") == 1


# Installs with the MLX check replaced: it records the slot values it sees, then fails.
FAILED_CHECK = """
import json, os, warnings
os.environ["WMPLAN_BLAS"] = "off"
from planners.runtime import blas, elf_slots
import mlx.core as mx
import numpy as np
del os.environ["WMPLAN_BLAS"]
slots = elf_slots.slots_under(os.path.dirname(os.path.realpath(mx.__file__)), blas.SYMBOLS)
before = [elf_slots.read_pointer(s.address) for s in slots]
seen = []
def failing_check(mx):
    seen.extend(elf_slots.read_pointer(s.address) for s in slots)
    raise ArithmeticError("forced failure")
blas._check_mlx_matmul = failing_check
blas._STATUS = None
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    status = blas.activate()
after = [elf_slots.read_pointer(s.address) for s in slots]
a = np.arange(12, dtype=np.float32).reshape(3, 4)
print(json.dumps({
    "active": status.active, "route": status.route, "message": status.message, "threads": blas.threads(),
    "warnings": [str(w.message) for w in caught], "before": before, "seen": seen, "after": after,
    "targets": [elf_slots.symbol_at(v) for v in after],
    "product_ok": bool(np.array_equal(np.array(mx.array(a) @ mx.array(a.T)), a @ a.T)),
}))
"""


@needs_linux_x86
def test_a_failed_mlx_check_restores_the_slots(tmp_path):
    stdout, _ = run_python(tmp_path, FAILED_CHECK)
    out = json.loads(stdout)
    assert out["before"] and out["seen"] and all(s != b for s, b in zip(out["seen"], out["before"]))  # patched while checked
    assert out["after"] == out["before"]
    assert all(symbol == "cblas_sgemm" and "libblas" in os.path.basename(file) for file, symbol in out["targets"])
    assert out["active"] is False and out["route"] == "off" and out["threads"] is None
    assert "forced failure" in out["message"] and len(out["warnings"]) == 1
    assert out["warnings"][0].startswith("wmplan: slow reference BLAS in use: ")
    assert out["product_ok"]


# A CBLAS whose sgemm ignores beta and the transpose flags: right on the direct check (beta = 0, no
# transposes), wrong on MLX's products of transposed operands and on its addmm.
SLOPPY_SGEMM_C = """
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int t = 0; t < k; t++) s += a[i * lda + t] * b[t * ldb + j];
            c[i * ldc + j] = alpha * s;
        }
}
"""


@needs_linux_x86
@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build a test library")
def test_a_wrong_blas_is_caught_by_the_mlx_check(tmp_path):
    (tmp_path / "sloppy.c").write_text(SLOPPY_SGEMM_C)
    library = str(tmp_path / "libsloppy.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", library, str(tmp_path / "sloppy.c")], check=True)
    out, stderr = probe(tmp_path, "import mlx.core\nimport planners", size=SIZE, WMPLAN_BLAS=library)
    assert out["active"] and out["name"] == "OpenBLAS (ngsolve-openblas)" and out["error"] < 1e-5, out
    [(category, message)] = out["warnings"]
    assert category == "RuntimeWarning" and message.startswith(
        f"wmplan: WMPLAN_BLAS={library} not used: MLX matmul check failed after redirecting cblas_sgemm: ")
    assert message.endswith(" differs; using OpenBLAS (ngsolve-openblas) instead")


def test_version_names_the_route():
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    status = blas.status()
    line = next(line for line in result.output.splitlines() if line.startswith("BLAS: "))
    assert line.startswith(f"BLAS: {status.name}") and f", route: {status.route}" in line, line


@needs_linux_x86
def test_matmul_results_and_rate():
    import mlx.core as mx
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 200)).astype(np.float32), rng.standard_normal((200, 100)).astype(np.float32)
    np.testing.assert_allclose(np.array(mx.array(a) @ mx.array(b)), a @ b, rtol=1e-4, atol=1e-4)
    assert blas.measure_matmul_gflops(size=128, repeats=2) > 0


@needs_linux_x86
@pytest.mark.parametrize("coretype", ["Haswell", "Zen"])
def test_kernels_follow_openblas_coretype(tmp_path, coretype):
    """OpenBLAS's kernel family is reported, and ``$OPENBLAS_CORETYPE`` (a machine's choice) is kept."""
    code = "import planners; print(planners.runtime.blas.status().kernels)"
    stdout, _ = run_python(tmp_path, code, OPENBLAS_CORETYPE=coretype)
    assert stdout.strip() == coretype
