"""The compiled CPU kernel of the scan: scan_cpu.c beside this file, built on first use by
../native.py and called through ctypes. One pass over time per batch row, vectorized across
channels, with a fused one-pass backward; `scan` uses it for CPU tensors when it builds.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from .. import native

# the C source, found beside this file (pyproject.toml ships it as package data of modules.kernels.scan)
SOURCE = Path(__file__).resolve().with_name("scan_cpu.c")

_NATIVE_SUFFIX = {torch.float32: "f32", torch.float64: "f64", torch.complex64: "c64", torch.complex128: "c128"}


@functools.cache
def _native_fns():
    """{dtype: (fwd, bwd)} from the compiled scan_cpu.c, or None when it is unavailable."""
    return native.fwd_bwd(SOURCE, "scan", _NATIVE_SUFFIX, (3, 4), (3, 8))


def native_available() -> bool:
    """Whether `scan` runs the compiled CPU kernel here (builds it on the first call)."""
    return _native_fns() is not None


def _dims(x: torch.Tensor) -> tuple[int, int, int]:
    """(B, L, C) of the kernel's contiguous layout: every trailing dim is one channel axis."""
    return x.shape[0], x.shape[1], math.prod(x.shape[2:])


class _NativeScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        fwd, _ = _native_fns()[a.dtype]
        a, b = a.contiguous(), b.contiguous()
        h0 = None if h0 is None else h0.contiguous()
        h = torch.empty_like(b, memory_format=torch.contiguous_format)
        fwd(*_dims(b), native.ptr(a), native.ptr(b), native.ptr(h0), native.ptr(h))
        ctx.save_for_backward(a, h, h0)
        return h, h[:, -1].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh, dh_last):
        a, h, h0 = ctx.saved_tensors
        _, bwd = _native_fns()[a.dtype]
        dh = dh.to(a.dtype).contiguous()
        dh_last = dh_last.to(a.dtype).contiguous()
        g = torch.empty_like(h)
        da = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        dh0 = torch.empty_like(h0) if h0 is not None and ctx.needs_input_grad[2] else None
        bwd(*_dims(h), native.ptr(a), native.ptr(h), native.ptr(h0), native.ptr(dh), native.ptr(dh_last),
            native.ptr(g), native.ptr(da), native.ptr(dh0))
        return da, g, dh0
