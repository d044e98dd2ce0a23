"""Dispatch, threads, show_config and CUDA status on a machine without a GPU."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import nnforge


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_available_isas_start_with_generic_and_include_active():
    isas = nnforge.available_isas()
    assert isas[0] == "generic"
    assert nnforge.get_isa() in isas
    assert set(isas) <= {"generic", "avx2", "avx512"}


@pytest.mark.parametrize("name", nnforge.available_isas())
def test_env_var_forces_each_available_isa(name):
    proc = run_python("import nnforge; print(nnforge.get_isa())", NNFORGE_ISA=name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == name


def test_env_var_unknown_isa_fails_import_clearly():
    proc = run_python("import nnforge", NNFORGE_ISA="sse9")
    assert proc.returncode != 0
    assert "unknown ISA 'sse9'" in proc.stderr


def test_set_isa_refuses_unknown_and_keeps_previous():
    before = nnforge.get_isa()
    with pytest.raises(ValueError, match="unknown ISA"):
        nnforge.set_isa("neon")
    assert nnforge.get_isa() == before


def test_use_isa_restores_previous_path(isa):
    with nnforge.use_isa("generic"):
        assert nnforge.get_isa() == "generic"
    assert nnforge.get_isa() == isa


def test_set_num_threads_validates_and_round_trips(threads):
    nnforge.set_num_threads(1)
    assert nnforge.get_num_threads() == 1
    with pytest.raises(ValueError, match=">= 1"):
        nnforge.set_num_threads(0)
    with pytest.raises(TypeError):
        nnforge.set_num_threads(1.5)
    assert nnforge.get_num_threads() == 1


def test_default_threads_honour_omp_num_threads():
    proc = run_python("import nnforge; print(nnforge.get_num_threads())", OMP_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_default_threads_bounded_by_affinity():
    affinity = len(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", "import nnforge; print(nnforge.get_num_threads())"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 1 <= int(proc.stdout) <= affinity


def test_show_config_reports_every_fact(capsys):
    info = nnforge.show_config()
    printed = capsys.readouterr().out
    for key in ("isa", "isas_available", "num_threads", "openmp", "build_type", "cuda",
                "cpu_features", "disabled_features", "dispatch", "gemm_variant"):
        assert key in info
        assert key in printed
    assert info["isa"] == nnforge.get_isa()
    # The runtime the module really resolved (a library file name), not a fixed string.
    assert re.match(r"lib\S*omp\S*\.so\S* \(OpenMP \d+\)$", info["openmp"]), info["openmp"]
    for name, present in info["cpu_features"].items():
        assert f"{name}={'yes' if present else 'no'}" in printed
    for row in info["dispatch"]:  # one line per family/op: active slot, then the registered ones
        line = f"{row['family']}.{row['op']}"
        assert re.search(rf"{re.escape(line)}\s+{row['active']}\s+\[{' '.join(row['registered'])}\]",
                         printed), line
    assert re.search(r"gemm\.sgemm .* variant \w+", printed)


def test_cuda_is_available_is_false_without_a_gpu_and_never_raises():
    has_gpu = os.path.exists("/dev/nvidia0")
    assert nnforge.cuda.is_available() is has_gpu
    assert isinstance(nnforge.cuda.status(), str)
    if not has_gpu:
        assert nnforge.cuda.device_count() == 0


def test_import_does_not_load_the_cuda_module():
    proc = run_python("import sys, nnforge; print('nnforge._cuda' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_cpu_module_does_not_link_cuda_runtime():
    import nnforge._core as core

    with open(core.__file__, "rb") as f:
        blob = f.read()
    assert b"libcudart" not in blob
    assert b"libcuda.so" not in blob


@pytest.mark.skipif(not nnforge.cuda.is_available(), reason="no CUDA device")
def test_cuda_smoke_kernel_adds_vectors(rng):
    import numpy as np
    from nnforge import _cuda

    a = rng.standard_normal(100_003).astype(np.float32)
    b = rng.standard_normal(100_003).astype(np.float32)
    np.testing.assert_array_equal(_cuda.smoke_add(a, b), a + b)
