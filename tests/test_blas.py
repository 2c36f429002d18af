"""The OpenBLAS loader: active in this process, and its fallbacks and warnings in fresh interpreters."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

import planners  # noqa: F401  (before mlx.core: loads the fast BLAS)
from planners import blas

LINUX_X86 = sys.platform.startswith("linux") and platform.machine() in {"x86_64", "AMD64"}
needs_linux_x86 = pytest.mark.skipif(not LINUX_X86, reason="the OpenBLAS loader (ngsolve-openblas) is for Linux x86-64")

# Prints the status and every warning raised while importing, as JSON.
PROBE = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    {imports}
    from planners import blas
status = blas.status()
print(json.dumps({{
    "name": status.name, "path": status.path, "active": status.active, "message": status.message,
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
}}))
"""


def probe(tmp_path, imports="import planners", **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("WMPLAN_BLAS", "PYTHONWARNINGS")}
    env.update(env_changes)
    code = PROBE.format(imports=imports)
    # cwd: an empty folder, so nothing there shadows a package (a folder named "mlx", say)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@needs_linux_x86
def test_openblas_active_in_this_process():
    status = blas.status()
    assert status.active, status.message
    assert "OpenBLAS" in status.name and status.message == ""
    assert status.path and os.path.exists(status.path)
    assert blas.status() is status  # computed once


@needs_linux_x86
def test_fresh_process_gets_openblas_without_warning(tmp_path):
    out, stderr = probe(tmp_path)
    assert out["active"] and out["name"] == "OpenBLAS (ngsolve-openblas)", out
    assert out["warnings"] == [] and "Warning" not in stderr


@needs_linux_x86
def test_fresh_process_with_a_folder_named_mlx_in_cwd(tmp_path):
    """A folder named ``mlx`` in the working directory joins the ``mlx`` namespace package first."""
    (tmp_path / "mlx" / "0.0").mkdir(parents=True)
    out, _ = probe(tmp_path, WMPLAN_HOME=str(tmp_path / "home"))
    assert out["active"] and out["warnings"] == [], out


def test_blas_off_is_inactive_without_warning(tmp_path):
    out, stderr = probe(tmp_path, WMPLAN_BLAS="off")
    assert out["active"] is False and out["path"] is None and out["message"] == ""
    assert out["name"] == "reference BLAS (netlib)"
    assert out["warnings"] == [] and "Warning" not in stderr


@needs_linux_x86
def test_mlx_imported_first_is_inactive_with_clear_warning(tmp_path):
    out, _ = probe(tmp_path, imports="import mlx.core\n    import planners")
    assert out["active"] is False
    assert "mlx.core was imported before wmplan" in out["message"]
    assert out["warnings"] == [["RuntimeWarning", f"wmplan: slow reference BLAS in use: {out['message']}"]]


@needs_linux_x86
def test_missing_wmplan_blas_falls_back_to_ngsolve_openblas(tmp_path):
    out, stderr = probe(tmp_path, WMPLAN_BLAS="/nonexistent.so")
    assert out["active"] and out["name"] == "OpenBLAS (ngsolve-openblas)", out
    assert out["warnings"] == [] and "Warning" not in stderr


@needs_linux_x86
def test_wmplan_blas_path_is_used(tmp_path):
    library = blas.status().path
    out, _ = probe(tmp_path, WMPLAN_BLAS=library)
    assert out["active"] and out["path"] == library and out["name"] == f"$WMPLAN_BLAS ({library})", out


@needs_linux_x86
def test_matmul_results_and_rate():
    import mlx.core as mx
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 200)).astype(np.float32), rng.standard_normal((200, 100)).astype(np.float32)
    np.testing.assert_allclose(np.array(mx.array(a) @ mx.array(b)), a @ b, rtol=1e-4, atol=1e-4)
    assert blas.measure_matmul_gflops(size=128, repeats=2) > 0
