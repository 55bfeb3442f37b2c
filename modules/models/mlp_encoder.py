"""An MLP encoder with nested (Matryoshka) linear heads: Kusupati, Bhatt, Rege, Wallingford,
Sinha, Ramanujan, Howard-Snyder, Chen, Kakade, Jain & Farhadi 2022, "Matryoshka Representation
Learning" (NeurIPS 2022, arXiv 2205.13147), Section 3, on feature vectors instead of images.

    h_0 = x,  h_l = ReLU(W_l h_{l-1} + b_l)  (l = 1 .. depth),  z = W_e h_depth + b_e   (d_embed)

MRL (`nesting: [m_1 < ... < m_K = d_embed]`): one linear classifier per prefix z_{1:m},

    L = sum_{m in M} c_m CE(W^(m) z_{1:m} + b^(m), y),   c_m = 1   (the paper's Eq. 1, as in
                                                                  the authors' MRL.py)

MRL-E (`efficient: true`): the heads share one weight, W^(m) = W[:, :m], and one bias (as the
authors' MRL_Linear_Layer with efficient=True). No nesting: one head on the whole z; an FF-m
baseline (the paper's independently trained m-dim "fixed feature" model) is this model with
d_embed = m, and FF-d is the standard model whose prefixes are "naive truncation".

Interface with tasks (modules/tasks/tabular.py), also the contract for any other head model:
    forward(x)          (B, n_features) -> z (B, d_embed); with return_hidden=True also the
                        list [h_1, ..., h_depth, z], each (B, T=1, D) like a sequence model's
    head_dims           the prefix widths that have a trained head (nesting, or (d_embed,))
    logits(z, m)        (B, n_classes) from the first m coordinates of z: the head for m if
                        there is one, else the narrowest wider head with z_{m+1:} set to zero
                        (naive truncation; MRL-E slices its shared weight at any m)
    truncation          how an m-dim representation is read from z: "prefix" (z_{1:m}) or
                        "pca" (the top-m principal components of the training embeddings, the
                        paper's SVD baseline); the task does the reading, the model only says which.
Deviation: the paper's encoder is a ResNet50 whose 2048-d pooled features are z; here an MLP,
and z has no ReLU (a linear embedding layer), so PCA/SVD of z is the natural low-rank baseline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import require


@dataclass
class MLPEncoderConfig:
    n_features: int                          # input width, from the task
    n_classes: int                           # classes, from the task
    hidden: int = 256                        # width of each hidden ReLU layer
    depth: int = 2                           # hidden ReLU layers
    d_embed: int = 64                        # embedding width d
    nesting: list[int] | None = None         # MRL prefix widths M (increasing, the last = d_embed)
    efficient: bool = False                  # MRL-E: weight-tied heads (needs nesting)
    truncation: Literal["prefix", "pca"] = "prefix"   # how a task reads an m-dim representation

    def __post_init__(self):
        require(self.n_features >= 1, "n_features", f"{self.n_features} must be at least 1")
        require(self.n_classes >= 2, "n_classes", f"{self.n_classes} must be at least 2")
        require(self.hidden >= 1, "hidden", f"{self.hidden} must be at least 1")
        require(self.depth >= 1, "depth", f"{self.depth} must be at least 1")
        require(self.d_embed >= 1, "d_embed", f"{self.d_embed} must be at least 1")
        require(self.truncation in ("prefix", "pca"), "truncation",
                f"{self.truncation!r} is not allowed; allowed: prefix, pca")
        if self.nesting is not None:
            ok = isinstance(self.nesting, list) and len(self.nesting) >= 1 and all(
                isinstance(m, int) and not isinstance(m, bool) for m in self.nesting)
            require(ok, "nesting", f"{self.nesting!r} must be a non-empty list of integers")
            require(all(a < b for a, b in zip(self.nesting, self.nesting[1:])) and self.nesting[0] >= 1,
                    "nesting", f"{self.nesting} must be strictly increasing positive widths")
            require(self.nesting[-1] == self.d_embed, "nesting",
                    f"{self.nesting} must end at d_embed ({self.d_embed}): the full embedding gets a head too")
        require(not self.efficient or self.nesting is not None, "efficient",
                "true needs nesting (MRL-E ties the heads of the nested prefixes)")


class MLPEncoder(nn.Module):
    reads_sequences = False   # one vector per example: no forward_tokens_per_s

    def __init__(self, cfg: MLPEncoderConfig):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.n_features] + [cfg.hidden] * cfg.depth
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.embed = nn.Linear(cfg.hidden, cfg.d_embed)
        self.d_embed = cfg.d_embed
        self.truncation = cfg.truncation
        self.head_dims: tuple[int, ...] = tuple(cfg.nesting) if cfg.nesting else (cfg.d_embed,)
        # MRL-E: one (C, d) head sliced per prefix; otherwise one (C, m) head per prefix width
        widths = (cfg.d_embed,) if cfg.efficient else self.head_dims
        self.heads = nn.ModuleList(nn.Linear(m, cfg.n_classes) for m in widths)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        hiddens = []
        h = x
        for layer in self.body:
            h = torch.relu(layer(h))                                   # (B, hidden)
            hiddens.append(h.unsqueeze(1))
        z = self.embed(h)                                              # (B, d_embed)
        if return_hidden:
            return z, [*hiddens, z.unsqueeze(1)]
        return z

    def logits(self, z: torch.Tensor, m: int | None = None) -> torch.Tensor:
        """Class logits (B, C) from the prefix z[:, :m] (m = d_embed when None)."""
        d = self.d_embed
        m = d if m is None else int(m)
        if not 1 <= m <= d:
            raise ValueError(f"prefix width {m} is outside 1 .. d_embed={d}")
        if self.cfg.efficient:
            head = self.heads[0]
            return F.linear(z[:, :m], head.weight[:, :m], head.bias)   # W[:, :m] z_{1:m} + b
        k = next(i for i, w in enumerate(self.head_dims) if w >= m)     # narrowest head that fits
        width = self.head_dims[k]
        zm = z[:, :m]
        if width > m:                                                   # naive truncation: zero the rest
            zm = F.pad(zm, (0, width - m))
        return self.heads[k](zm)

    def nested_logits(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every trained head, in head_dims order (the terms of the MRL loss)."""
        return [self.logits(z, m) for m in self.head_dims]
