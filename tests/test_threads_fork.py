"""A multi-threaded matmul in the parent must not make a forked child hang.

libgomp's thread pool does not survive fork(); csrc/common/threads.cpp drops the
child to one thread via pthread_atfork. The child runs matmul and must finish,
correctly, within a timeout.
"""
from __future__ import annotations

import multiprocessing as mp
import sys

import numpy as np
import pytest

import nnforge
from nnforge.ops import matmul


def _child(q):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((200, 300), dtype=np.float32)
    b = rng.standard_normal((300, 150), dtype=np.float32)
    c = matmul(a, b)
    err = float(np.abs(c - a.astype(np.float64) @ b).max())
    q.put((err, nnforge._core.in_forked_child(), nnforge.get_num_threads()))


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method is Linux-specific here")
def test_matmul_after_fork(threads):
    nnforge.set_num_threads(2)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256), dtype=np.float32)
    matmul(a, a)  # starts the OpenMP pool in the parent
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(timeout=30)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail("forked child hung in matmul")
    assert p.exitcode == 0
    err, forked, nthreads = q.get(timeout=5)
    assert forked and nthreads == 1
    assert err < 1e-3
    # The parent still works multi-threaded.
    c = matmul(a, a)
    np.testing.assert_allclose(c, a.astype(np.float64) @ a, rtol=0, atol=2e-3)
