"""NumPy reference versions of the fused optimizer kernels (nnforge.ops.*_step).

Same signatures and semantics (PyTorch's update rules, float32 in place, lists of
arrays, return False without touching anything when check_finite finds a non-finite
gradient). nn/optim.py uses the compiled kernels when nnforge.ops has them and falls
back to these otherwise; tests use them as a readable statement of each rule.
`step` is the 1-based number of the step being taken.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["adagrad_step", "adam_step", "adamw_step", "clip_coef", "clip_grad_norm", "grad_norm",
           "rmsprop_step", "sgd_step"]

_f32 = np.float32


def grad_norm(grads) -> float:
    """Global L2 norm over all arrays (accumulated in float64)."""
    total = 0.0
    for g in grads:
        flat = g.ravel().astype(np.float64)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_coef(norm: float, max_norm: float, eps: float = 1e-6) -> float:
    """min(1, max_norm / (norm + eps)), as torch.nn.utils.clip_grad_norm_."""
    return min(1.0, float(max_norm) / (float(norm) + eps))


def clip_grad_norm(grads, max_norm: float, *, eps: float = 1e-6) -> float:
    norm = grad_norm(grads)
    coef = clip_coef(norm, max_norm, eps)
    if coef < 1.0:
        for g in grads:
            g *= _f32(coef)
    return norm


def _finite(grads) -> bool:
    return all(np.isfinite(g).all() for g in grads)


def _effective_grad(p, g, grad_scale, maximize, weight_decay):
    d = g * _f32(grad_scale) if grad_scale != 1.0 else g.copy()
    if maximize:
        np.negative(d, out=d)
    if weight_decay:
        d += _f32(weight_decay) * p
    return d


def _finish(grads, zero_grad):
    if zero_grad:
        for g in grads:
            g.fill(0.0)


def sgd_step(params, grads, momentum_buffers=None, *, lr, step, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False, maximize=False, grad_scale=1.0, zero_grad=False, check_finite=False) -> bool:
    if check_finite and not _finite(grads):
        return False
    for i, (p, g) in enumerate(zip(params, grads)):
        d = _effective_grad(p, g, grad_scale, maximize, weight_decay)
        if momentum:
            buf = momentum_buffers[i]
            if step == 1:
                buf[...] = d
            else:
                buf *= _f32(momentum)
                buf += _f32(1.0 - dampening) * d
            d = d + _f32(momentum) * buf if nesterov else buf
        p -= _f32(lr) * d
    _finish(grads, zero_grad)
    return True


def _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1, beta2, eps, weight_decay,
          amsgrad, maximize, grad_scale, zero_grad, check_finite, decoupled) -> bool:
    if check_finite and not _finite(grads):
        return False
    bc1 = 1.0 - beta1 ** step
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    step_size = lr / bc1
    for i, (p, g) in enumerate(zip(params, grads)):
        if decoupled and weight_decay:
            p *= _f32(1.0 - lr * weight_decay)
        d = _effective_grad(p, g, grad_scale, maximize, 0.0 if decoupled else weight_decay)
        m, v = exp_avgs[i], exp_avg_sqs[i]
        m *= _f32(beta1)
        m += _f32(1.0 - beta1) * d
        v *= _f32(beta2)
        v += _f32(1.0 - beta2) * d * d
        if amsgrad:
            np.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
            v = max_exp_avg_sqs[i]
        denom = np.sqrt(v) / _f32(bc2_sqrt) + _f32(eps)
        p -= _f32(step_size) * (m / denom)
    _finish(grads, zero_grad)
    return True


def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None, *, step, lr, beta1=0.9, beta2=0.999,
              eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False, grad_scale=1.0, zero_grad=False,
              check_finite=False) -> bool:
    return _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=step, lr=lr, beta1=beta1,
                 beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                 grad_scale=grad_scale, zero_grad=zero_grad, check_finite=check_finite, decoupled=False)


def adamw_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs=None, *, step, lr, beta1=0.9, beta2=0.999,
               eps=1e-8, weight_decay=0.01, amsgrad=False, maximize=False, grad_scale=1.0, zero_grad=False,
               check_finite=False) -> bool:
    return _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=step, lr=lr, beta1=beta1,
                 beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                 grad_scale=grad_scale, zero_grad=zero_grad, check_finite=check_finite, decoupled=True)


def rmsprop_step(params, grads, square_avgs, momentum_buffers=None, grad_avgs=None, *, lr, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, centered=False, maximize=False, grad_scale=1.0, zero_grad=False,
                 check_finite=False) -> bool:
    if check_finite and not _finite(grads):
        return False
    for i, (p, g) in enumerate(zip(params, grads)):
        d = _effective_grad(p, g, grad_scale, maximize, weight_decay)
        sq = square_avgs[i]
        sq *= _f32(alpha)
        sq += _f32(1.0 - alpha) * d * d
        if centered:
            ga = grad_avgs[i]
            ga *= _f32(alpha)
            ga += _f32(1.0 - alpha) * d
            avg = np.sqrt(sq - ga * ga) + _f32(eps)
        else:
            avg = np.sqrt(sq) + _f32(eps)
        if momentum:
            buf = momentum_buffers[i]
            buf *= _f32(momentum)
            buf += d / avg
            p -= _f32(lr) * buf
        else:
            p -= _f32(lr) * (d / avg)
    _finish(grads, zero_grad)
    return True


def adagrad_step(params, grads, state_sums, *, step, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 maximize=False, grad_scale=1.0, zero_grad=False, check_finite=False) -> bool:
    if check_finite and not _finite(grads):
        return False
    clr = lr / (1.0 + (step - 1) * lr_decay)
    for i, (p, g) in enumerate(zip(params, grads)):
        d = _effective_grad(p, g, grad_scale, maximize, weight_decay)
        s = state_sums[i]
        s += d * d
        p -= _f32(clr) * (d / (np.sqrt(s) + _f32(eps)))
    _finish(grads, zero_grad)
    return True
