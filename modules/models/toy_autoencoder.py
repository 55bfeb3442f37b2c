"""The toy model of Elhage et al. 2022, "Toy Models of Superposition".

    h  = W x                    W in R^{m x n}: n features squeezed into m dimensions
    x' = act(W^T h + b)         act = ReLU (the "ReLU output model") or identity (linear)

The weights are tied: the same W encodes and decodes, as in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from ..config import require


@dataclass
class ToyAutoencoderConfig:
    n_features: int                               # n, from the task
    hidden: int = 5                               # m
    activation: Literal["relu", "none"] = "relu"
    bias: bool = True

    def __post_init__(self):
        require(self.hidden >= 1, "hidden", f"{self.hidden} must be at least 1")
        require(self.n_features >= 1, "n_features", f"{self.n_features} must be at least 1")


class ToyAutoencoder(nn.Module):
    reads_sequences = False   # one vector per example: no forward_tokens_per_s

    def __init__(self, cfg: ToyAutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.W = nn.Parameter(torch.empty(cfg.hidden, cfg.n_features))
        nn.init.xavier_normal_(self.W)
        self.b = nn.Parameter(torch.zeros(cfg.n_features)) if cfg.bias else None

    def feature_weights(self) -> torch.Tensor:
        """W, (m, n): column i is the direction feature i is stored in."""
        return self.W

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        h = x @ self.W.T                                   # (B, n) -> (B, m)
        out = h @ self.W                                   # (B, n)
        if self.b is not None:
            out = out + self.b
        if self.cfg.activation == "relu":
            out = torch.relu(out)
        if return_hidden:
            return out, [h.unsqueeze(1)]                   # one layer, (B, T=1, m)
        return out
