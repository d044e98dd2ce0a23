"""Recurrent layers on nnforge's single-direction kernels (ops.lstm / ops.gru / ops.rnn and
their _backward): LSTM, GRU, RNN and the one-step cells LSTMCell, GRUCell, RNNCell.

Arguments, parameter names (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ..._reverse;
cells: weight_ih, weight_hh, bias_ih, bias_hh), gate order (i, f, g, o / r, z, n), shapes
and init (every parameter U(-1/sqrt(H), 1/sqrt(H))) are PyTorch's, so a torch state_dict
loads as is (as numpy arrays).

    y, (h_n, c_n) = lstm.forward(x, state=None, lengths=None)
        x (T, B, I) ((B, T, I) with batch_first, as a transposed view); state (h0, c0),
        each (num_layers * num_directions, B, H); lengths (B,) ints: sequence b is
        x[:lengths[b], b] (as torch's pack_padded_sequence; y is 0 past a sequence's end,
        h_n / c_n are its state at its last step). y is (T, B, D * H).
    dx = lstm.backward(dy, dstate=None)        # forward(x)
    dx, dstate = lstm.backward(dy, dstate)     # forward(x, state): dstate = (dh0, dc0)
    dx, dstate, None = ...                     # forward(x, state, lengths) (None: no state)

Carrying state across calls (truncated BPTT): pass the last call's (h_n, c_n) as the next
call's state. It enters as a constant: backward returns its gradient but nothing flows
further back. Layers are composed per (layer, direction) from the kernels; a
bidirectional layer's output is the two directions joined on the feature axis, and
dropout (training mode only, seeded from nnforge's generator as nn.Dropout) acts on
every layer's output but the last. In eval mode forward keeps no workspace, so backward
after an eval-mode forward is refused.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import _random, ops
from . import init
from ._checks import _float32_input, _need_forward, _positive_int
from .module import Module, Parameter

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _shape_text(a) -> str:
    return str(a.shape) if isinstance(a, np.ndarray) else type(a).__name__


class _Kernels:
    """The kernel pair of one mode, called with or without a cell state: (y, h_n, c_n,
    workspace) forward and (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh) backward for every
    mode (c_n, dc0 None without a cell state)."""

    def __init__(self, mode: str, nonlinearity: Optional[str]):
        self.mode = mode
        self.kw = {} if nonlinearity is None else {"nonlinearity": nonlinearity}

    def forward(self, x, h0, c0, w, lengths, reverse, workspace):
        kw = dict(self.kw, lengths=lengths, reverse=reverse, return_workspace=workspace)
        if self.mode == "lstm":
            return ops.lstm(x, h0, c0, *w, **kw)
        y, h_n, ws = getattr(ops, self.mode)(x, h0, *w, **kw)
        return y, h_n, None, ws

    def backward(self, dy, dh_n, dc_n, x, h0, c0, w, ws, lengths, reverse):
        kw = dict(self.kw, lengths=lengths, reverse=reverse)
        w_ih, w_hh, *b = w
        if self.mode == "lstm":
            return ops.lstm_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, ws, *b, **kw)
        dx, dh0, *dw = getattr(ops, self.mode + "_backward")(dy, dh_n, x, h0, w_ih, w_hh, ws, *b, **kw)
        return (dx, dh0, None, *dw)


class _Recurrent(Module):
    """What the layers and the cells share: the gate count, the U(-1/sqrt(H), 1/sqrt(H))
    parameters of one (layer, direction) and the kernels."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool, nonlinearity: Optional[str]):
        super().__init__()
        self.mode = mode
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.bias = bool(bias)
        self._kernels = _Kernels(mode, nonlinearity)

    @property
    def _has_cell(self) -> bool:
        return self.mode == "lstm"

    def _add_weights(self, suffix: str, in_size: int) -> None:
        g, h = _GATES[self.mode], self.hidden_size
        bound = 1.0 / math.sqrt(h)
        setattr(self, f"weight_ih{suffix}", Parameter(init.uniform((g * h, in_size), -bound, bound)))
        setattr(self, f"weight_hh{suffix}", Parameter(init.uniform((g * h, h), -bound, bound)))
        if self.bias:
            setattr(self, f"bias_ih{suffix}", Parameter(init.uniform((g * h,), -bound, bound)))
            setattr(self, f"bias_hh{suffix}", Parameter(init.uniform((g * h,), -bound, bound)))

    def _weights(self, suffix: str) -> list[Parameter]:
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        return [getattr(self, n + suffix) for n in names]

    @staticmethod
    def _accumulate(params: list[Parameter], grads) -> None:
        for p, g in zip(params, grads):
            p.grad += g  # in place: .grad may be a view into the flat buffer


# --- layers over a sequence ---------------------------------------------------------------

class _RNNLayer(_Recurrent):
    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 nonlinearity: Optional[str] = None):
        super().__init__(mode, input_size, hidden_size, bias, nonlinearity)
        self.num_layers = _positive_int(num_layers, "num_layers")
        self.batch_first = bool(batch_first)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.num_directions * self.hidden_size
            for d in range(self.num_directions):
                self._add_weights(self._suffix(layer, d), in_size)
        self._cache = None

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    # --- checks -----------------------------------------------------------------------------
    def _input(self, x) -> np.ndarray:
        """x as a (T, B, I) array (a transposed view with batch_first)."""
        name = type(self).__name__
        x = _float32_input(x, name)
        want = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{name} expected input of shape {want} with input_size={self.input_size}, got {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} needs at least one step and one sequence, got input of shape {x.shape}")
        return x.transpose(1, 0, 2) if self.batch_first else x

    def _state(self, state, batch: int):
        """state -> a tuple of (L*D, B, H) float32 arrays ((h0, c0) for LSTM, (h0,) else)."""
        name = type(self).__name__
        want = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if self._has_cell:
            if not (isinstance(state, tuple) and len(state) == 2):
                raise ValueError(f"{name} state must be a tuple (h0, c0) of arrays of shape {want}, got "
                                 f"{type(state).__name__}")
            parts = state
        else:
            parts = (state,)
        for label, s in zip(("h0", "c0"), parts):
            s = _float32_input(s, f"{name} state {label}")
            if s.shape != want:
                raise ValueError(f"{name} state {label} must have shape {want} (num_layers * num_directions, batch, "
                                 f"hidden_size), got {s.shape}")
        return parts

    @staticmethod
    def _lengths(lengths, steps: int, batch: int, name: str) -> np.ndarray:
        arr = np.asarray(lengths)
        if arr.dtype.kind not in "iu" or arr.shape != (batch,):
            raise ValueError(f"{name} lengths must be {batch} integers (one per sequence), got {arr.dtype} "
                             f"{arr.shape}")
        if arr.min() < 1 or arr.max() > steps:
            raise ValueError(f"{name} lengths must be in [1, {steps}] (the input's steps), got min {arr.min()} "
                             f"max {arr.max()}")
        return np.ascontiguousarray(arr, dtype=np.int64)

    # --- forward --------------------------------------------------------------------------------
    def forward(self, x, state=None, lengths=None):
        name = type(self).__name__
        seq = self._input(x)
        steps, batch = seq.shape[:2]
        parts = None if state is None else self._state(state, batch)
        lens = None if lengths is None else self._lengths(lengths, steps, batch, name)
        keep = self.training
        n_inputs = 1 if state is None and lengths is None else (2 if lengths is None else 3)
        layers, finals = [], []
        inp = seq
        for layer in range(self.num_layers):
            outs, saved = [], []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                h0 = None if parts is None else parts[0][k]
                c0 = None if parts is None or not self._has_cell else parts[1][k]
                w = [p.data for p in self._weights(self._suffix(layer, d))]
                y, h_n, c_n, ws = self._kernels.forward(inp, h0, c0, w, lens, d == 1, keep)
                outs.append(y)
                finals.append((h_n, c_n))
                saved.append((h0, c0, ws))
            out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)      # (T, B, D*H)
            mask = None
            if keep and self.dropout > 0.0 and layer < self.num_layers - 1:
                out, mask = ops.dropout(out, self.dropout, _random.next_seed())
            layers.append((inp, saved, mask))
            inp = out
        self._cache = (layers, lens, n_inputs, parts is not None, batch) if keep else None
        h_n = np.stack([f[0] for f in finals])
        y = inp.transpose(1, 0, 2) if self.batch_first else inp
        if self._has_cell:
            return y, (h_n, np.stack([f[1] for f in finals]))
        return y, h_n

    # --- backward -------------------------------------------------------------------------------
    def _grad_state(self, dstate, batch: int):
        """dstate (dh_n, dc_n) / dh_n, each may be None -> (dh_n, dc_n) arrays or None."""
        if dstate is None:
            return None, None
        name = f"{type(self).__name__}.backward"
        parts = dstate if self._has_cell else (dstate, None)
        if self._has_cell and not (isinstance(dstate, tuple) and len(dstate) == 2):
            raise ValueError(f"{name} expects the state gradient as a tuple (dh_n, dc_n), got {type(dstate).__name__}")
        want = (self.num_layers * self.num_directions, batch, self.hidden_size)
        for label, g in zip(("dh_n", "dc_n"), parts):
            if g is not None and (not isinstance(g, np.ndarray) or g.shape != want):
                raise ValueError(f"{name} expects {label} of shape {want}, got {_shape_text(g)}")
        return parts

    def backward(self, grad_out, dstate=None):
        name = type(self).__name__
        cache = self._cache
        if cache is None and not self.training:
            raise RuntimeError(f"{name}.backward: the last forward ran in eval mode (no workspace); call train() "
                               f"before a forward that needs a backward")
        layers, lens, n_inputs, had_state, batch = _need_forward(cache, name)
        steps = layers[0][0].shape[0]
        out_shape = (steps, batch, self.num_directions * self.hidden_size)
        want = (batch, steps, out_shape[2]) if self.batch_first else out_shape
        if grad_out is not None and (not isinstance(grad_out, np.ndarray) or grad_out.shape != want):
            raise ValueError(f"{name}.backward expects grad_out of shape {want} (the forward output), got "
                             f"{_shape_text(grad_out)}")
        dh_n, dc_n = self._grad_state(dstate, batch)
        d_out = None if grad_out is None else (grad_out.transpose(1, 0, 2) if self.batch_first else grad_out)
        h = self.hidden_size
        dh0 = dc0 = None
        if had_state:
            dh0 = np.zeros((self.num_layers * self.num_directions, batch, h), np.float32)
            dc0 = np.zeros_like(dh0) if self._has_cell else None
        for layer in reversed(range(self.num_layers)):
            inp, saved, mask = layers[layer]
            if mask is not None and d_out is not None:
                d_out = ops.dropout_backward(d_out, mask, self.dropout)
            d_in = None
            for d, (h0, c0, ws) in enumerate(saved):
                k = layer * self.num_directions + d
                dy = None if d_out is None else (d_out if self.num_directions == 1 else d_out[:, :, d * h:(d + 1) * h])
                params = self._weights(self._suffix(layer, d))
                dx, g_h0, g_c0, *dw = self._kernels.backward(
                    dy, None if dh_n is None else dh_n[k], None if dc_n is None else dc_n[k], inp, h0, c0,
                    [p.data for p in params], ws, lens, d == 1)
                self._accumulate(params, dw)
                if dh0 is not None and g_h0 is not None:
                    dh0[k] = g_h0
                if dc0 is not None and g_c0 is not None:
                    dc0[k] = g_c0
                d_in = dx if d_in is None else d_in + dx
            d_out = d_in
        dx = d_out.transpose(1, 0, 2) if self.batch_first else d_out
        if n_inputs == 1:
            return dx
        dstate_in = None if not had_state else ((dh0, dc0) if self._has_cell else dh0)
        return (dx, dstate_in) if n_inputs == 2 else (dx, dstate_in, None)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for key, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                             ("bidirectional", False)):
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        return s


class LSTM(_RNNLayer):
    """Long short-term memory over a sequence (torch.nn.LSTM's arguments and parameters)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)


class GRU(_RNNLayer):
    """Gated recurrent unit over a sequence (torch.nn.GRU's arguments and parameters)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)


class RNN(_RNNLayer):
    """Elman RNN h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu
    (torch.nn.RNN's arguments and parameters)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("rnn", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         nonlinearity)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", nonlinearity={self.nonlinearity!r}" if self.nonlinearity != "tanh" else "")


# --- one-step cells ----------------------------------------------------------------------------

class _Cell(_Recurrent):
    """One step: T = 1 calls of the sequence kernels. forward(x (B, I), state=None) -> h'
    (GRU / RNN) or (h', c') (LSTM); state as the output, None = zeros. backward(dh, dc)
    -> dx, or (dx, dstate) when forward had a state."""

    def __init__(self, mode, input_size, hidden_size, bias, nonlinearity=None):
        super().__init__(mode, input_size, hidden_size, bias, nonlinearity)
        self._add_weights("", self.input_size)
        self._cache = None

    def forward(self, x, state=None):
        name = type(self).__name__
        x = _float32_input(x, name)
        if x.ndim != 2 or x.shape[1] != self.input_size or x.shape[0] == 0:
            raise ValueError(f"{name} expected input of shape (B, {self.input_size}), got {x.shape}")
        batch = x.shape[0]
        h0 = c0 = None
        if state is not None:
            parts = state if self._has_cell else (state,)
            if self._has_cell and not (isinstance(state, tuple) and len(state) == 2):
                raise ValueError(f"{name} state must be a tuple (h, c) of arrays of shape "
                                 f"{(batch, self.hidden_size)}, got {type(state).__name__}")
            for label, s in zip(("h", "c"), parts):
                s = _float32_input(s, f"{name} state {label}")
                if s.shape != (batch, self.hidden_size):
                    raise ValueError(f"{name} state {label} must have shape {(batch, self.hidden_size)}, got "
                                     f"{s.shape}")
            h0, c0 = parts if self._has_cell else (parts[0], None)
        seq = x[None]                                                            # (1, B, I) view
        keep = self.training
        w = [p.data for p in self._weights("")]
        _, h_n, c_n, ws = self._kernels.forward(seq, h0, c0, w, None, False, keep)
        self._cache = (seq, h0, c0, ws, state is not None) if keep else None
        return (h_n, c_n) if self._has_cell else h_n

    def backward(self, dh, dc=None):
        name = type(self).__name__
        if self._cache is None and not self.training:
            raise RuntimeError(f"{name}.backward: the last forward ran in eval mode (no workspace)")
        seq, h0, c0, ws, had_state = _need_forward(self._cache, name)
        want = (seq.shape[1], self.hidden_size)
        for label, g in (("dh", dh), ("dc", dc)):
            if g is not None and (not isinstance(g, np.ndarray) or g.shape != want):
                raise ValueError(f"{name}.backward expects {label} of shape {want}, got {_shape_text(g)}")
        params = self._weights("")
        dx, g_h0, g_c0, *dw = self._kernels.backward(None, dh, dc if self._has_cell else None, seq, h0, c0,
                                                     [p.data for p in params], ws, None, False)
        self._accumulate(params, dw)
        dx = dx[0]
        if not had_state:
            return dx
        return dx, ((g_h0, g_c0) if self._has_cell else g_h0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LSTMCell(_Cell):
    """One LSTM step (torch.nn.LSTMCell's arguments and parameters): (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__("lstm", input_size, hidden_size, bias)


class GRUCell(_Cell):
    """One GRU step (torch.nn.GRUCell's arguments and parameters): h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__("gru", input_size, hidden_size, bias)


class RNNCell(_Cell):
    """One Elman step (torch.nn.RNNCell's arguments and parameters): h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("rnn", input_size, hidden_size, bias, nonlinearity)
        self.nonlinearity = nonlinearity
