"""Linear attention (Katharopoulos et al. 2020) and gated linear attention with a scalar decay per
head (RetNet, Sun et al. 2023; the scalar-gate form of GLA, Yang et al. 2024).

Both keep, per head, a K x V state S and read it with the query; the difference is the decay:
  linear_attention   S_t = S_{t-1} + phi(k_t) v_t^T,   z_t = z_{t-1} + phi(k_t)
                     o_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps),   phi(x) = elu(x) + 1
                     ("Transformers are RNNs", Eq. 6-9: causal attention with a positive feature map)
  gla                S_t = exp(g_t) S_{t-1} + k_t v_t^T,   o_t = (K^-1/2 q_t)^T S_t
                     o = out_proj(RMSNorm_head(o) * silu(W_r x))    (RetNet's / GLA's gated output)
                     decay: fixed  g_h = log(1 - 2^(-5-h)), constant per head (RetNet's multi-scale gamma)
                            data   g_t = logsigmoid(W_g x_t) / 16, one gate per head and step (GLA's
                                   alpha = sigmoid(.)^(1/tau), tau = 16; GLA proper gates every key
                                   dimension, the kernels take a scalar per head, as fla's simple_gla)
`forward` runs modules.kernels.linear_attn_chunked (chunks of `chunk_size`: quadratic inside a chunk,
recurrent across chunks; fla's kernels on a GPU); `step` runs the kernel's recurrent reference for
one position from the carried state. The normalizer z rides along as an extra value column of ones.
RetNet's xPos rotation of q and k is left out (positions come from the decay alone).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import require
from ..kernels import linear_attn_chunked, linear_attn_recurrent_ref
from .common import check_int
from .mixer_lm import MixerLM, MixerLMConfig, RMSNorm, split_heads


@dataclass
class MultiHeadConfig(MixerLMConfig):
    n_head: int = 4
    chunk_size: int | None = None  # of the chunked kernel (forward only; results do not depend on it); None: 64 on a GPU, 32 on a CPU

    def __post_init__(self):
        super().__post_init__()
        check_int(self, "n_head")
        if self.chunk_size is not None:
            check_int(self, "chunk_size")
        require(self.d_model % self.n_head == 0, "n_head", f"{self.n_head} must divide d_model={self.d_model}")


@dataclass
class LinearAttentionConfig(MultiHeadConfig):
    eps: float = 1e-6              # in the normalizer's denominator

    def __post_init__(self):
        super().__post_init__()
        require(self.eps > 0, "eps", f"{self.eps} must be above 0")


@dataclass
class GLAConfig(MultiHeadConfig):
    decay: Literal["fixed", "data"] = "data"
    gate_temperature: float = 16.0  # data decay: g = logsigmoid(.) / gate_temperature

    def __post_init__(self):
        super().__post_init__()
        require(self.gate_temperature > 0, "gate_temperature", f"{self.gate_temperature} must be above 0")


class LinearAttentionMixer(nn.Module):
    def __init__(self, cfg: LinearAttentionConfig, layer_idx: int = 0):
        super().__init__()
        self.H, self.chunk, self.eps = cfg.n_head, cfg.chunk_size, cfg.eps
        self.K = cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def _qkv(self, x: torch.Tensor):
        q, k, v = (split_heads(t, self.H) for t in self.qkv(x).chunk(3, dim=-1))          # (..., H, K) each
        q, k = F.elu(q) + 1, F.elu(k) + 1
        return q, k, torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)                  # v with a ones column

    def _out(self, o: torch.Tensor) -> torch.Tensor:
        o = o[..., :-1] / (o[..., -1:] + self.eps)                                         # divide by phi(q) . z
        return self.out_proj(o.flatten(-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)                                                             # (B, T, H, *)
        o, _ = linear_attn_chunked(q, k, v, chunk_size=self.chunk)                         # (B, T, H, K+1)
        return self._out(o)                                                                # (B, T, D)

    def init_state(self, batch_size: int, device) -> torch.Tensor:
        return torch.zeros(batch_size, self.H, self.K, self.K + 1, device=device)         # [S | z]

    def step(self, x_t: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = (t[:, None] for t in self._qkv(x_t))                                     # (B, 1, H, *)
        o, S = linear_attn_recurrent_ref(q, k, v, initial_state=S, output_final_state=True)
        return self._out(o[:, 0]), S


class GLAMixer(nn.Module):
    def __init__(self, cfg: GLAConfig, layer_idx: int = 0):
        super().__init__()
        D, H = cfg.d_model, cfg.n_head
        self.H, self.K, self.chunk, self.tau = H, D // H, cfg.chunk_size, cfg.gate_temperature
        self.qkv = nn.Linear(D, 3 * D, bias=False)
        self.gate_out = nn.Linear(D, D, bias=False)                                        # W_r, the output gate
        self.norm = RMSNorm(self.K)
        self.out_proj = nn.Linear(D, D, bias=False)
        if cfg.decay == "fixed":
            self.gate = None
            self.register_buffer("log_decay", torch.log(1 - 2.0 ** (-5 - torch.arange(H, dtype=torch.float32))))
        else:
            self.gate = nn.Linear(D, H)                                                    # W_g

    def _qkvg(self, x: torch.Tensor):
        q, k, v = (split_heads(t, self.H) for t in self.qkv(x).chunk(3, dim=-1))          # (..., H, K)
        g = self.log_decay if self.gate is None else F.logsigmoid(self.gate(x)) / self.tau  # (H,) or (..., H)
        return q * self.K ** -0.5, k, v, g

    def _out(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.norm(o).flatten(-2) * F.silu(self.gate_out(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, g = self._qkvg(x)
        o, _ = linear_attn_chunked(q, k, v, decay=g, chunk_size=self.chunk)                # (B, T, H, K)
        return self._out(o, x)

    def init_state(self, batch_size: int, device) -> torch.Tensor:
        return torch.zeros(batch_size, self.H, self.K, self.K, device=device)

    def step(self, x_t: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v, g = self._qkvg(x_t)
        g = g if self.gate is None else g[:, None]                                         # (H,) or (B, 1, H)
        o, S = linear_attn_recurrent_ref(q[:, None], k[:, None], v[:, None], initial_state=S,
                                         output_final_state=True, decay=g)
        return self._out(o[:, 0], x_t), S


class LinearAttention(MixerLM):
    mixer_cls = LinearAttentionMixer

    def __init__(self, cfg: LinearAttentionConfig):
        super().__init__(cfg)


class GLA(MixerLM):
    mixer_cls = GLAMixer

    def __init__(self, cfg: GLAConfig):
        super().__init__(cfg)
