"""The direct causal convolution, a loop over output time, and the shape check both paths share."""
from __future__ import annotations

import torch

from .._common import fp32_math, work_dtype


def _check(u, k):
    if u.dim() != 3 or k.dim() != 2 or k.shape[0] != u.shape[2]:
        raise ValueError(f"fftconv: u must be (B, T, D) and k (D, L); got {tuple(u.shape)}, {tuple(k.shape)}")


@fp32_math
def fftconv_ref(u: torch.Tensor, k: torch.Tensor):
    """Direct causal convolution, a loop over output time (fp32):
        y_t = sum_{s=0}^{t} k_s * u_{t-s}   (per channel).
    Returns (y (B, T, D), None)."""
    _check(u, k)
    dtype = u.dtype
    work = work_dtype(u, k)
    u, k = u.to(work), k.to(work)
    T = u.shape[1]
    k = k[:, :T]
    if k.shape[1] < T:
        k = torch.cat([k, k.new_zeros(k.shape[0], T - k.shape[1])], dim=1)
    k_rev = k.flip(-1)  # k_rev[:, T-1-j] = k[:, j], so taps k_t..k_0 line up with u_0..u_t
    ys = [torch.einsum("bsd,ds->bd", u[:, : t + 1], k_rev[:, T - 1 - t :]) for t in range(T)]
    return torch.stack(ys, dim=1).to(dtype), None
