"""The MPI world nnforge trains in: init, rank, size, and every collective as a non-blocking
MPI call waited on with a deadline.

Why a deadline: a rank that died or went elsewhere leaves the others blocked for ever in
a plain Allreduce. Here each wait polls Request.Test(); past the deadline the waiting
rank asks every peer on a private control communicator what it is doing (peers answer
while they poll their own waits), and raises a TimeoutError that names the ranks that did
not answer and where the others are. The job then ends through abort_on_error().

In a process mpiexec did not start (no launcher variables, see _LAUNCH_VARS) the world
is one process (rank 0 of 1), MPI is not even imported, and every collective is the
identity, so the same script runs alone.
"""
from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from typing import Optional

import numpy as np

__all__ = ["World", "world", "init"]

DEFAULT_TIMEOUT_S = 300.0  # NNFORGE_DIST_TIMEOUT overrides; generous: a first step may compile nothing but be slow
_QUERY, _REPLY = 1, 2      # control-channel tags
# Busy-poll Test() this long before sleeping 1 ms between polls: a large all-reduce moves
# one fragment per progress call on each side, so sleeping early makes it crawl (MPI's own
# blocking Wait spins too); past this, a peer is late and sleeping costs nothing.
_SPIN_S = 0.5
# set by mpiexec / srun of Open MPI, MPICH, Intel MPI and PMIx launchers; NNFORGE_MPI=1 forces MPI
_LAUNCH_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "NNFORGE_MPI")


def _launched_by_mpiexec() -> bool:
    return any(os.environ.get(v) for v in _LAUNCH_VARS)


class World:
    """The processes of this job. comm is MPI.COMM_WORLD (None when single-process)."""

    def __init__(self, timeout_s: Optional[float] = None):
        self.timeout_s = float(timeout_s if timeout_s is not None
                               else os.environ.get("NNFORGE_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
        if self.timeout_s <= 0:
            raise ValueError(f"distributed timeout must be > 0 seconds, got {self.timeout_s}")
        self.MPI = None
        self.comm = None
        self.rank, self.size = 0, 1
        self._where = "outside any collective"  # what this rank is doing (for peers' timeout reports)
        self._seq = 0                            # collectives entered so far
        if not _launched_by_mpiexec():
            return  # alone: no MPI_Init (a singleton init costs ~1.5 s and nothing is gained)
        try:
            import mpi4py
            if "mpi4py.MPI" not in sys.modules:  # only the main thread calls MPI: no locking needed
                mpi4py.rc.thread_level = "funneled"
            from mpi4py import MPI
        except ImportError:
            raise ImportError("this process was started by mpiexec but mpi4py is missing: "
                              "pip install \"nnforge[mpi]\"") from None
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._control = self.comm.Dup() if self.size > 1 else None

    # --- waiting -------------------------------------------------------------------------
    def wait(self, requests, what: str) -> None:
        """Wait for MPI requests, answering peers' queries; TimeoutError past the deadline."""
        requests = [r for r in requests if r is not None]
        if not requests:
            return
        self._seq += 1
        self._where = f"{what} (collective #{self._seq})"
        MPI = self.MPI
        start = time.perf_counter()
        deadline = start + self.timeout_s
        while not MPI.Request.Testall(requests):
            self._answer_queries()
            now = time.perf_counter()
            if now > deadline:
                raise TimeoutError(self._timeout_message(what))
            if now - start > _SPIN_S:
                time.sleep(1e-3)
        self._where = "outside any collective"

    def progress(self, requests) -> None:
        """Let MPI move in-flight requests along (Open MPI progresses only inside MPI calls)."""
        if requests:
            self.MPI.Request.Testall(requests)

    def _answer_queries(self) -> None:
        c = self._control
        while c is not None and c.iprobe(source=self.MPI.ANY_SOURCE, tag=_QUERY):
            status = self.MPI.Status()
            c.recv(source=self.MPI.ANY_SOURCE, tag=_QUERY, status=status)
            c.send(self._where, dest=status.Get_source(), tag=_REPLY)

    def _timeout_message(self, what: str, grace_s: float = 2.0) -> str:
        c, peers = self._control, [r for r in range(self.size) if r != self.rank]
        sends = [c.isend(None, dest=r, tag=_QUERY) for r in peers]
        replies: dict[int, str] = {}
        end = time.perf_counter() + grace_s
        while len(replies) < len(peers) and time.perf_counter() < end:
            for r in peers:
                if r not in replies and c.iprobe(source=r, tag=_REPLY):
                    replies[r] = c.recv(source=r, tag=_REPLY)
            self._answer_queries()
            time.sleep(1e-3)
        for s in sends:  # the unanswered ones stay posted; the job is about to end
            s.Test()
        missing = [r for r in peers if r not in replies]
        parts = [f"rank {self.rank}: {what} did not complete within {self.timeout_s:g} s "
                 f"(NNFORGE_DIST_TIMEOUT)"]
        if missing:
            parts.append(f"missing: rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                         f"(not in an nnforge collective: busy elsewhere, hung or gone)")
        parts += [f"rank {r} is waiting in {where}" for r, where in sorted(replies.items())]
        return "; ".join(parts)

    # --- collectives (in place on NumPy buffers) ------------------------------------------
    def _check_buffer(self, array, name: str) -> np.ndarray:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} needs a NumPy array, got {type(array).__name__}")
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise ValueError(f"{name} works in place: it needs a writeable C-contiguous array, got one with "
                             f"shape {array.shape} and strides {array.strides}")
        if array.dtype.kind not in "fiu":
            raise TypeError(f"{name} needs a numeric array, got dtype {array.dtype}")
        return array

    def iallreduce_sum(self, array: np.ndarray):
        """Start a SUM all-reduce of array in place; returns the request (None alone)."""
        if self.size == 1:
            return None
        return self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)

    def all_reduce(self, array: np.ndarray, op: str = "sum") -> np.ndarray:
        """Sum (or mean) of array over the ranks, in place; returns array."""
        if op not in ("sum", "mean"):
            raise ValueError(f"all_reduce op must be 'sum' or 'mean', got {op!r}")
        self._check_buffer(array, "all_reduce")
        if op == "mean" and array.dtype.kind != "f":
            raise TypeError(f"all_reduce(op='mean') needs a floating-point array, got dtype {array.dtype}")
        self.wait([self.iallreduce_sum(array)], f"all_reduce of {array.size} x {array.dtype}")
        if op == "mean" and self.size > 1:
            np.multiply(array, array.dtype.type(1.0 / self.size), out=array)
        return array

    def broadcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        """array from rank `root` on every rank, in place; returns array."""
        self._check_buffer(array, "broadcast")
        if not 0 <= root < self.size:
            raise ValueError(f"broadcast root must be a rank in [0, {self.size}), got {root}")
        if self.size > 1:
            self.wait([self.comm.Ibcast(array, root=root)], f"broadcast of {array.size} x {array.dtype}")
        return array

    def iallgatherv(self, array: np.ndarray, counts, displs):
        """Start an in-place all-gather of array[displs[r]:displs[r] + counts[r]] from each rank r."""
        if self.size == 1:
            return None
        mpi_type = self.MPI._typedict[array.dtype.char]
        return self.comm.Iallgatherv(self.MPI.IN_PLACE, [array, (list(counts), list(displs)), mpi_type])

    def barrier(self) -> None:
        if self.size > 1:
            self.wait([self.comm.Ibarrier()], "barrier")

    def gather_objects(self, value) -> list:
        """[value of rank 0, value of rank 1, ...] on every rank (small Python objects)."""
        if self.size == 1:
            return [value]
        buf = np.zeros(self.size, dtype=np.int64)  # sizes first, with a deadline; then the payload
        payload = np.frombuffer(pickle.dumps(value), dtype=np.uint8)
        buf[self.rank] = payload.size
        self.all_reduce(buf)
        out = np.zeros(int(buf.sum()), dtype=np.uint8)
        displs = np.concatenate([[0], np.cumsum(buf)[:-1]])
        out[displs[self.rank]:displs[self.rank] + payload.size] = payload
        self.wait([self.iallgatherv(out, buf, displs)], "gather of small objects")
        return [pickle.loads(out[d:d + n].tobytes()) for d, n in zip(displs, buf)]

    def abort(self, code: int = 1) -> None:
        if self.comm is not None and self.size > 1:
            self.comm.Abort(code)


_world: Optional[World] = None


def init(timeout_s: Optional[float] = None) -> World:
    """The job's World (created on the first call; later calls return it, a new timeout_s
    replaces the deadline). In a job of several ranks, an uncaught exception on any rank
    prints its traceback and aborts the whole job (never a silent hang)."""
    global _world
    if _world is None:
        _world = World(timeout_s)
        if _world.size > 1:
            sys.excepthook = _abort_hook
    elif timeout_s is not None:
        if timeout_s <= 0:
            raise ValueError(f"distributed timeout must be > 0 seconds, got {timeout_s}")
        _world.timeout_s = float(timeout_s)
    return _world


def world() -> World:
    return _world if _world is not None else init()


def report_and_abort(exc: BaseException, code: int = 1) -> None:
    """Print this rank's traceback (prefixed with its rank) and end every rank of the job."""
    w = world()
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(f"[nnforge rank {w.rank}/{w.size}] the job stops: this rank raised\n{text}")
    sys.stderr.flush()
    sys.stdout.flush()
    w.abort(code)


def _abort_hook(exc_type, exc, tb) -> None:
    report_and_abort(exc.with_traceback(tb) if exc is not None else exc_type())
