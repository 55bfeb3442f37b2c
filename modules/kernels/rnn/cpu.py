"""The compiled CPU kernels of the Elman and GRU recurrences: rnn_cpu.c beside this file, built on
first use by ../native.py and called through ctypes. The whole time loop runs in C (the recurrent
product and the gates), forward and backward; torch forms the weight gradients from the kernel's
per-step gradients in one matmul. `elman_recurrence` and `gru_recurrence` use them for CPU tensors
when they build. Their backward is once-differentiable (no double backward, as for the scans' and
the LSTM's kernels); under torch.no_grad they keep nothing for one.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .. import native
from .._common import fp32_math, work_dtype
from .naive import _check

SOURCE = Path(__file__).resolve().with_name("rnn_cpu.c")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_ACT = {"tanh": 0, "relu": 1, "linear": 2}     # rnn_cpu.c's ACT_* codes


@functools.cache
def _native_fns():
    """{"elman" | "gru": {dtype: (fwd, bwd)}} from the compiled rnn_cpu.c, or None when unavailable."""
    elman = native.fwd_bwd(SOURCE, "elman", _SUFFIX, (4, 5), (4, 7))
    gru = native.fwd_bwd(SOURCE, "gru", _SUFFIX, (4, 7), (4, 10))
    return None if elman is None or gru is None else {"elman": elman, "gru": gru}


def native_available() -> bool:
    """Whether the recurrences run the compiled CPU kernels here (builds them on the first call)."""
    return _native_fns() is not None


def _prev(ys: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """The state each step starts from: h0 (or zeros), then the outputs but the last; (B, T, H)."""
    first = ys.new_zeros(ys.shape[0], 1, ys.shape[2]) if h0 is None else h0[:, None]
    return torch.cat([first, ys[:, :-1]], dim=1)


class _NativeElman(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, h0, act: int, keep: bool):
        fwd, _ = _native_fns()["elman"][u.dtype]
        u, R = u.contiguous(), R.contiguous()
        h0 = None if h0 is None else h0.contiguous()
        Bn, L, H = u.shape
        ys = u.new_empty(Bn, L, H)
        work = u.new_empty(2 * native.ROW_BLOCK * H)
        RT = R.t().contiguous()            # held here: a temporary would be freed before the call reads it
        fwd(Bn, L, H, act, *(native.ptr(t) for t in (u, RT, h0, ys, work)))
        ctx.act = act
        if keep:
            ctx.save_for_backward(R, h0, ys)
        return ys

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dys):
        R, h0, ys = ctx.saved_tensors
        _, bwd = _native_fns()["elman"][R.dtype]
        Bn, L, H = ys.shape
        dys = dys.to(R.dtype).contiguous()
        dpre, dh0, work = ys.new_empty(Bn, L, H), ys.new_empty(Bn, H), ys.new_empty(native.ROW_BLOCK * H)
        bwd(Bn, L, H, ctx.act, *(native.ptr(t) for t in (R, ys, dys, None, dpre, dh0, work)))
        dR = dpre.reshape(-1, H).t() @ _prev(ys, h0).reshape(-1, H) if ctx.needs_input_grad[1] else None
        return dpre, dR, dh0 if h0 is not None and ctx.needs_input_grad[2] else None, None, None


class _NativeGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, R, bR, h0, keep: bool):
        fwd, _ = _native_fns()["gru"][u.dtype]
        u, R, bR = u.contiguous(), R.contiguous(), bR.contiguous()
        h0 = None if h0 is None else h0.contiguous()
        Bn, L, H3 = u.shape
        H = H3 // 3
        want_grad = keep and any(ctx.needs_input_grad)    # keep: see _NativeLSTM (grad mode is off in here)
        ys = u.new_empty(Bn, L, H)
        acts = u.new_empty(Bn, L, 4, H) if want_grad else None    # what the backward reads, kept only for it
        work = u.new_empty((4 + 4 * native.ROW_BLOCK) * H)
        RT = R.t().contiguous()
        fwd(Bn, L, H, 0, *(native.ptr(t) for t in (u, RT, bR, h0, ys, acts, work)))
        if want_grad:
            ctx.save_for_backward(R, h0, ys, acts)
        return ys

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dys):
        R, h0, ys, acts = ctx.saved_tensors
        _, bwd = _native_fns()["gru"][R.dtype]
        Bn, L, H = ys.shape
        dys = dys.to(R.dtype).contiguous()
        du, da = ys.new_empty(Bn, L, 3 * H), ys.new_empty(Bn, L, 3 * H)
        dh0, work = ys.new_empty(Bn, H), ys.new_zeros((native.ROW_BLOCK + 1) * H)
        bwd(Bn, L, H, 0, *(native.ptr(t) for t in (R, h0, ys, acts, dys, None, du, da, dh0, work)))
        da2 = da.reshape(-1, 3 * H)
        dR = da2.t() @ _prev(ys, h0).reshape(-1, H) if ctx.needs_input_grad[1] else None  # (3H, H)
        dbR = da2.sum(0) if ctx.needs_input_grad[2] else None
        return du, dR, dbR, dh0 if h0 is not None and ctx.needs_input_grad[3] else None, None


def usable(*tensors) -> bool:
    return native.real_on_cpu(*tensors) and native_available()


@fp32_math
def _elman_native(u, R, h0=None, act: str = "tanh"):
    """act: tanh, relu or linear (_ACT)."""
    _check(u, R, h0, 1)
    dtype, work = u.dtype, work_dtype(u, R, h0)
    ys = _NativeElman.apply(u.to(work), R.to(work), None if h0 is None else h0.to(work), _ACT[act],
                            native.wants_backward(u, R, h0))
    return ys.to(dtype), ys[:, -1].to(dtype)


@fp32_math
def _gru_native(u, R, bR, h0=None):
    _check(u, R, h0, 3)
    dtype, work = u.dtype, work_dtype(u, R, bR, h0)
    ys = _NativeGRU.apply(u.to(work), R.to(work), bR.to(work), None if h0 is None else h0.to(work),
                          native.wants_backward(u, R, bR, h0))
    return ys.to(dtype), ys[:, -1].to(dtype)
