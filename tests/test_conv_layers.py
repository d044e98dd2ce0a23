"""CNN layers (nnforge.nn Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool2d, BatchNorm2d):
forward vs float64 NumPy references, backward (input and parameter gradients, and
their accumulation) vs central differences of those references in float64,
train/eval for BatchNorm2d, state_dict round trips, wrong shapes, torch agreement."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import nnforge
from nnforge import nn

import conv_reference as cref
import nn_reference as ref
import pool_reference as pref
from layer_check import check_layer, randn
from nn_reference import EPS32, assert_close, f64


# --- Conv2d -------------------------------------------------------------------------------
CONV_CASES = [  # (N, C, H, W, K, kernel, stride, padding, dilation, groups)
    (2, 3, 5, 6, 4, 3, 1, 1, 1, 1),
    (1, 2, 7, 5, 3, (3, 2), (2, 1), (1, 0), 1, 1),
    (2, 4, 6, 6, 6, 3, 1, 2, 2, 2),
    (3, 1, 4, 5, 2, 1, 1, 0, 1, 1),
    (1, 4, 5, 5, 4, 3, 2, (0, 1, 1, 2), 1, 4),
]


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(rng, case, bias, activation):
    n, c, h, w, k, ks, st, pad, dil, g = case
    layer = nn.Conv2d(c, k, ks, stride=st, padding=pad, dilation=dil, groups=g, bias=bias, activation=activation)

    def f(xv, p):
        return cref.conv2d_ref(xv, p["weight"], p.get("bias"), st, pad, dil, g, activation)

    x = randn(rng, n, c, h, w)
    red = (c // g) * layer.kernel_size[0] * layer.kernel_size[1]
    check_layer(layer, x, f, rng, red)


def test_conv2d_first_layer_skips_input_grad(rng):
    layer = nn.Conv2d(2, 3, 3, padding=1)
    layer.needs_input_grad = False
    x = randn(rng, 2, 2, 5, 5)
    y = layer.forward(x)
    assert layer.backward(np.ones_like(y)) is None
    assert np.abs(layer.weight.grad).sum() > 0


def test_conv2d_init_like_torch_and_seeded():
    nnforge.seed(3)
    a = nn.Conv2d(6, 8, (3, 5), groups=2)
    nnforge.seed(3)
    b = nn.Conv2d(6, 8, (3, 5), groups=2)
    assert a.weight.shape == (8, 3, 3, 5) and a.bias.shape == (8,)
    assert np.array_equal(a.weight.data, b.weight.data) and np.array_equal(a.bias.data, b.bias.data)
    bound = 1 / math.sqrt(3 * 3 * 5)  # kaiming_uniform(a=sqrt(5)) gives 1/sqrt(fan_in) like the bias
    for p in (a.weight.data, a.bias.data):
        assert np.abs(p).max() <= bound
    assert np.abs(a.weight.data).max() > 0.8 * bound  # uniform over the whole range
    assert abs(float(a.weight.data.std()) - bound / math.sqrt(3)) < 0.15 * bound


def test_conv2d_bad_inputs(rng):
    layer = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d expected input of shape \(N, 3, H, W\), got \(2, 4, 5, 5\)"):
        layer.forward(randn(rng, 2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(3, 5, 5\)"):
        layer.forward(randn(rng, 3, 5, 5))
    with pytest.raises(TypeError, match="float32"):
        layer.forward(randn(rng, 2, 3, 5, 5).astype(np.float64))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((2, 4, 3, 3), np.float32))
    layer.forward(randn(rng, 2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 4, 3, 3\)"):
        layer.backward(np.zeros((2, 4, 3, 2), np.float32))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="activation"):
        nn.Conv2d(3, 4, 3, activation="tanh")
    with pytest.raises(TypeError, match="kernel_size"):
        nn.Conv2d(3, 4, 2.5)
    # nnforge._args convention: a wrong length or value is a ValueError, a wrong type a TypeError
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints, got \(3,\)"):
        nn.Conv2d(3, 4, (3,))
    with pytest.raises(ValueError, match="kernel_size must be >= 1, got 0"):
        nn.Conv2d(3, 4, (3, 0))


# --- pooling --------------------------------------------------------------------------------
POOL_CASES = [  # (N, C, H, W, kernel, stride, padding, ceil_mode)
    (2, 3, 6, 7, 2, None, 0, False),
    (1, 2, 7, 5, 3, 2, 1, True),
    (2, 1, 5, 9, (2, 3), (1, 2), (1, 1), False),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_layer(rng, case):
    n, c, h, w, k, s, p, ceil = case
    layer = nn.MaxPool2d(k, s, p, ceil_mode=ceil)
    x = randn(rng, n, c, h, w)
    check_layer(layer, x, lambda xv, _: pref.max_pool2d(xv, k, s, p, ceil)[0], rng, 4)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool2d_layer(rng, case, count_include_pad):
    n, c, h, w, k, s, p, ceil = case
    layer = nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad)
    x = randn(rng, n, c, h, w)
    check_layer(layer, x, lambda xv, _: pref.avg_pool2d(xv, k, s, p, ceil, count_include_pad), rng, 9)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 1), (3, 2, 7, 3)])
def test_global_avg_pool2d_layer(rng, shape):
    layer = nn.GlobalAvgPool2d()
    x = randn(rng, *shape)
    check_layer(layer, x, lambda xv, _: xv.mean(axis=(2, 3)), rng, shape[2] * shape[3])


def test_pool_layers_bad_inputs(rng):
    with pytest.raises(ValueError, match=r"MaxPool2d expected input of shape \(N, C, H, W\), got \(3, 4\)"):
        nn.MaxPool2d(2).forward(randn(rng, 3, 4))
    with pytest.raises(ValueError, match=r"kernel_size \(5, 5\) is larger than the padded input \(4, 4\)"):
        nn.AvgPool2d(5).forward(randn(rng, 1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"GlobalAvgPool2d expected input of shape \(N, C, H, W\)"):
        nn.GlobalAvgPool2d().forward(randn(rng, 2, 3, 4))
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        nn.MaxPool2d((2, 2, 2))
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        nn.MaxPool2d(2.0)
    layer = nn.MaxPool2d(2)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 1, 2, 2), np.float32))
    layer.forward(randn(rng, 1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"grad_out of shape \(1, 1, 2, 2\)"):
        layer.backward(np.zeros((1, 1, 2, 3), np.float32))


# --- BatchNorm2d ------------------------------------------------------------------------------
def batch_norm2d_ref(x, p):
    # statistics per channel over (N, H, W): move C last and reuse the (M, C) reference
    n, c, h, w = x.shape
    flat = np.moveaxis(x, 1, -1).reshape(-1, c)
    y = ref.batch_norm_train(flat, p.get("weight"), p.get("bias"))[0]
    return np.moveaxis(y.reshape(n, h, w, c), -1, 1)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm2d_training(rng, affine):
    layer = nn.BatchNorm2d(3, momentum=0.2, affine=affine)
    if affine:
        layer.weight.data[:] = randn(rng, 3)
        layer.bias.data[:] = randn(rng, 3)
    x = randn(rng, 2, 3, 4, 5, scale=2.0) + 3.0
    check_layer(layer, x, batch_norm2d_ref, rng, 40)
    flat = np.moveaxis(f64(x), 1, -1).reshape(-1, 3)
    mean, var = flat.mean(0), flat.var(0)
    m = flat.shape[0]
    want_mean = (1 - 0.8 ** 2) * mean  # two training forwards in check_layer
    want_var = 0.8 ** 2 + (1 - 0.8 ** 2) * var * m / (m - 1)
    assert_close(layer.running_mean, want_mean, 64 * EPS32 * (1 + np.abs(want_mean)), "running_mean")
    assert_close(layer.running_var, want_var, 64 * EPS32 * (1 + want_var), "running_var")


def test_batch_norm2d_eval_and_state_dict(rng):
    layer = nn.BatchNorm2d(4)
    x = randn(rng, 3, 4, 5, 6) * 2 + 1
    for _ in range(3):
        y_train = layer.forward(x)
    layer.eval()
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    xe = randn(rng, 2, 4, 3, 3)
    y = layer.forward(xe)
    assert np.array_equal(layer.running_mean, rm) and np.array_equal(layer.running_var, rv)
    want = (f64(xe) - rm[:, None, None]) / np.sqrt(f64(rv)[:, None, None] + 1e-5)
    assert_close(y, want, 16 * EPS32 * (1 + np.abs(want)), "eval forward")
    dy = randn(rng, 2, 4, 3, 3)
    assert_close(layer.backward(dy), f64(dy) / np.sqrt(f64(rv)[:, None, None] + 1e-5),
                 16 * EPS32 * (1 + np.abs(dy)), "eval dx")
    # eval differs from train mode on the same batch (running stats are not batch stats)
    layer.train()
    assert not np.allclose(layer.forward(x), layer.eval().forward(x))
    sd = layer.state_dict()
    assert set(sd) == {"weight", "bias", "running_mean", "running_var"}
    other = nn.BatchNorm2d(4).eval()
    other.load_state_dict(sd)
    assert np.array_equal(other.forward(xe), layer.forward(xe))
    assert y_train.shape == x.shape
    with pytest.raises(ValueError, match=r"BatchNorm2d expected input of shape \(N, 4, \*, \*\), got \(3, 4\)"):
        layer.forward(randn(rng, 3, 4))
    with pytest.raises(ValueError, match=r"\(N, 4, \*, \*\), got \(2, 3, 5, 5\)"):
        layer.forward(randn(rng, 2, 3, 5, 5))


# --- a small CNN: state_dict, summary, torch agreement ---------------------------------------
def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, activation="relu"), nn.BatchNorm2d(4), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=True),
                         nn.Conv2d(6, 8, 1), nn.GlobalAvgPool2d(), nn.Linear(8, 5))


def test_cnn_state_dict_round_trip_and_summary(rng):
    nnforge.seed(1)
    a = small_cnn()
    nnforge.seed(2)
    b = small_cnn()
    x = randn(rng, 3, 1, 9, 9)
    a.forward(x)  # moves BatchNorm running stats
    a.eval()
    b.eval()
    assert not np.array_equal(a.forward(x), b.forward(x))
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.forward(x), b.forward(x))
    assert "1.running_mean" in a.state_dict()
    text = a.summary((1, 9, 9), print_fn=None)
    assert "(None, 4, 9, 9)" in text and "(None, 6, 2, 2)" in text and "(None, 5)" in text


def _kinks_clear(torch, tm, x, margin):
    """True when no ReLU input of `tm` is within `margin` of 0 and no 2x2 max-pool
    window's two largest values are within `margin` of each other. Exact ties (ReLU
    zeros through BatchNorm) are equal in float32 too and resolve the same way.
    Runs on a copy: train-mode BatchNorm would move the real model's running stats."""
    h = torch.from_numpy(x)
    with torch.no_grad():
        for layer in copy.deepcopy(tm):
            if isinstance(layer, torch.nn.ReLU) and bool((h.abs() < margin).any()):
                return False
            if isinstance(layer, torch.nn.MaxPool2d):
                n, c, hh, ww = h.shape
                win = h[:, :, :hh // 2 * 2, :ww // 2 * 2].reshape(n, c, hh // 2, 2, ww // 2, 2)
                top2 = win.permute(0, 1, 2, 4, 3, 5).reshape(n, c, hh // 2, ww // 2, 4).topk(2, dim=-1).values
                gap = top2[..., 0] - top2[..., 1]
                if bool(((gap > 0) & (gap < margin)).any()):
                    return False
            h = layer(h)
    return True


def test_cnn_agrees_with_torch(rng):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    nnforge.seed(5)
    model = small_cnn()
    tm = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.ReLU(), tnn.BatchNorm2d(4), tnn.MaxPool2d(2),
                        tnn.Conv2d(4, 6, 3, padding=1), tnn.ReLU(), tnn.AvgPool2d(2, ceil_mode=True),
                        tnn.Conv2d(6, 8, 1), tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(8, 5)).double()
    pairs = [(0, 0), (1, 2), (3, 4), (6, 7), (8, 10)]
    with torch.no_grad():
        for i, j in pairs:
            ours, theirs = model[i], tm[j]
            w = f64(ours.weight.data)
            theirs.weight.copy_(torch.from_numpy(w.T.copy() if isinstance(ours, nn.Linear) else w))
            theirs.bias.copy_(torch.from_numpy(f64(ours.bias.data)))
    # float32 vs float64 can only disagree beyond rounding where a ReLU input sits
    # within rounding of 0 or a max-pool window's top two values tie; redraw x until
    # every kink is at least `margin` away (a clean draw is the usual case).
    for _ in range(100):
        x = randn(rng, 4, 1, 11, 10)
        if _kinks_clear(torch, tm, f64(x), margin=1e-4):
            break
    else:
        pytest.fail("no input draw kept the ReLU/max-pool kinks clear of rounding")
    tx = torch.from_numpy(f64(x)).requires_grad_(True)
    ty = tm(tx)
    y = model.forward(x)
    assert_close(y, ty.detach().numpy(), 1e-4 * (1 + np.abs(ty.detach().numpy())), "forward vs torch")
    dy = randn(rng, *y.shape)
    ty.backward(torch.from_numpy(f64(dy)))
    dx = model.backward(dy)
    assert_close(dx, tx.grad.numpy(), 1e-4 * (1 + np.abs(tx.grad.numpy()).max()), "dx vs torch")
    for i, j in pairs:
        g = model[i].weight.grad
        tg = tm[j].weight.grad.numpy()
        tg = tg.T if isinstance(model[i], nn.Linear) else tg
        assert_close(g, tg, 1e-4 * (1 + np.abs(tg).max()), f"layer {i} dW vs torch")
        assert_close(model[i].bias.grad, tm[j].bias.grad.numpy(), 1e-4 * (1 + np.abs(tm[j].bias.grad.numpy()).max()),
                     f"layer {i} db vs torch")
    tm.eval()
    model.eval()
    assert_close(model.forward(x), tm(tx).detach().numpy(), 1e-4 * (1 + np.abs(ty.detach().numpy())),
                 "eval forward vs torch")


def test_bench_train_cnn_case_matches_its_model():
    from nnforge.bench import train as bench_train
    case = bench_train.CASES["cnn"]
    nnforge.seed(0)
    model = case.build_nnforge()
    x = np.zeros((2, *case.input_shape), np.float32)
    assert model.forward(x).shape == (2, case.num_classes)
    # FLOPs counted from the layers themselves: forward 2*MACs; backward dW + dX, no dX for layer 0
    fwd, first = 0, None
    for layer in model:
        y = layer.forward(x)
        if isinstance(layer, nn.Conv2d):
            k, c, r, s = layer.weight.shape
            macs = k * c * r * s * y.shape[2] * y.shape[3]
        elif isinstance(layer, nn.Linear):
            macs = layer.in_features * layer.out_features
        else:
            macs = 0
        first = 2 * macs if first is None else first
        fwd += 2 * macs
        x = y
    assert case.flops_per_sample == 3 * fwd - first
    assert (case.n_samples, case.batch_size, case.input_shape) == (6_400, 64, (1, 28, 28))
    torch = pytest.importorskip("torch")
    tm = case.build_torch(torch)
    assert sum(p.numel() for p in tm.parameters()) == model.num_parameters()
