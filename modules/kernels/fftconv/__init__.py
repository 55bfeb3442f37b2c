"""Causal long convolution (S4, H3, Hyena) by FFT.

    y[b, t, d] = sum_{s=0}^{t} k[d, s] * u[b, t - s, d]

Layout: u (B, T, D), batch-first and time-major like every model in modules/models (no
transposes around the call); kernel k (D, L), one filter per channel, as S4-style layers
build it (L may differ from T: taps past T are never used, a shorter filter is zero-padded).
Both functions return (y, None): a convolution carries no recurrent state (the SSM layer that
made k has a recurrent mode for streaming); the pair keeps the kernel contract uniform.

`fftconv_ref` is the direct loop (naive.py), `fftconv` the FFT (fft.py).
"""
from __future__ import annotations

from .fft import fftconv
from .naive import fftconv_ref

__all__ = ["fftconv", "fftconv_ref"]
