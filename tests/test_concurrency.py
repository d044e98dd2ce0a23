"""Many Python threads calling the kernels at once (each binding releases the GIL, so their
OpenMP regions and per-thread scratch buffers run side by side): every result must equal,
bitwise, the one computed with no other thread running."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import nnforge
from nnforge import ops

N_THREADS, REPEATS = 8, 4


def _f32(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# Each family: inputs(rng) -> run(inputs) -> tuple of fresh arrays. Sizes are large enough
# for the kernels to use their OpenMP threads, odd so edge tiles are exercised.
def _gemm(rng):
    a, b, bias = _f32(rng, 97, 83), _f32(rng, 71, 83).T, _f32(rng, 71)
    batch = _f32(rng, 3, 41, 83)
    return lambda: (ops.matmul(a, b), ops.matmul(a, b, bias=bias, activation="gelu"), ops.matmul(batch, b))


def _conv(rng):
    x, w, b = _f32(rng, 2, 7, 19, 17), _f32(rng, 11, 7, 3, 3), _f32(rng, 11)

    def run():
        y = ops.conv2d(x, w, b, stride=1, padding=1)
        return (y, *ops.conv2d_backward(y, x, w, stride=1, padding=1),
                ops.conv2d(x, w[:7, :1], None, stride=2, padding=1, groups=7))
    return run


def _pool(rng):
    x = _f32(rng, 3, 5, 23, 21)

    def run():
        y, idx = ops.max_pool2d(x, 3, 2, 1, return_indices=True)
        a = ops.avg_pool2d(x, 2)
        return (y, idx, ops.max_pool2d_backward(y, idx, x.shape), a, ops.avg_pool2d_backward(a, x.shape, 2),
                ops.global_avg_pool2d(x))
    return run


def _rows(rng):
    x, dy, g, b = _f32(rng, 203, 67), _f32(rng, 203, 67), _f32(rng, 67), _f32(rng, 67)
    labels = rng.integers(0, 67, size=203)

    def run():
        s = ops.softmax(x)
        y, mean, rstd = ops.layer_norm(x, g, b)
        rm, rv = np.zeros(67, np.float32), np.ones(67, np.float32)
        bn = ops.batch_norm(x, g, b, rm, rv, training=True)
        loss, dlogits = ops.cross_entropy(x, labels, label_smoothing=0.1, return_grad=True)
        return (s, ops.softmax_backward(s, dy), ops.log_softmax(x), y, *ops.layer_norm_backward(dy, x, g, mean, rstd),
                *bn, rm, rv, *ops.batch_norm_backward(dy, x, g, bn[1], bn[2]), np.float64(loss), dlogits,
                ops.gelu(x), ops.sum_rows(x), *ops.dropout(x, 0.3, 1234))
    return run


def _optim(rng):
    shapes = [(37, 11), (101,), (5, 3, 7)]
    params0 = [_f32(rng, *s) for s in shapes]
    grads = [[_f32(rng, *s) for s in shapes] for _ in range(3)]

    def run():
        p_adam = [p.copy() for p in params0]
        m, v = [np.zeros_like(p) for p in p_adam], [np.zeros_like(p) for p in p_adam]
        p_sgd = [p.copy() for p in params0]
        mom = [np.zeros_like(p) for p in p_sgd]
        norms = []
        for t, gs in enumerate(grads, 1):
            g1, g2 = [g.copy() for g in gs], [g.copy() for g in gs]
            norms.append(np.float64(ops.grad_norm(g1)))
            ops.adamw_step(p_adam, g1, m, v, step=t, lr=1e-2, weight_decay=0.1)
            ops.sgd_step(p_sgd, g2, mom, lr=0.1, momentum=0.9, step=t)
        return (*p_adam, *m, *v, *p_sgd, *mom, np.array(norms))
    return run


def _attention(rng):
    q, k, v = _f32(rng, 2, 3, 37, 24), _f32(rng, 2, 3, 45, 24), _f32(rng, 2, 3, 45, 24)
    dout = _f32(rng, 2, 3, 37, 24)

    def run():
        out, lse = ops.attention(q, k, v, causal=True, return_lse=True)
        return (out, lse, *ops.attention_backward(dout, q, k, v, out, lse, causal=True),
                ops.attention(q, k, v, dropout_p=0.2, seed=7))
    return run


def _rnn(rng):
    T, B, I, H = 9, 5, 7, 17
    x, h0, c0 = _f32(rng, T, B, I), _f32(rng, B, H), _f32(rng, B, H)
    w_ih, w_hh, b, dy = _f32(rng, 4 * H, I), _f32(rng, 4 * H, H), _f32(rng, 4 * H), _f32(rng, T, B, H)
    lengths = np.array([9, 2, 5, 9, 1])

    def run():
        y, h, c, ws = ops.lstm(x, h0, c0, w_ih, w_hh, b, b, lengths=lengths, reverse=True)
        grads = ops.lstm_backward(dy, h, c, x, h0, c0, w_ih, w_hh, ws, b, b, lengths=lengths, reverse=True)
        gy, gh, gws = ops.gru(x, h0, w_ih[:3 * H], w_hh[:3 * H], b[:3 * H], b[:3 * H])
        return (y, h, c, *grads, gy, gh, *ops.gru_backward(dy, None, x, h0, w_ih[:3 * H], w_hh[:3 * H], gws))
    return run


FAMILIES = {"gemm": _gemm, "conv": _conv, "pool": _pool, "rows": _rows, "optim": _optim, "attention": _attention,
            "rnn": _rnn}


def _job(seed, worker, rep, family):
    """The (worker, rep, family) call's inputs, the same in every run of the test."""
    return FAMILIES[family](np.random.default_rng([seed, worker, rep, list(FAMILIES).index(family)]))


def _bits(results):
    return [(np.asarray(r).dtype.str, np.asarray(r).shape, np.asarray(r).tobytes()) for r in results]


@pytest.mark.parametrize("num_threads", [1, 2])
def test_threads_calling_every_family_at_once(seed, threads, num_threads):
    nnforge.set_num_threads(num_threads)
    jobs = [(w, r, f) for w in range(N_THREADS) for r in range(REPEATS) for f in FAMILIES]
    expected = {job: _bits(_job(seed, *job)()) for job in jobs}  # one call at a time
    barrier = threading.Barrier(N_THREADS)
    failures: list[str] = []

    def worker(w):
        try:
            runs = [(r, f, _job(seed, w, r, f)) for r in range(REPEATS) for f in FAMILIES]
            barrier.wait()
            for r, f, run in runs:
                if _bits(run()) != expected[(w, r, f)]:
                    failures.append(f"thread {w} repeat {r}: {f} differs from its single-threaded result")
        except Exception as exc:  # reported below: a thread's exception would be lost
            failures.append(f"thread {w}: {type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(N_THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a thread hung"
    assert failures == []
