"""LRU: the Linear Recurrent Unit of Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks
for Long Sequences".

A complex diagonal linear recurrence of N states, read out by a real projection:
    x_t = lambda * x_{t-1} + gamma * (B u_t)          lambda, gamma, x_t: (N,) complex / real
    y_t = Re(C x_t) + D * u_t                          B (N, H), C (H, N) complex; D (H,)
Exponential parameterization (Section 3.3): lambda = exp(-exp(nu_log) + i exp(theta_log)), so
|lambda| = exp(-exp(nu_log)) < 1 whatever the parameters do.
Ring initialization (Section 3.3, Lemma 3.2): lambda uniform on the ring r_min <= |lambda| <= r_max
with phase in [0, max_phase]:  u1, u2 ~ U(0, 1),
    nu_log = log(-1/2 log(u1 (r_max^2 - r_min^2) + r_min^2)),   theta_log = log(max_phase u2).
Normalization (Section 3.4): gamma = sqrt(1 - |lambda|^2), a trained parameter stored as
gamma_log, keeps the state's variance at that of the input when |lambda| -> 1. `gamma_norm:
false` leaves it out (gamma = 1, not trained): without it a state with |lambda| -> 1 accumulates
up to 1 / (1 - |lambda|^2) times the input's variance.
Real and imaginary parts of B ~ N(0, 1/(2H)) and of C ~ N(0, 1/N); D ~ N(0, 1) (the paper's code).

`forward` runs the recurrence for all positions at once with the complex log-depth parallel
scan (modules.kernels.scan); `step` is one update. `train_state` (mixer_lm.py; LongSSM): the
initial state x_{-1} while training, zero, random (complex N(0, scale^2): each part std
scale / sqrt(2)) or carried over windows of `tbptt` tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from ..config import require
from ..kernels import scan
from .mixer_lm import TRAIN_STATES, MixerLM, MixerLMConfig


@dataclass
class LRUConfig(MixerLMConfig):
    d_state: int = 128             # N complex states
    r_min: float = 0.0             # ring init: r_min <= |lambda| <= r_max
    r_max: float = 1.0
    max_phase: float = 2 * math.pi
    gamma_norm: bool = True        # false: no sqrt(1 - |lambda|^2) input normalization (gamma fixed at 1,
                                   # not trained): the paper's ablation (Section 3.4, Table 3)
    train_states: ClassVar[tuple[str, ...]] = TRAIN_STATES

    def __post_init__(self):
        super().__post_init__()
        require(self.d_state >= 1, "d_state", f"{self.d_state} must be at least 1")
        require(0.0 <= self.r_min < self.r_max <= 1.0, "r_min",
                f"need 0 <= r_min < r_max <= 1; got r_min={self.r_min}, r_max={self.r_max}")
        require(self.max_phase > 0, "max_phase", f"{self.max_phase} must be above 0")


class LRUMixer(nn.Module):
    def __init__(self, cfg: LRUConfig, layer_idx: int = 0):
        super().__init__()
        H, N = cfg.d_model, cfg.d_state
        u1, u2 = torch.rand(N), torch.rand(N)
        r2 = u1 * (cfg.r_max ** 2 - cfg.r_min ** 2) + cfg.r_min ** 2
        # |lambda| = r = exp(-exp(nu_log)); u1 = 0 with r_min = 0 would give r = 0: keep it tiny but finite
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(r2.clamp(min=1e-12))))          # (N,)
        self.theta_log = nn.Parameter(torch.log(cfg.max_phase * u2.clamp(min=1e-12)))
        mod = torch.exp(-torch.exp(self.nu_log.detach()))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt((1 - mod ** 2).clamp(min=1e-12))))
        if not cfg.gamma_norm:       # same draws of lambda, B, C, D as with it, so an ablation compares like with like
            del self.gamma_log
            self.register_buffer("gamma_log", torch.zeros(N))                                   # gamma = 1
        # a cfloat randn has variance 1/2 in each part: parts N(0, 1/(2H)) for B, N(0, 1/N) for C
        self.B = nn.Parameter(torch.view_as_real(torch.randn(N, H, dtype=torch.cfloat) / math.sqrt(H)))      # (N, H, 2)
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N, dtype=torch.cfloat) * math.sqrt(2 / N)))  # (H, N, 2)
        self.D = nn.Parameter(torch.randn(H))

    def lam(self) -> torch.Tensor:
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))  # (N,)

    # B u (u real) and Re(C x) as real matmuls: a complex product would first make u complex and
    # then compute the imaginary part of C x only to drop it, twice the work of each (autocast off:
    # the complex state is fp32 under bf16 autocast, as complex ops are)
    def _input(self, u: torch.Tensor) -> torch.Tensor:
        N, H = self.B.shape[:2]
        with torch.autocast(u.device.type, enabled=False):
            W = self.B.transpose(1, 2).reshape(2 * N, H)                                   # rows (n, re | im)
            z = u.to(W.dtype) @ W.transpose(0, 1)                                          # (..., 2N) interleaved
            Bu = torch.view_as_complex(z.unflatten(-1, (N, 2)))                            # (..., N)
        return torch.exp(self.gamma_log) * Bu

    def _output(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        H, N = self.C.shape[:2]
        with torch.autocast(x.device.type, enabled=False):
            W = (self.C * self.C.new_tensor([1.0, -1.0])).reshape(H, 2 * N)               # Re(c x) = c_re x_re - c_im x_im
            y = torch.view_as_real(x).flatten(-2) @ W.transpose(0, 1)                      # (..., H)
        return y + u * self.D                                                              # (..., H)

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False):
        """(B, T, H) -> (B, T, H), from the initial state x_{-1} = `state` (B, N) complex (None: 0);
        with `return_state`, also the final state x_{T-1}."""
        b = self._input(u)                                                                 # (B, T, N)
        x, last = scan(self.lam().expand_as(b), b, state)                                  # (B, T, N)
        y = self._output(x, u)
        return (y, last) if return_state else y

    def init_state(self, batch_size: int, device) -> torch.Tensor:
        return torch.zeros(batch_size, self.nu_log.shape[0], dtype=torch.complex64, device=device)

    def random_state(self, batch_size: int, device, std: float) -> torch.Tensor:
        """x_{-1} ~ complex N(0, std^2): real and imaginary parts each N(0, std^2 / 2). Drawn from
        torch's global CPU generator, so every machine draws the same and a checkpoint's RNG covers it."""
        return (std * torch.randn(batch_size, self.nu_log.shape[0], dtype=torch.complex64)).to(device)

    def step(self, u_t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.lam() * x + self._input(u_t)                                              # (B, N)
        return self._output(x, u_t), x


class LRU(MixerLM):
    mixer_cls = LRUMixer

    def __init__(self, cfg: LRUConfig):
        super().__init__(cfg)
