"""Ctrl-C between training steps, never inside one.

A training step (forward, which moves BatchNorm statistics and draws dropout masks,
backward, the optimizer's update of every parameter group and its step count) must
happen entirely or not at all, or the model, optimizer and RNG disagree. Python raises
KeyboardInterrupt at any bytecode, so fit() holds SIGINT back while a step runs:

    with DeferredInterrupt() as guard:      # around the whole loop: installs the handler once
        for batch in ...:
            with guard.step():              # a SIGINT arriving here is delivered on exit
                ...

A held-back signal goes to the handler that was installed before (Python's default one
raises KeyboardInterrupt) as soon as the step ends. Python delivers signals to the main
thread only, so on any other thread (or when the previous handler was not installed
from Python) this does nothing.
"""
from __future__ import annotations

import os
import signal
import threading

__all__ = ["DeferredInterrupt"]


class _Step:
    __slots__ = ("_guard",)

    def __init__(self, guard: "DeferredInterrupt"):
        self._guard = guard

    def __enter__(self) -> None:
        self._guard._in_step = True

    def __exit__(self, *exc) -> None:
        guard = self._guard
        guard._in_step = False
        pending, guard._pending = guard._pending, None
        if pending is not None:
            guard._deliver(*pending)


class DeferredInterrupt:
    def __init__(self):
        self._previous = None
        self._installed = False
        self._in_step = False
        self._pending = None
        self._step = _Step(self)

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # None: set outside Python, cannot be put back
                self._previous = previous
                signal.signal(signal.SIGINT, self._handler)
                self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def step(self) -> _Step:
        """The context of one step: SIGINT is held back inside it."""
        return self._step

    def _handler(self, signum, frame) -> None:
        if self._in_step:
            self._pending = (signum, frame)
        else:
            self._deliver(signum, frame)

    def _deliver(self, signum, frame) -> None:
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # the default action (terminate): give it back and re-send
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            self._installed = False
            os.kill(os.getpid(), signum)
        # SIG_IGN: ignored, as before
