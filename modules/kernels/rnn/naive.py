"""The reference loops of the Elman and GRU recurrences on the layout the models use, and the checks
every path shares. Per step, with the input projection u_t = W x_t + b already computed (one matmul
over the sequence):
    Elman   h_t = act(u_t + R h_{t-1})                          act = tanh or relu; R (H, H), no bias
    linear  h_t = u_t + R h_{t-1}                               (a linear RNN: the linear SSM's)
    GRU     [a_r, a_z, a_n] = R h_{t-1} + b_R                    R (3H, H), b_R (3H): rows [r, z, n]
            r = sigma(u_r + a_r),  z = sigma(u_z + a_z),  n = tanh(u_n + r a_n)
            h_t = (1 - z) n + z h_{t-1}                          (torch.nn.GRU's equations)
Returns (ys (B, T, H), h_T (B, H)); h0 None is zeros.
"""
from __future__ import annotations

import torch

from .._common import fp32_math, work_dtype


def _check(u: torch.Tensor, R: torch.Tensor, h0: torch.Tensor | None, gates: int) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must be (B, T, {gates}H), got {tuple(u.shape)}")
    H = R.shape[1]
    if R.shape != (gates * H, H) or u.shape[-1] != gates * H:
        raise ValueError(f"R must be ({gates}H, H) and u (B, T, {gates}H); got R {tuple(R.shape)}, "
                         f"u {tuple(u.shape)}")
    if h0 is not None and h0.shape != (u.shape[0], H):
        raise ValueError(f"h0 must be (B, H) = ({u.shape[0]}, {H}), got {tuple(h0.shape)}")


@fp32_math
def _elman_loop(u: torch.Tensor, R: torch.Tensor, h0: torch.Tensor | None, act) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = act(u_t + R h_{t-1}), step by step: the loop both references run."""
    _check(u, R, h0, 1)
    dtype, work = u.dtype, work_dtype(u, R, h0)
    u, R = u.to(work), R.to(work)
    h = u.new_zeros(u.shape[0], R.shape[1]) if h0 is None else h0.to(work)
    ys = []
    for u_t in u.unbind(1):      # not u[:, t], whose backward fills all of u per step
        h = act(u_t + h @ R.t())
        ys.append(h)
    return torch.stack(ys, 1).to(dtype), h.to(dtype)


def elman_recurrence_ref(u: torch.Tensor, R: torch.Tensor, h0: torch.Tensor | None = None, relu: bool = False):
    return _elman_loop(u, R, h0, torch.relu if relu else torch.tanh)


def linear_recurrence_ref(u: torch.Tensor, R: torch.Tensor, h0: torch.Tensor | None = None):
    """The linear recurrence h_t = u_t + R h_{t-1}: the Elman loop without its activation."""
    return _elman_loop(u, R, h0, lambda v: v)


@fp32_math
def gru_recurrence_ref(u: torch.Tensor, R: torch.Tensor, bR: torch.Tensor, h0: torch.Tensor | None = None):
    _check(u, R, h0, 3)
    dtype, work = u.dtype, work_dtype(u, R, bR, h0)
    u, R, bR = u.to(work), R.to(work), bR.to(work)
    h = u.new_zeros(u.shape[0], R.shape[1]) if h0 is None else h0.to(work)
    ys = []
    for u_t in u.unbind(1):
        ur, uz, un = u_t.chunk(3, -1)
        ar, az, an = (h @ R.t() + bR).chunk(3, -1)
        r, z = torch.sigmoid(ur + ar), torch.sigmoid(uz + az)
        n = torch.tanh(un + r * an)
        h = (1 - z) * n + z * h
        ys.append(h)
    return torch.stack(ys, 1).to(dtype), h.to(dtype)
