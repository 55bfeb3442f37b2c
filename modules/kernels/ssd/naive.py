"""The reference loop of SSD, and the shape check and group-to-head expansion every path shares."""
from __future__ import annotations

import torch

from .._common import fp32_math, work_dtype


def _check(x, dt, A, B, C):
    b, T, H, _ = x.shape if x.dim() == 4 else (None,) * 4
    if x.dim() != 4 or A.shape != (b, T, H) or (dt is not None and dt.shape != (b, T, H)):
        raise ValueError(f"ssd: x must be (B, T, H, P), dt and A (B, T, H); got {tuple(x.shape)}, "
                         f"{None if dt is None else tuple(dt.shape)}, {tuple(A.shape)}")
    for name, M in (("B", B), ("C", C)):
        if M.dim() != 4 or M.shape[:2] != (b, T) or H % M.shape[2]:
            raise ValueError(f"ssd: {name} must be (B, T, G, N) with H={H} divisible by G; got {tuple(M.shape)}")


def _heads(M, H):
    return M if M.shape[2] == H else M.repeat_interleave(H // M.shape[2], dim=2)


@fp32_math
def ssd_ref(x, dt, A, B, C, chunk_size=None, initial_state=None):
    """Reference loop (fp32):  h_t = exp(A_t) h_{t-1} + dt_t x_t B_t^T,  y_t = h_t C_t.
    `chunk_size` is accepted for a signature identical to `ssd_chunked`, and unused.
    Returns (y (B, T, H, P), final_state (B, H, P, N))."""
    _check(x, dt, A, B, C)
    dtype = x.dtype
    work = work_dtype(x, A, B, C)
    x, dt, A, B, C, h = (None if t is None else t.to(work) for t in (x, dt, A, B, C, initial_state))
    H = x.shape[2]
    B, C = _heads(B, H), _heads(C, H)
    if dt is not None:
        x = x * dt[..., None]
    if h is None:
        h = x.new_zeros(x.shape[0], H, x.shape[3], B.shape[3])
    ys = []
    for x_t, a_t, B_t, C_t in zip(x.unbind(1), A.unbind(1), B.unbind(1), C.unbind(1)):
        h = a_t.exp()[..., None, None] * h + x_t[..., :, None] * B_t[..., None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C_t))
    return torch.stack(ys, dim=1).to(dtype), h
