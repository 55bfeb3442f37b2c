"""Selective scan (Mamba's S6), with mamba-ssm's shapes and conventions.

Per channel d and state n, with Delta = softplus(delta + delta_bias) (when asked):
    h_t = exp(Delta_t A) * h_{t-1} + Delta_t B_t u_t        (ZOH for A, Euler for B)
    y_t = <C_t, h_t> + D u_t,   out_t = y_t * silu(z_t)
Shapes (mamba-ssm's `selective_scan_fn`): u, delta, z: (B, D, L); A: (D, N) real or complex;
B, C: (B, N, L), or (B, G, N, L) with D divisible by G (channel d reads group d // (D/G));
D, delta_bias: (D,); state (B, D, N). With complex A, B and C are complex tensors and
y = 2 Re<C, h> (the conjugate pair is implicit, as in mamba); mamba's packed real (B, N, 2L)
form of complex B/C is not accepted.

`selective_scan` runs mamba-ssm's CUDA kernel when it is importable and the inputs are on
a GPU (without an initial state, which that kernel does not take), else a chunked torch path:
time is cut into chunks; in each, the discretized (B, chunk, D, N) tensors are built and
scanned with the parallel scan, carrying the state between chunks. Chunking keeps the
big (D, N)-wide temporaries small enough to stay in cache (measured 4x faster than
materializing all L at once on CPU, and under a tenth of the memory).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import on_cuda, optional_kernel, real_dtype, try_kernel, work_dtype
from .scan import scan

_CHUNK = 64


def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    work = work_dtype(u, delta, A, B, C)  # fp32, or complex64 for A, B, C when A is complex
    real = real_dtype(work)
    u, delta = u.to(real), delta.to(real)
    A, B, C = (t.to(work if t.is_complex() else real) for t in (A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(delta.dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return u, delta, A, B, C


def _check(u, delta, A, B, C):
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"selective_scan: u and delta must be (B, D, L) and equal; got {tuple(u.shape)}, {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != u.shape[1]:
        raise ValueError(f"selective_scan: A must be (D, N) with D={u.shape[1]}; got {tuple(A.shape)}")
    for name, M in (("B", B), ("C", C)):
        if M.dim() not in (3, 4) or M.shape[-2] != A.shape[1] or M.shape[-1] != u.shape[2]:
            raise ValueError(f"selective_scan: {name} must be (B, N, L) or (B, G, N, L); got {tuple(M.shape)}")
        if M.dim() == 4 and u.shape[1] % M.shape[1]:
            raise ValueError(f"selective_scan: D={u.shape[1]} is not divisible by {name}'s groups G={M.shape[1]}")


def _finish(y, u, D, z, dtype_in):
    out = y if D is None else y + u * D.to(u.dtype)[:, None]
    if z is not None:
        out = out * F.silu(z.to(out.dtype))
    return out.to(dtype_in)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       initial_state=None, output_final_state=False):
    """Reference loop (mamba's selective_scan_ref), fp32:
        h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,   y_t = C_t h_t + D u_t,   out = y * silu(z)
    Returns (out (B, D, L), final_state (B, D, N) or None)."""
    _check(u, delta, A, B, C)
    dtype_in = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim = u.shape[:2]
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    if B.dim() == 3:
        dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    else:
        B = B.repeat_interleave(dim // B.shape[1], dim=1)  # (B, D, N, L)
        dBu = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    if C.dim() == 4:
        C = C.repeat_interleave(dim // C.shape[1], dim=1)
    h = dA.new_zeros(batch, dim, A.shape[1]) if initial_state is None else initial_state.to(dA.dtype)
    ys = []
    for dA_t, dBu_t, C_t in zip(dA.unbind(2), dBu.unbind(2), C.unbind(-1)):
        h = dA_t * h + dBu_t
        y = torch.einsum("bdn,bn->bd", h, C_t) if C_t.dim() == 2 else torch.einsum("bdn,bdn->bd", h, C_t)
        ys.append(2 * y.real if y.is_complex() else y)
    out = _finish(torch.stack(ys, dim=2), u, D, z, dtype_in)
    return out, (h if output_final_state else None)


def _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                          output_final_state, chunk_size=_CHUNK):
    dtype_in = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, L = u.shape
    N = A.shape[1]
    # time-major and contiguous, (B, L, D) and B/C (B, L, G, N) with G=1 for the shared case, so
    # the (B, chunk, D, N) products come out time-major too (elementwise ops follow their
    # inputs' layout) and the scan's strided time slices stay vectorizable
    dt = delta.transpose(1, 2).contiguous()
    dtu = (dt * u.transpose(1, 2)).contiguous()
    Bt = (B.unsqueeze(1) if B.dim() == 3 else B).permute(0, 3, 1, 2).contiguous()
    Ct = (C.unsqueeze(1) if C.dim() == 3 else C).permute(0, 3, 1, 2).contiguous()
    gB, gC = Bt.shape[2], Ct.shape[2]
    h = None if initial_state is None else initial_state.to(A.dtype)
    ys = []
    for s in range(0, L, chunk_size):
        sl = slice(s, s + chunk_size)
        n = dt[:, sl].shape[1]
        dA = torch.exp(dt[:, sl, :, None] * A)                                          # (B, n, D, N)
        dBu = (dtu[:, sl].view(batch, n, gB, dim // gB, 1) * Bt[:, sl, :, None]).view(batch, n, dim, N)
        hs, h = scan(dA, dBu, h)                                                        # (B, n, D, N)
        y = torch.einsum("blgdn,blgn->blgd", hs.view(batch, n, gC, dim // gC, N), Ct[:, sl])
        ys.append(y.reshape(batch, n, dim))
    y = torch.cat(ys, dim=1).transpose(1, 2)                                            # (B, D, L)
    if y.is_complex():
        y = 2 * y.real
    return _finish(y, u, D, z, dtype_in), (h if output_final_state else None)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, output_final_state=False):
    """Fast selective scan; same signature and returns as `selective_scan_ref`."""
    _check(u, delta, A, B, C)
    fn = optional_kernel("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
    if fn is not None and initial_state is None and on_cuda(u, delta, A, B, C):
        res = try_kernel("selective_scan", fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                         return_last_state=output_final_state)
        if res is not None:
            return res if output_final_state else (res, None)
    return _selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                                 output_final_state)
