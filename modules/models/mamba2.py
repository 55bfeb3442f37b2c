"""Mamba-2 (Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient Algorithms
Through Structured State Space Duality"), the mixer of mamba-ssm's Mamba2Simple, one group.

E = expand * d_model channels in n_head heads of P = E / n_head, N states, A a scalar per head:
    z, xBC, dt = in_proj(u)                                   (B, T, E), (B, T, E + 2N), (B, T, H)
    x, B, C = silu(causal depthwise conv_{d_conv}(xBC))       (B, T, H, P), (B, T, N), (B, T, N)
    Delta = softplus(dt + dt_bias);  A_h = -exp(A_log_h)
    h_t = exp(Delta_t A) h_{t-1} + Delta_t x_t B_t^T          h: (H, P, N)     (SSD, Section 6)
    y_t = h_t C_t + D x_t;   out = out_proj(RMSNorm(y * silu(z)))
Because A is a scalar times the identity, the sequence map is one semiseparable matrix per head
and `forward` runs the chunked SSD algorithm (modules.kernels.ssd_chunked, `chunk_size`):
quadratic attention-like blocks inside chunks, a recurrence over chunk states between them.
`step` is the recurrence. Init as mamba-ssm: A_h ~ U(1, 16), dt_bias = softplus^-1 of
log-uniform [dt_min, dt_max], D = 1. `train_state` (mixer_lm.py; LongSSM): the initial state
while training, zero, random (h ~ N(0, scale^2), conv buffer zero) or carried (h and the conv
buffer) over windows of `tbptt` tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import require
from ..kernels import ssd_chunked
from .common import check_int
from .mixer_lm import (TRAIN_STATES, CausalConv, MixerLM, MixerLMConfig, RMSNorm, check_dt_range, inverse_softplus,
                       log_uniform)


@dataclass
class Mamba2Config(MixerLMConfig):
    d_state: int = 64              # N
    n_head: int = 4                # H; head size P = expand * d_model / n_head
    d_conv: int = 4
    expand: int = 2
    chunk_size: int | None = None  # of the chunked SSD (results do not depend on it); None: 64 on a GPU, 32 on a CPU
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    a_init_min: float = 1.0        # A_h ~ U(a_init_min, a_init_max) (negated)
    a_init_max: float = 16.0
    bias: bool = False
    train_states: ClassVar[tuple[str, ...]] = TRAIN_STATES

    def __post_init__(self):
        super().__post_init__()
        for key in ("d_state", "n_head", "d_conv", "expand") + (("chunk_size",) if self.chunk_size is not None else ()):
            check_int(self, key)
        require(self.expand * self.d_model % self.n_head == 0, "n_head",
                f"{self.n_head} must divide expand * d_model = {self.expand * self.d_model}")
        check_dt_range(self)
        require(0 < self.a_init_min <= self.a_init_max, "a_init_min",
                f"need 0 < a_init_min <= a_init_max; got {self.a_init_min}, {self.a_init_max}")


class Mamba2Mixer(nn.Module):
    def __init__(self, cfg: Mamba2Config, layer_idx: int = 0):
        super().__init__()
        D, E, N, H = cfg.d_model, cfg.expand * cfg.d_model, cfg.d_state, cfg.n_head
        self.E, self.N, self.H, self.P, self.chunk = E, N, H, E // H, cfg.chunk_size
        self.in_proj = nn.Linear(D, 2 * E + 2 * N + H, bias=cfg.bias)
        self.conv = CausalConv(E + 2 * N, cfg.d_conv)
        self.dt_bias = nn.Parameter(inverse_softplus(log_uniform(H, cfg.dt_min, cfg.dt_max, cfg.dt_init_floor)))
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(cfg.a_init_min, cfg.a_init_max)))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = RMSNorm(E)
        self.out_proj = nn.Linear(E, D, bias=cfg.bias)

    def _in(self, u: torch.Tensor):
        z, xBC, dt = self.in_proj(u).split([self.E, self.E + 2 * self.N, self.H], dim=-1)
        return z, xBC, F.softplus(dt + self.dt_bias)                                     # Delta (..., H)

    def _out(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.norm(y * F.silu(z)))                                    # gate, then norm

    def forward(self, u: torch.Tensor, state: tuple | None = None, return_state: bool = False):
        """(B, T, D) -> (B, T, D), from the initial `state` (conv buffer, h) as `init_state` lays it
        out (None: zero); with `return_state`, also the final one."""
        Bsz, T, _ = u.shape
        conv_state, h0 = (None, None) if state is None else state
        z, xBC, dt = self._in(u)
        if return_state:
            xBC, conv_state = self.conv(xBC, conv_state, return_state=True)
        else:
            xBC = self.conv(xBC, conv_state)
        x, B, C = F.silu(xBC).split([self.E, self.N, self.N], dim=-1)
        x = x.view(Bsz, T, self.H, self.P)                                                # (B, T, H, P)
        A = -torch.exp(self.A_log)                                                        # (H,)
        y, h = ssd_chunked(x, dt, dt * A, B[:, :, None], C[:, :, None], chunk_size=self.chunk,
                           initial_state=h0)                                              # (B, T, H, P)
        y = y + x * self.D[:, None]
        y = self._out(y.reshape(Bsz, T, self.E), z)                                       # (B, T, D)
        return (y, (conv_state, h)) if return_state else y

    def init_state(self, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.conv.init_state(batch_size, device),
                torch.zeros(batch_size, self.H, self.P, self.N, device=device))          # conv buffer, h

    def random_state(self, batch_size: int, device, std: float) -> tuple[torch.Tensor, torch.Tensor]:
        """h ~ N(0, std^2) in every entry, from torch's global CPU generator (as lru's); the conv
        buffer stays zero."""
        return (self.conv.init_state(batch_size, device),
                (std * torch.randn(batch_size, self.H, self.P, self.N)).to(device))

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        conv_state, h = state
        z, xBC, dt = self._in(u_t)                                                        # dt (B, H)
        xBC, conv_state = self.conv.step(xBC, conv_state)
        x, B, C = F.silu(xBC).split([self.E, self.N, self.N], dim=-1)
        x = x.view(-1, self.H, self.P)                                                    # (B, H, P)
        decay = torch.exp(dt * -torch.exp(self.A_log))                                    # (B, H)
        h = decay[..., None, None] * h + (dt[..., None] * x)[..., None] * B[:, None, None]  # (B, H, P, N)
        y = (h * C[:, None, None]).sum(-1) + x * self.D[:, None]                          # (B, H, P)
        return self._out(y.reshape(-1, self.E), z), (conv_state, h)


class Mamba2(MixerLM):
    mixer_cls = Mamba2Mixer

    def __init__(self, cfg: Mamba2Config):
        super().__init__(cfg)
