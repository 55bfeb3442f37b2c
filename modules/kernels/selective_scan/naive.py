"""The reference loop of the selective scan (mamba's selective_scan_ref), and the checks and
casts of the inputs that every path shares."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._common import fp32_math, real_dtype, work_dtype


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


@fp32_math
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
