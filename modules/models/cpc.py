"""Contrastive Predictive Coding: van den Oord, Li & Vinyals 2018, "Representation Learning with
Contrastive Predictive Coding" (arXiv 1807.03748), on frame or token sequences.

    z_t = g_enc(x_t)                      a per-frame encoder (no look across time)
    c_t = g_ar(z_1 .. z_t)                a causal GRU over the encodings
    p_{t,k} = W_k c_t   (k = 1 .. K)      one linear prediction of z_{t+k} per offset
    f_k(x_{t+k}, c_t) = exp(z_{t+k}^T W_k c_t)

The task (modules/tasks/cpc_sequences.py) scores p_{t,k} against the true z_{t+k} and the z of
negatives (InfoNCE); the model only computes z, c and the predictions.

    g_enc   x_t -> ReLU(L_1 x_t) -> ... -> L_{enc_layers} h   (d_z wide; the last layer linear,
            so z is not clipped at zero). Continuous frames (d_input) enter through L_1, tokens
            (vocab_size) through an embedding in its place.
    g_ar    torch.nn.GRU, one layer, d_context wide, started from zero.
    W_k     K = max_offset matrices (d_z, d_context), no bias, initialised U(-1/sqrt(d_context), ..).

`train_encoder: false` is the random-encoder baseline: g_enc and g_ar keep their (seeded) random
initialisation, frozen (requires_grad False: the engine's optimizers skip them, so weight decay
does not touch them either), and only the W_k train. A probe of its c_t is the "randomly
initialized" row of the paper's Table 1.

Interface:
    forward(x)                 (B, T, d_input) floats or (B, T) token ids -> (z (B, T, d_z),
                               c (B, T, d_context)); with return_hidden=True also the list of every
                               encoder layer's output (the last is z) and c: layers 1 .. enc_layers
                               are the encoder, layer enc_layers + 1 is c_t. The config has no
                               n_layer, so a probe names its layers (e.g. layers: [2, 3]).
    predict(c)                 (B, T, K, d_z): W_k c_t for k = 1 .. K
Deviations: for audio the paper's g_enc is a strided 1-d convolution stack on the raw waveform
(one z per 10 ms) and its g_ar a 256-wide GRU (recalled, not checked against the paper's text
here: see the task's docstring for what was); here g_enc is a per-frame MLP, since the synthetic
task's frames are already the time steps, and the widths default to 32.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigError, require


@dataclass
class CPCConfig:
    d_input: int | None = None      # continuous frames (B, T, d_input); from the task's spec
    vocab_size: int | None = None   # or token ids (B, T); from the task's spec
    max_offset: int = 8             # K: the prediction offsets 1 .. K (one W_k each); from the task
    d_z: int = 32                   # encoder width (z_t)
    d_context: int = 32             # GRU width (c_t)
    enc_layers: int = 2             # encoder layers (ReLU between them, the last linear)
    train_encoder: bool = True      # false: g_enc and g_ar frozen at their random init (baseline)

    def __post_init__(self):
        if (self.d_input is None) == (self.vocab_size is None):
            raise ConfigError("d_input", "give exactly one of d_input (frames) and vocab_size (tokens); "
                                         "the task declares it")
        for key in ("d_input", "vocab_size"):
            v = getattr(self, key)
            require(v is None or v >= 1, key, f"{v} must be at least 1")
        for key in ("max_offset", "d_z", "d_context", "enc_layers"):
            v = getattr(self, key)
            require(v >= 1, key, f"{v} must be at least 1")


class CPC(nn.Module):
    def __init__(self, cfg: CPCConfig):
        super().__init__()
        self.cfg = cfg
        self.max_offset = cfg.max_offset
        self.tokens = cfg.vocab_size is not None
        first = nn.Embedding(cfg.vocab_size, cfg.d_z) if self.tokens else nn.Linear(cfg.d_input, cfg.d_z)
        self.encoder = nn.ModuleList([first] + [nn.Linear(cfg.d_z, cfg.d_z) for _ in range(cfg.enc_layers - 1)])
        self.gru = nn.GRU(cfg.d_z, cfg.d_context, batch_first=True)
        bound = 1.0 / math.sqrt(cfg.d_context)
        self.W = nn.Parameter(torch.empty(cfg.max_offset, cfg.d_z, cfg.d_context).uniform_(-bound, bound))
        if not cfg.train_encoder:
            for p in [*self.encoder.parameters(), *self.gru.parameters()]:
                p.requires_grad_(False)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every encoder layer's output, (B, T, d_z) each; the last is z."""
        if self.tokens and x.is_floating_point():
            raise TypeError("this model reads tokens (integer ids); got a float tensor")
        outs = []
        h = x
        for i, layer in enumerate(self.encoder):
            h = layer(torch.relu(h) if i > 0 else h)                                   # (B, T, d_z)
            outs.append(h)
        return outs

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        layers = self.encode(x)
        z = layers[-1]                                                                 # (B, T, d_z)
        c, _ = self.gru(z)                                                             # (B, T, d_context)
        if return_hidden:
            return (z, c), [*layers, c]
        return z, c

    def predict(self, c: torch.Tensor) -> torch.Tensor:
        """W_k c_t for every k: (B, T, d_context) -> (B, T, K, d_z)."""
        return torch.einsum("kzc,btc->btkz", self.W, c)
