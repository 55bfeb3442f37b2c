"""The compiled CPU kernel of the delta rule: delta_cpu.c beside this file, built on first use by
../native.py and called through ctypes. The recurrence runs in C one (batch, head) pair at a time,
its K x V state in cache, forward and backward (the equations are in the C file's header). On a CPU
it replaces the chunked form, whose per-chunk triangular solves and small products cost more than
the recurrence's own arithmetic at the models' sizes. Its backward is once-differentiable (no
double backward, as for the other C kernels); under torch.no_grad it keeps only the running state,
and with gradients the state every CHECKPOINT steps, (B, H, T / CHECKPOINT, K, V): the backward
rebuilds a chunk's states from its checkpoint (one more forward step each) rather than read a
(B, H, T, K, V) history that costs more to write than to recompute.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .. import native
from .._common import check_qkv, fp32_math, to_work
from .naive import _check_beta

SOURCE = Path(__file__).resolve().with_name("delta_cpu.c")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
CHECKPOINT = 16     # the forward keeps the state every CHECKPOINT steps; the backward rebuilds the rest


@functools.cache
def _native_fns():
    """{dtype: (fwd, bwd)} from the compiled delta_cpu.c, or None when unavailable."""
    return native.fwd_bwd(SOURCE, "delta", _SUFFIX, (6, 9), (6, 12))


def native_available() -> bool:
    """Whether the delta rule runs the compiled CPU kernel here (builds it on the first call)."""
    return _native_fns() is not None


def usable(*tensors) -> bool:
    return native.real_on_cpu(*tensors) and native_available()


class _NativeDelta(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, beta, S0, keep: bool):
        fwd, _ = _native_fns()[q.dtype]
        q, k, v, beta = (t.contiguous() for t in (q, k, v, beta))
        S0 = None if S0 is None else S0.contiguous()
        B, T, H, K = q.shape
        V = v.shape[-1]
        want_grad = keep and any(ctx.needs_input_grad)       # grad mode is off in here: the caller decides
        o, ST = q.new_empty(B, T, H, V), q.new_empty(B, H, K, V)
        C = CHECKPOINT
        states = q.new_empty(B, H, -(-T // C), K, V) if want_grad else None
        work = q.new_empty(K * V + V)
        fwd(B, T, H, K, V, C, *(native.ptr(t) for t in (q, k, v, beta, S0, o, ST, states, work)))
        if want_grad:
            ctx.save_for_backward(q, k, v, beta, states)
            ctx.has_S0 = S0 is not None
        return o, ST

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do, dST):
        q, k, v, beta, states = ctx.saved_tensors
        _, bwd = _native_fns()[q.dtype]
        B, T, H, K = q.shape
        V = v.shape[-1]
        do = do.to(q.dtype).contiguous() if do is not None else q.new_zeros(B, T, H, V)
        dST = None if dST is None else dST.to(q.dtype).contiguous()
        dq, dk, dv, dbeta = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), torch.empty_like(beta)
        dS0 = q.new_empty(B, H, K, V) if ctx.has_S0 else None
        C = CHECKPOINT
        work = q.new_empty(2 * K * V + 3 * V + K + 2 * C * K * V)
        bwd(B, T, H, K, V, C, *(native.ptr(t) for t in (q, k, v, beta, states, do, dST, dq, dk, dv, dbeta, dS0, work)))
        return dq, dk, dv, dbeta, dS0, None


@fp32_math
def delta_rule_native(q, k, v, beta, initial_state=None, output_final_state=False):
    """The delta rule by the compiled CPU kernel; same returns as `delta_rule_ref`."""
    check_qkv(q, k, v)
    _check_beta(q, beta)
    dtype = v.dtype
    keep = native.wants_backward(q, k, v, beta, initial_state)
    qw, kw, vw, bw, S0 = to_work(q, k, v, beta, initial_state)
    o, ST = _NativeDelta.apply(qw, kw, vw, bw, S0, keep)
    return o.to(dtype), (ST if output_final_state else None)
