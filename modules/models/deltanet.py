"""DeltaNet: linear attention with the delta rule (Schlag, Irie & Schmidhuber 2021, "Linear
Transformers Are Secretly Fast Weight Programmers"; Yang et al. 2024, "Parallelizing Linear
Transformers with the Delta Rule over Sequence Length").

Per head, the K x V fast-weight state is corrected towards each new value instead of summed into:
    S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
    o_t = S_t^T q_t
with q, k = L2-normalized silu(W x) (unit keys keep I - beta k k^T a contraction for beta in (0, 2)),
v = silu(W_v x), beta_t = sigmoid(W_beta x_t) in (0, 1) per head, q scaled by K^-1/2 as fla does;
output o = out_proj(RMSNorm_head(o)). Yang et al.'s short convolutions on q, k, v are left out.
`forward` runs modules.kernels.delta_rule: on a CPU its compiled recurrence, else the chunked form
(the WY/UT transform in chunks of `chunk_size`; fla's kernel on a GPU); `step` the kernel's
recurrent reference for one position.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels import delta_rule, delta_rule_ref
from .linear_attention import MultiHeadConfig
from .mixer_lm import MixerLM, RMSNorm, split_heads


@dataclass
class DeltaNetConfig(MultiHeadConfig):
    pass


class DeltaNetMixer(nn.Module):
    def __init__(self, cfg: DeltaNetConfig, layer_idx: int = 0):
        super().__init__()
        D, H = cfg.d_model, cfg.n_head
        self.H, self.K, self.chunk = H, D // H, cfg.chunk_size
        self.qkv = nn.Linear(D, 3 * D, bias=False)
        self.beta = nn.Linear(D, H, bias=False)
        self.norm = RMSNorm(self.K)
        self.out_proj = nn.Linear(D, D, bias=False)

    def _qkvb(self, x: torch.Tensor):
        q, k, v = (split_heads(F.silu(t), self.H) for t in self.qkv(x).chunk(3, dim=-1))  # (..., H, K)
        q, k = F.normalize(q, dim=-1) * self.K ** -0.5, F.normalize(k, dim=-1)
        return q, k, v, torch.sigmoid(self.beta(x))                                        # beta (..., H)

    def _out(self, o: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.norm(o).flatten(-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, beta = self._qkvb(x)
        o, _ = delta_rule(q, k, v, beta, chunk_size=self.chunk)                            # (B, T, H, K)
        return self._out(o)                                                                # (B, T, D)

    def init_state(self, batch_size: int, device) -> torch.Tensor:
        return torch.zeros(batch_size, self.H, self.K, self.K, device=device)

    def step(self, x_t: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v, beta = (t[:, None] for t in self._qkvb(x_t))                              # (B, 1, H, *)
        o, S = delta_rule_ref(q, k, v, beta, initial_state=S, output_final_state=True)
        return self._out(o[:, 0]), S


class DeltaNet(MixerLM):
    mixer_cls = DeltaNetMixer

    def __init__(self, cfg: DeltaNetConfig):
        super().__init__(cfg)
