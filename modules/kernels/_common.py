"""Helpers shared by the kernels: working precision, padding, optional CUDA kernels, the
log-decay segment sums (SSD, gated linear attention), and the input check of linear attention
and the delta rule. Ops share code only through this file and native.py (the one op built on
another, selective_scan, calls the public `scan`)."""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import warnings

import torch


def fp32_math(fn):
    """Run a kernel's torch path with autocast off. These paths cast their inputs to their work
    dtype (fp32; fp64 in the gradient checks) and are written to compute in it; under autocast
    (`train.precision: bf16` on a GPU) the matmuls inside would run in bf16 and meet the fp32
    tensors around them in in-place ops and triangular solves that refuse mixed or bf16 dtypes.
    The caller's autocast resumes for what follows; the result keeps the input dtype as before."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        dev = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        if dev not in ("cpu", "cuda"):
            return fn(*args, **kwargs)
        with torch.autocast(dev, enabled=False):
            return fn(*args, **kwargs)
    return run


def work_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """fp32 (complex64 if anything is complex); fp64 when an input is fp64, so gradcheck
    in double precision really runs in double."""
    ts = [t for t in tensors if t is not None]
    cplx = any(t.is_complex() for t in ts)
    double = any(t.dtype in (torch.float64, torch.complex128) for t in ts)
    if cplx:
        return torch.complex128 if double else torch.complex64
    return torch.float64 if double else torch.float32


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def pad_time(x: torch.Tensor, dim: int, multiple: int) -> torch.Tensor:
    """Zero-pad `dim` up to a multiple of `multiple` (zeros are exact no-ops for these ops:
    a zero key/value/input adds nothing to the state, a zero log-decay keeps it)."""
    extra = -x.shape[dim] % multiple
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def to_chunks(x: torch.Tensor, C: int) -> torch.Tensor:
    """(B, T, H, D) -> (B, H, n, C, D): zero-padded in time to whole chunks of C, heads first,
    contiguous (one copy). The chunked forms of linear attention and SSD share it."""
    x = pad_time(x, 1, C)
    B, T, H, D = x.shape
    return x.view(B, T // C, C, H, D).permute(0, 3, 1, 2, 4).contiguous()


# --- optional CUDA/Triton kernels ----------------------------------------------------------
# Set CLAIMCHECK_TORCH_KERNELS=1 to force the torch paths everywhere (e.g. to compare).
_FORCE_TORCH = os.environ.get("CLAIMCHECK_TORCH_KERNELS", "") == "1"


@functools.cache
def optional_kernel(module: str, name: str):
    """`module.name` from an optional package (mamba_ssm, fla), or None when it is absent or
    fails to import (a broken triton install must not break the torch path)."""
    if _FORCE_TORCH:
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:  # ImportError, or triton/CUDA errors raised at import time
        return None


def on_cuda(*tensors: torch.Tensor | None) -> bool:
    ts = [t for t in tensors if t is not None]
    return bool(ts) and all(t.is_cuda for t in ts)


def chunk_or_default(chunk_size: int | None, *tensors: torch.Tensor | None) -> int:
    """The chunk length of the chunked ops' torch paths when the caller gives none (None): 64 on a
    GPU, 32 on a CPU. On one CPU core the quadratic work inside a chunk dominates, and 32 beat 16
    and 64 for chunked linear attention, its gated form, the delta rule and SSD at B=8, T=1024
    (`python -m bench kernels`). Results do not depend on it beyond rounding."""
    if chunk_size is None:
        return 64 if on_cuda(*tensors) else 32
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    return chunk_size


@functools.cache
def _warn_once(op: str, err: str) -> None:
    warnings.warn(f"{op}: the CUDA kernel failed ({err}); using the torch path instead", stacklevel=3)


def try_kernel(op: str, fn, *args, **kwargs):
    """Call an optional kernel; on any error warn once and return None (caller falls back).
    fla releases that still take `head_first` default it to True in some versions: always ask
    for the [B, T, H, K] layout explicitly."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "head_first" in params:
        kwargs.setdefault("head_first", False)
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # unsupported dtype/shape/version: the torch path is always correct
        _warn_once(op, f"{type(e).__name__}: {e}")
        return None


def segsum(x: torch.Tensor) -> torch.Tensor:
    """segsum(x)[..., i, j] = x[j+1] + ... + x[i] for j <= i, -inf above the diagonal.
    Built from one masked cumsum rather than a difference of cumsums, which would cancel
    catastrophically for long sequences (as in the paper's listing)."""
    T = x.shape[-1]
    x = x[..., None].expand(*x.shape, T)                                 # x[..., i, j] = x_i
    x = x.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1), 0)
    s = x.cumsum(dim=-2)
    return s.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril(), float("-inf"))


# --- linear attention and the delta rule (flash-linear-attention's layout) -------------------

def check_qkv(q, k, v):
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k must be (B, T, H, K) and v (B, T, H, V); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def to_work(*ts):
    """The tensors in their working precision (see `work_dtype`); None stays None."""
    work = work_dtype(*ts)
    return [None if t is None else t.to(work) for t in ts]
