"""Data-parallel scaling on MPI: the MLP, CNN and GPT steps on 1 process vs 2 ranks.

Per model, each configuration runs in its own fresh process (so no run warms another's
caches or shares its threads), one global batch per step:
    1p x 2t   one process, 2 kernel threads, the whole batch
    ideal     2 x (one process, 1 thread, half the batch), measured alone
    2r x 1t   2 MPI ranks (nnforge launch), 1 thread each, half the batch each, DataParallel
Printed: samples/s of each, scaling efficiency = 2-rank throughput / ideal, bytes
all-reduced per step, the achieved all-reduce bandwidth (the step's gradient buffer
all-reduced alone, blocking: bytes / time), and the share of that communication hidden
behind backward: 1 - (time step() still waited for the all-reduce) / (the all-reduce
alone). Target: >= 90% efficiency for the GPT and MLP steps on one machine.

The worker (python -m nnforge.bench.distributed --worker MODEL ...) prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from ._timing import fmt, print_table

__all__ = ["MODELS", "add_arguments", "run"]

# model -> (global batch, description)
MODELS = {
    "mlp": (128, "MLP 784-256-128-10, Adam"),
    "cnn": (64, "CNN conv32-pool-conv64-pool-fc128-fc10 on 1x28x28, Adam"),
    "gpt": (12, "GPT 4 layers x 4 heads x 128, context 64, vocab 103, AdamW"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="mlp,cnn,gpt", help="comma-separated subset of mlp,cnn,gpt")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is printed (default 5)")
    # these models hold 1-3 MiB of gradients: the library's 25 MiB default would make one bucket
    # that is ready only when backward ends, leaving nothing to overlap
    parser.add_argument("--bucket-mb", type=float, default=1.0, help="DataParallel bucket size cap (default 1)")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: per model)")


# --- the worker: one configuration in this process ---------------------------------------------

def _build(model: str, batch: int):
    """(model, optimizer, step_inputs()) for one rank's batch."""
    import nnforge
    from .. import nn
    nnforge.seed(0)
    gen = np.random.default_rng(0)
    if model == "gpt":
        m = nn.GPT(103, 64, 4, 4, 128)
        opt = nn.AdamW(nn.decay_groups(m, 0.1), lr=1e-3)
        stream = gen.integers(0, 103, 100_000)

        def inputs():
            starts = gen.integers(0, len(stream) - 65, size=batch)
            w = stream[starts[:, None] + np.arange(65)]
            return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])
    else:
        from . import train as _train
        m = _train.CASES[model].build_nnforge()
        opt = nn.Adam(m.parameters(), lr=1e-3)
        shape = _train.CASES[model].input_shape
        x = gen.standard_normal((4 * batch, *shape)).astype(np.float32)
        y = gen.integers(0, 10, size=4 * batch)

        def inputs():
            idx = gen.integers(0, len(x), size=batch)
            return x[idx], y[idx]
    m.flatten_parameters(opt.group_parameters())
    return m, opt, inputs


def _worker(args) -> None:
    import nnforge
    from .. import distributed as dist
    from .. import nn
    world = dist.init()
    batch = args.batch // world.size
    model, opt, inputs = _build(args.worker, batch)
    dp = dist.DataParallel(model, optimizer=opt, bucket_mb=args.bucket_mb) if world.size > 1 else None
    loss_fn = nn.CrossEntropyLoss()
    first = model._input_layer()
    if hasattr(first, "needs_input_grad"):
        first.needs_input_grad = False  # as fit() does

    def step():
        if args.worker == "gpt":
            model.loss(*inputs())
            model.backward()
        else:
            xb, yb = inputs()
            loss_fn.forward(model.forward(xb), yb)
            model.backward(loss_fn.backward())
        opt.step(zero_grad=True)

    for _ in range(3):
        step()
    rounds, exposed = [], []
    for _ in range(args.repeats):
        world.barrier()
        t0, waited = time.perf_counter(), 0.0
        for _ in range(args.steps):
            step()
            waited += dp.last_exposed_wait_s if dp is not None else 0.0
        rounds.append((time.perf_counter() - t0) / args.steps)
        exposed.append(waited / args.steps)
    step_s = statistics.median(rounds)
    result = {"threads": nnforge.get_num_threads(), "ranks": world.size, "step_s": step_s,
              "samples_per_s": batch * world.size / step_s}
    if dp is not None:
        grad = model.flat_parameters()[1]
        alone = []
        for _ in range(max(5, args.repeats)):
            world.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(grad)
            alone.append(time.perf_counter() - t0)
        t_alone = statistics.median(alone)
        result.update(bytes_per_step=dp.bytes_per_step, allreduce_s=t_alone,
                      exposed_s=statistics.median(exposed), buckets=len(dp.buckets))
        dp.verify_identical()
    if world.rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


# --- the driver ------------------------------------------------------------------------------

def _run_config(model: str, batch: int, threads: int, ranks: int, args) -> dict:
    from ..distributed import launcher
    cmd = [sys.executable, "-m", "nnforge.bench.distributed", "--worker", model, "--batch", str(batch),
           "--steps", str(args.steps), "--repeats", str(args.repeats), "--bucket-mb", str(args.bucket_mb)]
    env = launcher.rank_environment(ranks, threads=threads)
    if ranks > 1:
        cmd = launcher.mpiexec_command(ranks, cmd, threads=threads)
    else:
        for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
            env.pop(var, None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench distributed: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n"
                           f"{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def run(args) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or args.steps < 1 or args.repeats < 1:
        from ..cli.errors import CliError
        raise CliError(f"--models must name some of {', '.join(MODELS)} (got {bad}); --steps and --repeats >= 1")
    rows = []
    for m in models:
        batch = args.batch or MODELS[m][0]
        batch -= batch % 2
        one = _run_config(m, batch, 2, 1, args)
        half = _run_config(m, batch // 2, 1, 1, args)
        two = _run_config(m, batch, 1, 2, args)
        ideal = 2 * half["samples_per_s"]
        hidden = max(0.0, 1.0 - two["exposed_s"] / two["allreduce_s"]) if two["allreduce_s"] > 0 else None
        rows.append([m, str(batch), fmt(one["samples_per_s"], ",.0f"), fmt(ideal, ",.0f"),
                     fmt(two["samples_per_s"], ",.0f"), fmt(100 * two["samples_per_s"] / ideal, ".0f") + "%",
                     fmt(two["bytes_per_step"] / 2 ** 20, ".2f"), str(two["buckets"]),
                     fmt(two["bytes_per_step"] / two["allreduce_s"] / 1e9, ".2f"),
                     fmt(1e3 * two["exposed_s"], ".2f"), fmt(None if hidden is None else 100 * hidden, ".0f") + "%"])
    print_table(["model", "batch", "1p x 2t /s", "ideal /s", "2r x 1t /s", "scaling", "MiB/step", "buckets",
                 "allreduce GB/s", "exposed ms", "hidden"], rows,
                title="nnforge bench distributed: samples/s (global batch per step); ideal = 2 x one 1-thread "
                      "process on half the batch, measured alone; target scaling >= 90% (mlp, gpt)")
    for m in models:
        print(f"  {m}: {MODELS[m][1]}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--worker", required=True, choices=sorted(MODELS))
    add_arguments(p)
    a = p.parse_args()
    a.batch = a.batch or MODELS[a.worker][0]
    _worker(a)
