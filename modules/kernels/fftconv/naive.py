"""Causal long convolution (S4, H3, Hyena) by FFT.

    y[b, t, d] = sum_{s=0}^{t} k[d, s] * u[b, t - s, d]

Layout: u (B, T, D), batch-first and time-major like every model in modules/models (no
transposes around the call); kernel k (D, L), one filter per channel, as S4-style layers
build it (L may differ from T: taps past T are never used, a shorter filter is zero-padded).
Both functions return (y, None): a convolution carries no recurrent state (the SSM layer that
made k has a recurrent mode for streaming); the pair keeps the kernel contract uniform.
"""
from __future__ import annotations

import torch

from ._common import work_dtype


def _check(u, k):
    if u.dim() != 3 or k.dim() != 2 or k.shape[0] != u.shape[2]:
        raise ValueError(f"fftconv: u must be (B, T, D) and k (D, L); got {tuple(u.shape)}, {tuple(k.shape)}")


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


def fftconv(u: torch.Tensor, k: torch.Tensor):
    """The same convolution via rfft, zero-padded to n >= 2T - 1 (no circular wrap-around):
    y = irfft(rfft(u) * rfft(k))[:T]. O(T log T). Same returns as `fftconv_ref`."""
    _check(u, k)
    dtype = u.dtype
    work = work_dtype(u, k)
    T = u.shape[1]
    k = k[:, :T].to(work)
    n = 1 << (2 * T - 2).bit_length()  # the power of two >= 2T - 1: the fastest FFT sizes
    U = torch.fft.rfft(u.to(work), n=n, dim=1)                 # (B, n//2+1, D)
    K = torch.fft.rfft(k, n=n, dim=-1)                         # (D, n//2+1)
    y = torch.fft.irfft(U * K.transpose(0, 1), n=n, dim=1)[:, :T]
    return y.to(dtype), None
