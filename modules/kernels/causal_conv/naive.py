"""The short causal depthwise convolution over time, as torch computes it (the reference):

    y[b, t, c] = bias[c] + sum_{k < W} weight[c, 0, k] x[b, t - (W - 1) + k, c]     (x before t = 0: zero)

x (B, T, C) channels last, weight (C, 1, W) (nn.Conv1d's depthwise layout), bias (C,) or None.
This is Mamba's and Mamba-2's conv1d (modules/models/mixer_lm.py: CausalConv)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    if x.dim() != 3:
        raise ValueError(f"causal_conv1d: x must be (B, T, C); got {tuple(x.shape)}")
    C = x.shape[2]
    if weight.dim() != 3 or weight.shape[0] != C or weight.shape[1] != 1:
        raise ValueError(f"causal_conv1d: weight must be (C, 1, W) = ({C}, 1, W); got {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (C,):
        raise ValueError(f"causal_conv1d: bias must be (C,) = ({C},); got {tuple(bias.shape)}")


def causal_conv1d_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, C) -> (B, T, C) by torch's depthwise conv1d: padded by W - 1 on both sides, the first T
    outputs kept."""
    _check(x, weight, bias)
    T, W = x.shape[1], weight.shape[2]
    return F.conv1d(x.transpose(1, 2), weight, bias, padding=W - 1, groups=x.shape[2])[..., :T].transpose(1, 2)
