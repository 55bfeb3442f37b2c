"""First-order linear recurrence h_t = a_t * h_{t-1} + b_t, elementwise, real or complex.

`scan_ref` is the loop. `scan_parallel` is a log-depth parallel associative scan (odd-even
recursive doubling, a work-efficient Blelloch-style scan written with strided torch views)
with a hand-written backward, which is itself one reverse scan. `scan` is what the models
call: on a CPU it runs the compiled kernel of scan_cpu.c (one pass over time, vectorized
across channels; see native.py) when the machine has a C compiler, and `scan_parallel`
otherwise and on a GPU. A log-depth scan pays ~2 log2(T) memory passes for its parallelism,
which a GPU has the threads to use and a CPU core does not.

The combine rule of the scan is the composition of affine maps,
    (a1, b1) then (a2, b2) = (a2 * a1, a2 * b1 + b2),
which is associative, so pairs of neighbours can be folded in parallel: fold every pair
(2i, 2i+1) into one step, scan the half-length sequence (giving h at odd positions), then
fill in the even positions with one more elementwise step. log2(T) levels, O(T) work.

Layout: (B, T, ...) with time in dim 1; every trailing dim is an independent channel
(e.g. (B, T, D) or (B, T, D, N)). a and b must have the same shape.
"""
from __future__ import annotations

import ctypes
import functools
import math

import torch

from . import native
from ._common import work_dtype

# Below this length the recursion stops and a short loop finishes the job: the python loop
# is cheaper than two more levels of strided kernels (measured on CPU: 16 is a little faster than 4 or 8).
_BASE = 16


def scan_ref(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None):
    """Reference loop for h_t = a_t * h_{t-1} + b_t, with h_{-1} = initial_state (or 0).

    a, b: (B, T, ...) real or complex; initial_state: (B, ...) or None.
    Returns (h, final_state): h (B, T, ...) holds h_t for every t, final_state = h_{T-1}.
    Computed in fp32 (complex64 for complex inputs), returned in the input dtype.
    """
    dtype = torch.promote_types(a.dtype, b.dtype)
    work = work_dtype(a, b, initial_state)
    a, b = a.to(work), b.to(work)
    h = torch.zeros_like(b[:, 0]) if initial_state is None else initial_state.to(work)
    hs = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):  # unbind: one stack in backward, not T scatters
        h = a_t * h + b_t
        hs.append(h)
    return torch.stack(hs, dim=1).to(dtype), h.to(dtype)


def _scan_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, a_scratch: bool, reverse: bool = False) -> None:
    """Write the scan of (a, b) along dim 1 into `out`. No autograd.

    Forward: h_t = a_t * h_{t-1} + b_t from t = 0 (a_0 unused). Reverse:
    h_t = a_t * h_{t+1} + b_t from t = T-1 down (a_{T-1} unused); the backward pass needs it,
    and running it in place beats flipping (torch has no negative strides, flip copies).
    `out` may be `b` itself (in place). When `a_scratch`, `a`'s slots may be overwritten.
    Below the top level everything runs in place on strided views of `out`, so a call
    allocates at most one half-length buffer.
    """
    T = a.shape[1]
    if T <= _BASE:
        first, steps = (T - 1, range(T - 2, -1, -1)) if reverse else (0, range(1, T))
        if out.data_ptr() != b.data_ptr():
            out[:, first] = b[:, first]
        a_, b_, o_ = a.unbind(1), b.unbind(1), out.unbind(1)  # one call for all views, not one per step
        for t in steps:
            torch.addcmul(b_[t], a_[t], o_[t + 1 if reverse else t - 1], out=o_[t])
        return
    n_pairs = T // 2
    # Pair each step with the one before it in scan order: forward (0,1), (2,3), ...;
    # reverse (T-1,T-2), (T-3,T-4), ... `late` is the second of each pair, `early` the first.
    if reverse:
        p = (T - 1) % 2
        late, early = slice(1 - p, T - 1, 2), slice(2 - p, T, 2)
        rest, rest_prev = slice(p, T - 1, 2), slice(p + 1, T, 2)
        first = T - 1
    else:
        late, early = slice(1, 2 * n_pairs, 2), slice(0, 2 * n_pairs, 2)
        rest, rest_prev = slice(2, T, 2), slice(1, T - 1, 2)
        first = 0
    a_late = a[:, late]
    h_late = out[:, late]
    # fold each pair into one step: (a_late * a_early, a_late * b_early + b_late)
    torch.addcmul(b[:, late], a_late, b[:, early], out=h_late)
    a2 = a_late.mul_(a[:, early]) if a_scratch else a_late * a[:, early]
    _scan_into(h_late, a2, h_late, True, reverse)  # h at the second step of every pair
    if out.data_ptr() != b.data_ptr():
        out[:, first] = b[:, first]
    # the remaining steps each follow one that is now done
    torch.addcmul(b[:, rest], a[:, rest], out[:, rest_prev], out=out[:, rest])


def _scan_fwd(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, a_scratch: bool = False) -> torch.Tensor:
    if h0 is not None:
        b = b.clone()
        b[:, 0].addcmul_(a[:, 0], h0)
        _scan_into(b, a, b, a_scratch)
        return b
    out = torch.empty_like(b)
    _scan_into(out, a, b, a_scratch)
    return out


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        h = _scan_fwd(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        # the final state as its own output: its gradient then enters the backward scan directly,
        # instead of autograd scattering it into a zero tensor as big as h and adding that
        return h, h[:, -1].clone()

    @staticmethod
    def backward(ctx, dh, dh_last):
        a, h, h0 = ctx.saved_tensors
        # g_t = dL/dh_t in total = dh_t + conj(a_{t+1}) g_{t+1}: the same recurrence, run backwards
        # (conj because torch's complex gradients are conjugate Wirtinger derivatives).
        a_c = a.conj() if a.is_complex() else a
        g = dh.clone(memory_format=torch.contiguous_format)
        g[:, -1] += dh_last
        if g.shape[1] > 1:
            # g_{T-1} is done; g_t for t < T-1 is the reverse scan of (a_{t+1}, dh_t) seeded by it:
            # fold the seed into g_{T-2}, then scan g[:, :-1] with the view a[:, 1:] (its last slot
            # unused), with no shifted copy of a
            g[:, -2].addcmul_(a_c[:, -1], g[:, -1])
            _scan_into(g[:, :-1], a_c[:, 1:], g[:, :-1], False, reverse=True)
        da = None
        if ctx.needs_input_grad[0]:
            h_c = h.conj() if h.is_complex() else h
            da = torch.empty_like(g)
            torch.mul(g[:, 1:], h_c[:, :-1], out=da[:, 1:])
            if h0 is None:
                da[:, 0] = 0
            else:
                torch.mul(g[:, 0], h0.conj() if h0.is_complex() else h0, out=da[:, 0])
        dh0 = None
        if h0 is not None and ctx.needs_input_grad[2]:
            dh0 = a_c[:, 0] * g[:, 0]
        return da, g, dh0


_NATIVE_SUFFIX = {torch.float32: "f32", torch.float64: "f64", torch.complex64: "c64", torch.complex128: "c128"}


@functools.cache
def _native_fns():
    """{dtype: (fwd, bwd)} from the compiled scan_cpu.c, or None when it is unavailable."""
    lib = native.library("scan_cpu")
    if lib is None:
        return None
    fns = {}
    i64, p = ctypes.c_int64, ctypes.c_void_p
    for dtype, sfx in _NATIVE_SUFFIX.items():
        fwd, bwd = getattr(lib, f"scan_fwd_{sfx}"), getattr(lib, f"scan_bwd_{sfx}")
        fwd.argtypes, fwd.restype = [i64, i64, i64, p, p, p, p], None
        bwd.argtypes, bwd.restype = [i64, i64, i64, p, p, p, p, p, p, p, p], None
        fns[dtype] = (fwd, bwd)
    return fns


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


def _prepare(name, a, b, initial_state):
    if a.shape != b.shape:
        raise ValueError(f"{name}: a {tuple(a.shape)} and b {tuple(b.shape)} must have the same shape")
    if a.dim() < 2:
        raise ValueError(f"{name}: a and b must be (B, T, ...) with time in dim 1; got shape {tuple(a.shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    work = work_dtype(a, b, initial_state)
    h0 = None if initial_state is None else initial_state.to(work)
    if h0 is not None and h0.shape != a.shape[:1] + a.shape[2:]:
        raise ValueError(f"{name}: initial_state must be {tuple(a.shape[:1] + a.shape[2:])} (a without its time dim); "
                         f"got {tuple(h0.shape)}")
    return a.to(work), b.to(work), h0, dtype


def scan_parallel(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None):
    """The log-depth torch scan for h_t = a_t * h_{t-1} + b_t; same signature and returns as `scan_ref`."""
    a, b, h0, dtype = _prepare("scan_parallel", a, b, initial_state)
    h, h_last = _Scan.apply(a, b, h0)
    return h.to(dtype), h_last.to(dtype)


def scan(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None):
    """Fast scan for h_t = a_t * h_{t-1} + b_t; same signature and returns as `scan_ref`.
    The compiled CPU kernel for CPU tensors when it is available, else `scan_parallel`."""
    a, b, h0, dtype = _prepare("scan", a, b, initial_state)
    use_native = (a.device.type == "cpu" and b.device.type == "cpu" and (h0 is None or h0.device.type == "cpu")
                  and a.numel() > 0 and native_available())
    h, h_last = (_NativeScan if use_native else _Scan).apply(a, b, h0)
    return h.to(dtype), h_last.to(dtype)
