"""nnforge calls alternating with NumPy / PyTorch calls: what each library loses to the other's pool.

A user's loop often calls NumPy (OpenBLAS's pthread pool) or PyTorch between nnforge
calls. A pool that spin-waits after a call holds a core while the other library wants
both, so each library is timed three ways in one process:
    alone   its call back to back (its own pool stays hot: the best case for it)
    mixed   the loop  nnforge call; peer call; nnforge call; ...  each call timed apart
and printed as time per call alone, in the mix, and the ratio (mixed / alone: 1.00 =
nothing lost). Cases:
    matmul | numpy @      ops.matmul(a, b, out=c) then np.matmul (OpenBLAS, 2 threads)
    matmul | torch.mm     ops.matmul then torch.mm (PyTorch's OpenMP pool)
    MLP step | NumPy loss nnforge 784-256-128-10 forward, backward, Adam at batch 128, the
                          softmax cross-entropy and its gradient in NumPy (plus a NumPy
                          @ for a metric, as user code does), the peer half of the loop
Each wait policy (--policies) runs in its own child process, since libgomp and OpenBLAS
read their environment once, when they are loaded:
    nnforge     nnforge's defaults: GEMM on its own pool of claimed slabs
                (common/worker_pool.h), GOMP_SPINCOUNT set at import for the other
                kernels' OpenMP regions when the user set none (nnforge._wait_policy)
    gemm-omp    the same, but GEMM threads in an OpenMP region (NNFORGE_GEMM_THREADING=omp)
    libgomp     before either: GEMM in OpenMP, libgomp's own GOMP_SPINCOUNT=300000
    passive     OMP_WAIT_POLICY=passive (threads sleep at once after a region)
    active      OMP_WAIT_POLICY=active (threads spin until the next region)
    obl-short   nnforge's default plus OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS's workers
                sleep after 2^4 cycles instead of 2^28)
In a process that imports torch, torch and nnforge share one libgomp (one soname,
libgomp.so.1, so the first one loaded serves both): the torch case measures that
shared pool, not two pools fighting.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from ._timing import fmt, print_table
from .train import skip_first_input_grad

# name -> environment overrides of the child process (None: remove the variable)
_NNF = {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None, "NNFORGE_GEMM_THREADING": None,
        "OPENBLAS_THREAD_TIMEOUT": None}
POLICIES = {
    "nnforge": _NNF,
    "gemm-omp": {**_NNF, "NNFORGE_GEMM_THREADING": "omp"},
    "libgomp": {**_NNF, "GOMP_SPINCOUNT": "300000", "NNFORGE_GEMM_THREADING": "omp"},
    "passive": {**_NNF, "OMP_WAIT_POLICY": "passive"},
    "active": {**_NNF, "OMP_WAIT_POLICY": "active"},
    "obl-short": {**_NNF, "OPENBLAS_THREAD_TIMEOUT": "4"},
}
SIZES = (256, 512)


def add_arguments(parser) -> None:
    parser.add_argument("--policies", default="nnforge,libgomp,passive,obl-short",
                        help=f"comma-separated wait policies: {','.join(POLICIES)} or spin=N (GOMP_SPINCOUNT=N)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="square matmul sizes")
    parser.add_argument("--iters", type=int, default=0, help="loop iterations per sample (0: ~0.2 s)")
    parser.add_argument("--repeats", type=int, default=5, help="samples (median reported)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one policy's run, JSON out


# --- the child: one policy, every case ----------------------------------------------------

def _matmul_pair(rng, n, peer, torch):
    from .. import ops
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    c = np.empty((n, n), np.float32)
    pa, pb = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    pc = np.empty((n, n), np.float32)
    nnf = lambda: ops.matmul(a, b, out=c)
    if peer == "numpy":
        return nnf, lambda: np.matmul(pa, pb, out=pc)
    ta, tb, tc = torch.from_numpy(pa), torch.from_numpy(pb), torch.from_numpy(pc)
    return nnf, lambda: torch.mm(ta, tb, out=tc)


def _mlp_pair(rng):
    from .. import nn
    model = nn.Sequential(nn.Linear(784, 256, activation="relu"), nn.Linear(256, 128, activation="relu"),
                          nn.Linear(128, 10))
    skip_first_input_grad(model)
    opt = nn.Adam(model.parameters(), lr=1e-3)
    x = rng.standard_normal((128, 784), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    proj = rng.standard_normal((10, 256), dtype=np.float32)
    state = {"logits": model.forward(x)}

    def nnf():  # backward of the previous loss, the step, the next forward
        if "dlogits" in state:
            model.backward(state["dlogits"])
            opt.step(zero_grad=True)
        state["logits"] = model.forward(x)

    def peer():  # user's NumPy loss: log-softmax cross-entropy, its gradient, a metric
        z = state["logits"] - state["logits"].max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        state["loss"] = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
        p[np.arange(len(y)), y] -= 1.0
        state["dlogits"] = (p / len(y)).astype(np.float32)
        state["metric"] = float(np.abs(state["dlogits"] @ proj).sum())  # an OpenBLAS call
    return nnf, peer


def _per_call(fn, iters, repeats):
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        samples.append((time.perf_counter() - t0) / iters)
    return statistics.median(samples)


def _mixed(nnf, peer, iters, repeats):
    tn, tp = [], []
    for _ in range(repeats):
        sn = sp = 0.0
        for _ in range(iters):
            t0 = time.perf_counter()
            nnf()
            t1 = time.perf_counter()
            peer()
            sp += time.perf_counter() - t1
            sn += t1 - t0
        tn.append(sn / iters)
        tp.append(sp / iters)
    return statistics.median(tn), statistics.median(tp)


def _child(policy: str, sizes, iters, repeats) -> dict:
    import nnforge
    try:
        import torch  # type: ignore
        torch.set_num_threads(nnforge.get_num_threads())
    except Exception:
        torch = None
    rng = np.random.default_rng(0)
    cases = []
    for n in sizes:
        cases.append((f"matmul {n}^3 | numpy @", *_matmul_pair(rng, n, "numpy", torch)))
    if torch is not None:
        for n in sizes:
            cases.append((f"matmul {n}^3 | torch.mm", *_matmul_pair(rng, n, "torch", torch)))
    cases.append(("MLP step | NumPy loss", *_mlp_pair(rng)))
    out = []
    for label, nnf, peer in cases:
        for fn in (nnf, peer, nnf, peer):  # warm-up, both pools started
            fn()
        one = max(1e-6, _per_call(nnf, 3, 1) + _per_call(peer, 3, 1))
        it = iters or max(5, int(0.2 / one))
        time.sleep(0.1)
        alone_n = _per_call(nnf, it, repeats)
        time.sleep(0.1)
        alone_p = _per_call(peer, it, repeats)
        time.sleep(0.1)
        mix_n, mix_p = _mixed(nnf, peer, it, repeats)
        out.append({"case": label, "alone_nnf": alone_n, "alone_peer": alone_p, "mix_nnf": mix_n,
                    "mix_peer": mix_p})
    return {"policy": policy, "spincount": os.environ.get("GOMP_SPINCOUNT"),
            "wait_policy": os.environ.get("OMP_WAIT_POLICY"), "cases": out}


# --- the parent: one child per policy, one table ------------------------------------------

def _overrides(policy: str) -> dict:
    """POLICIES[policy], or spin=N: GOMP_SPINCOUNT=N (the sweep behind nnforge's default)."""
    if policy.startswith("spin=") and policy[5:].isdigit():
        return {**_NNF, "GOMP_SPINCOUNT": policy[5:]}
    if policy not in POLICIES:
        raise ValueError(f"bench mixed: unknown policy {policy!r}; known: {list(POLICIES)} or spin=N")
    return POLICIES[policy]


def _run_policy(policy: str, args) -> dict:
    env = dict(os.environ)
    for k, v in _overrides(policy).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    cmd = [sys.executable, "-c", "import sys; from nnforge.cli import main; sys.exit(main())",
           "bench", "mixed", "--child", policy, "--iters", str(args.iters), "--repeats", str(args.repeats),
           "--sizes", *map(str, args.sizes)]
    if getattr(args, "threads", None):
        cmd[3:3] = ["--threads", str(args.threads)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"bench mixed: policy {policy} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(args) -> int:
    if args.child is not None:
        print(json.dumps(_child(args.child, args.sizes, args.iters, args.repeats)))
        return 0
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for p in policies:
        _overrides(p)  # unknown names fail before any child runs
    import nnforge
    print(f"nnforge bench mixed (isa={nnforge.get_isa()} threads={nnforge.get_num_threads()} "
          f"numpy={np.__version__})")
    print("method: per policy a fresh process; per case each library alone (its calls back to back), then the "
          f"loop nnforge, peer, nnforge, ... with each call timed; median of {args.repeats} samples; "
          "ratio = mixed / alone (1.00 = nothing lost)")
    rows = []
    for policy in policies:
        res = _run_policy(policy, args)
        for c in res["cases"]:
            rn, rp = c["mix_nnf"] / c["alone_nnf"], c["mix_peer"] / c["alone_peer"]
            loop = (c["mix_nnf"] + c["mix_peer"]) / (c["alone_nnf"] + c["alone_peer"])
            rows.append([c["case"], policy, fmt(c["alone_nnf"] * 1e6, ".0f"), fmt(c["mix_nnf"] * 1e6, ".0f"),
                         fmt(rn, ".2f"), fmt(c["alone_peer"] * 1e6, ".0f"), fmt(c["mix_peer"] * 1e6, ".0f"),
                         fmt(rp, ".2f"), fmt(loop, ".2f")])
    print_table(["case", "policy", "nnf alone us", "nnf mixed us", "nnf x", "peer alone us", "peer mixed us",
                 "peer x", "loop x"], rows)
    return 0
