"""common/worker_pool.h (claimed chunks, the caller never waits for a thread that has not
started) and GEMM on it: every chunk exactly once, errors carried out, the pool healthy
afterwards, busy / forked callers, and results bitwise equal to the OpenMP path and to
one thread."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import nnforge
from nnforge import _core, ops


@pytest.fixture
def gemm_threading():
    previous = _core.get_gemm_threading()
    yield _core.set_gemm_threading
    _core.set_gemm_threading(previous)


@pytest.mark.parametrize("nchunks", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("threads", [1, 2, 4, 8])
def test_every_chunk_runs_exactly_once(nchunks, threads):
    counts, failures, _ = _core._worker_pool_probe(nchunks, threads, calls=300)
    assert counts == [300] * nchunks and failures == 0


@pytest.mark.parametrize("threads", [2, 3])
def test_workers_that_wake_mid_call_still_claim_each_chunk_once(threads):
    # Every third chunk sleeps, so workers sleep, wake and claim at every point of a call.
    counts, failures, _ = _core._worker_pool_probe(9, threads, calls=200, sleep_us=30)
    assert counts == [200] * 9 and failures == 0


@pytest.mark.parametrize("threads", [2, 4])
def test_a_call_from_inside_a_chunk_runs_serially(threads):
    counts, failures, inner = _core._worker_pool_probe(4, threads, calls=200, nested=True)
    assert counts == [200] * 4 and failures == 0 and inner == 3 * 200


def test_a_failing_chunk_is_rethrown_and_the_pool_stays_healthy():
    counts, failures, _ = _core._worker_pool_probe(6, 2, calls=100, fail_every=3, sleep_us=5)
    assert failures == 100  # chunk 2 throws in every call, and every call reports it
    assert all(0 < c <= 100 for c in counts)
    assert _core._worker_pool_probe(6, 2, calls=100) == ([100] * 6, 0, 0)


def test_serial_run_keeps_the_contract():
    assert _core._worker_pool_probe(5, 1, calls=3, fail_every=2) == ([3, 3, 0, 0, 0], 3, 0)
    assert _core._worker_pool_probe(0, 2, calls=3) == ([], 0, 0)


def test_threading_names(gemm_threading):
    assert _core.get_gemm_threading() in ("pool", "omp")
    with pytest.raises(ValueError, match="'pool' or 'omp', got 'fast'"):
        gemm_threading("fast")
    assert nnforge._config.config()["gemm_threading"] == _core.get_gemm_threading()


# (m, k, n, a transposed, b transposed): direct mode (4 slabs a thread), packed mode,
# row and column splits, tile remainders, transposed views.
SHAPES = [(128, 784, 256, False, False), (784, 128, 256, True, False), (128, 256, 784, False, True),
          (97, 61, 1021, False, False), (515, 300, 67, True, True), (700, 700, 700, False, False),
          (3, 1000, 5, False, False)]


@pytest.mark.parametrize("m, k, n, ta, tb", SHAPES)
def test_gemm_pool_is_bitwise_the_omp_path_and_one_thread(m, k, n, ta, tb, gemm_threading, rng):
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    a, b = (a.T if ta else a), (b.T if tb else b)
    bias = rng.standard_normal(n, dtype=np.float32)
    threads = nnforge.get_num_threads()
    results = {}
    try:
        for mode, nt in (("pool", 2), ("omp", 2), ("pool", 3), ("pool", 1)):
            gemm_threading(mode)
            nnforge.set_num_threads(nt)
            results[mode, nt] = ops.matmul(a, b, bias=bias, activation="relu")
    finally:
        nnforge.set_num_threads(threads)
    ref = results["pool", 1]
    for key, out in results.items():
        assert np.array_equal(out, ref), key
    exact = np.maximum(a.astype(np.float64) @ b.astype(np.float64) + bias, 0)
    tol = 4 * np.finfo(np.float32).eps * k * (np.abs(a).astype(np.float64) @ np.abs(b) + np.abs(bias))
    assert np.all(np.abs(ref - exact) <= tol + 1e-30)


def test_gemm_from_many_python_threads_while_the_pool_is_busy(rng):
    # Calls that find the pool busy run on their own thread; all results stay exact.
    a = rng.standard_normal((300, 400), dtype=np.float32)
    b = rng.standard_normal((400, 500), dtype=np.float32)
    ref = ops.matmul(a, b)
    bad = []

    def worker():
        for _ in range(20):
            if not np.array_equal(ops.matmul(a, b), ref):
                bad.append(1)
    ts = [threading.Thread(target=worker) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_starts_its_own_pool():
    code = ("import numpy as np, os, nnforge; from nnforge import ops\n"
            "a = np.random.default_rng(1).standard_normal((400, 400), dtype=np.float32)\n"
            "ref = ops.matmul(a, a)\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    nnforge.set_num_threads(2)\n"
            "    os._exit(0 if np.array_equal(ops.matmul(a, a), ref) else 3)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "print(os.waitstatus_to_exitcode(status))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"
