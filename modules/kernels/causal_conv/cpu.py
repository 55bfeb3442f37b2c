"""The compiled CPU kernel of the short causal depthwise convolution: cconv_cpu.c beside this file,
built on first use by ../native.py and called through ctypes, forward and backward, channels last
(no transposes). `causal_conv1d` uses it for real CPU tensors when it builds."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .. import native
from .._common import fp32_math, work_dtype
from .naive import _check

SOURCE = Path(__file__).resolve().with_name("cconv_cpu.c")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


@functools.cache
def _native_fns():
    """{dtype: (fwd, bwd)} from the compiled cconv_cpu.c, or None when it is unavailable."""
    return native.fwd_bwd(SOURCE, "cconv", _SUFFIX, (4, 4), (4, 6))


def native_available() -> bool:
    """Whether `causal_conv1d` runs the compiled CPU kernel here (builds it on the first call)."""
    return _native_fns() is not None


class _NativeCausalConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        fwd, _ = _native_fns()[x.dtype]
        x = x.contiguous()
        Bn, L, C = x.shape
        W = weight.shape[2]
        wT = weight[:, 0].t().contiguous()                                             # (W, C)
        b = None if bias is None else bias.contiguous()
        y = x.new_empty(Bn, L, C)
        fwd(Bn, L, C, W, *(native.ptr(t) for t in (x, wT, b, y)))
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, wT)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, wT = ctx.saved_tensors
        _, bwd = _native_fns()[x.dtype]
        Bn, L, C = x.shape
        W = wT.shape[0]
        dy = dy.to(x.dtype).contiguous()
        dx, dwT = torch.empty_like(x), torch.zeros_like(wT)
        db = x.new_zeros(C) if ctx.has_bias else None
        bwd(Bn, L, C, W, *(native.ptr(t) for t in (x, wT, dy, dx, dwT, db)))
        return dx, dwT.t().reshape(C, 1, W), db


def usable(*tensors) -> bool:
    return native.real_on_cpu(*tensors) and native_available()


@fp32_math
def _causal_conv_native(x, weight, bias=None):
    _check(x, weight, bias)
    dtype, work = x.dtype, work_dtype(x, weight, bias)
    y = _NativeCausalConv.apply(x.to(work), weight.to(work), None if bias is None else bias.to(work))
    return y.to(dtype)
