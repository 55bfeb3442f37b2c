"""The short causal depthwise convolution over time (Mamba's and Mamba-2's conv1d), channels last:
y = causal_conv1d(x (B, T, C), weight (C, 1, W), bias (C,) or None), y[t] = bias + sum_k
weight[:, 0, k] x[t - (W - 1) + k].

`causal_conv1d_ref` is torch's depthwise conv1d (naive.py). `causal_conv1d` runs the compiled CPU
kernel (cconv_cpu.c, cpu.py, built by ../native.py when the machine has a C compiler), forward and
backward, without the transposes torch's (B, C, T) convolution needs; else, and on a GPU, torch's.
"""
from __future__ import annotations

from .cpu import _causal_conv_native, native_available, usable
from .naive import causal_conv1d_ref

__all__ = ["causal_conv1d", "causal_conv1d_ref", "native_available"]


def causal_conv1d(x, weight, bias=None):
    """Fast causal depthwise convolution; same signature and result as `causal_conv1d_ref`."""
    if usable(x, weight, bias) and x.numel() > 0:
        return _causal_conv_native(x, weight, bias)
    return causal_conv1d_ref(x, weight, bias)
