"""The compiled CPU kernel of the real selective scan: sscan_cpu.c beside this file, built on first
use by ../native.py and called through ctypes. Torch computes Delta (bias, softplus), x = Delta u,
the D skip and the z gate, and their gradients; the kernel computes exp(Delta A), the recurrence
and the readout <C, h>, and their fused reverse pass (the gradients of Delta, A, x, B, C and the
initial state), without building any (B, L, D, N) tensor but the states the backward reads.
`selective_scan` uses it for real CPU tensors when it builds.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .. import native
from .._common import fp32_math
from .naive import _finish, _prepare

# the C source, found beside this file (pyproject.toml ships it as package data)
SOURCE = Path(__file__).resolve().with_name("sscan_cpu.c")
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_CHUNK = 256     # time steps per kernel call: bounds the (B, chunk, D, N) states kept for the backward


@functools.cache
def _native_fns():
    """{dtype: (fwd, bwd)} from the compiled sscan_cpu.c, or None when it is unavailable."""
    return native.fwd_bwd(SOURCE, "sscan", _SUFFIX, (6, 10), (6, 16))


def native_available() -> bool:
    """Whether `selective_scan` runs the compiled CPU kernel here (builds it on the first call)."""
    return _native_fns() is not None


class _NativeSelectiveScan(torch.autograd.Function):
    """(Delta (B, L, D), A^T (N, D), x = Delta u (B, L, D), B (B, L, GB, N), C (B, L, GC, N),
    h0 (B, N, D) or None) -> (y (B, L, D), final state (B, N, D)): channels last, the kernel's
    vectorized axis."""

    @staticmethod
    def forward(ctx, dt, A, x, Bm, Cm, h0):
        fwd, _ = _native_fns()[dt.dtype]
        dt, A, x, Bm, Cm = (t.contiguous() for t in (dt, A, x, Bm, Cm))
        h0 = None if h0 is None else h0.contiguous()
        Bn, L, D = dt.shape
        N = A.shape[0]
        want_grad = any(ctx.needs_input_grad)
        hs = dt.new_empty(Bn, L, N, D) if want_grad else None
        y = dt.new_empty(Bn, L, D)
        hT = dt.new_empty(Bn, N, D)
        work = dt.new_empty(D * N)
        fwd(Bn, L, D, N, Bm.shape[2], Cm.shape[2],
            *(native.ptr(t) for t in (dt, A, x, Bm, Cm, h0, y, hs, hT, work)))
        if want_grad:
            ctx.save_for_backward(dt, A, x, Bm, Cm, h0, hs)
        return y, hT

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dhT):
        dt, A, x, Bm, Cm, h0, hs = ctx.saved_tensors
        _, bwd = _native_fns()[dt.dtype]
        Bn, L, D = dt.shape
        N = A.shape[0]
        dy = dy.to(dt.dtype).contiguous()
        dhT = dhT.to(dt.dtype).contiguous()
        ddt, dx = torch.empty_like(dt), torch.empty_like(x)
        dA, dB, dC = torch.zeros_like(A), torch.zeros_like(Bm), torch.zeros_like(Cm)
        dh0 = torch.empty_like(h0) if h0 is not None and ctx.needs_input_grad[5] else None
        work = dt.new_zeros(2 * D * N)
        bwd(Bn, L, D, N, Bm.shape[2], Cm.shape[2],
            *(native.ptr(t) for t in (dt, A, x, Bm, Cm, h0, hs, dy, dhT, ddt, dA, dx, dB, dC, dh0, work)))
        return ddt, dA, dx, dB, dC, dh0


def usable(u, A, B, C, initial_state) -> bool:
    """Real inputs on the CPU, and the kernel built."""
    return native.real_on_cpu(u, A, B, C, initial_state) and u.numel() > 0 and native_available()


@fp32_math
def _selective_scan_native(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                           output_final_state, chunk_size=_CHUNK):
    dtype_in = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    if u.dtype not in _SUFFIX:
        u, delta, A, B, C = (t.float() for t in (u, delta, A, B, C))
    L = u.shape[2]
    dt = delta.transpose(1, 2)                                                         # (B, L, D)
    x = dt * u.transpose(1, 2)                                                         # (B, L, D)
    Bt = (B.unsqueeze(1) if B.dim() == 3 else B).permute(0, 3, 1, 2)                   # (B, L, GB, N)
    Ct = (C.unsqueeze(1) if C.dim() == 3 else C).permute(0, 3, 1, 2)                   # (B, L, GC, N)
    h = None if initial_state is None else initial_state.to(A.dtype).transpose(1, 2)  # (B, N, D)
    At = A.t()                                                                         # (N, D)
    ys = []
    for s in range(0, L, chunk_size):
        sl = slice(s, s + chunk_size)
        y, h = _NativeSelectiveScan.apply(dt[:, sl], At, x[:, sl], Bt[:, sl], Ct[:, sl], h)
        ys.append(y)
    y = (ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)).transpose(1, 2)             # (B, D, L)
    return _finish(y, u, D, z, dtype_in), (h.transpose(1, 2) if output_final_state else None)
