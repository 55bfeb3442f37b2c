"""Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"), with
the mimetic initialization of Trockman et al. 2024 as an option.

The mixer (the paper's Figure 3), E = expand * d_model channels, N states per channel:
    x, z = in_proj(u)                                            (B, T, E) each
    x = silu(causal depthwise conv_{d_conv}(x))
    Delta, B, C = softplus(dt_proj(W_dt x) + b_dt), W_B x, W_C x  (B, T, E), (B, T, N), (B, T, N)
    h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t               h: (E, N), A = -exp(A_log)  (S6)
    y_t = C_t h_t + D x_t;   out = out_proj(y * silu(z))
`forward` calls the selective scan kernel (modules.kernels.selective_scan: mamba-ssm's CUDA kernel
on a GPU when installed, a chunked parallel scan otherwise); `step` is the recurrence with a
rolling conv buffer, as mamba's `step`.

`init: default` is mamba-ssm's: A_log = log(1..N) for every channel (S4D-Real), D = 1, the dt
bias set so that softplus(b_dt) is log-uniform in [dt_min, dt_max] (floored at dt_init_floor), the
dt projection's weights U(-dt_rank^-1/2, dt_rank^-1/2).

`init: mimetic` (Trockman, Harutyunyan, Kolter, Kumar & Bhojanapalli 2024, "Mimetic Initialization
Helps State Space Models Learn to Recall", arXiv:2410.11135, the method section, Sec. 3 of v1;
the section number and the size of A below were not re-checked against the paper's text). Write
the layer as attention, y_t = sum_{s<=t} (C_t . B_s) (prod_{r=s+1..t} exp(Delta_r A)) Delta_s x_s;
two changes make that map start out like (linear) self-attention:
  1. A close to 0, so that exp(Delta A) ~ 1 and the decay mask is ~ all-ones lower-triangular:
     the state remembers the whole past instead of forgetting it in ~1/(Delta |A|) steps. Here
     |A_{d,n}| = mimetic_a_max (n + 1) / N (our choice of "close to 0": the S4D-Real spectrum
     scaled down; with the default 0.01 and Delta <= dt_max = 0.1, exp(Delta A) >= 0.999).
  2. W_C = W_B, so that C_t . B_s = x_t^T W_B^T W_B x_s behaves like q_t . k_s with a positive
     semi-definite query-key product (each token attends most to similar tokens).
Both are initial values only; training moves them freely.

`polarize` (Wang, Cai, Wang, Zhu, Srivastava, Wang & Li 2025, "Understanding and Mitigating
Bottlenecks of State Space Models through the Lens of Recency and Over-smoothing", ICLR 2025,
arXiv:2501.00658; abstract: "polarize two channels of the state transition matrices [...] setting them
to zero and one"). Every channel of every layer gets extra state dimensions whose A is a constant, not
trained, beside its N learned ones (the authors' code, VITA-Group/SSM-Bottleneck,
zoology/mixers/polar_mamba.py: d_state + d_ones + d_zeros, one of each in their MQAR runs):
  one   A = 0, so exp(Delta A) = 1: the dimension never decays (h += Delta B x), the paper's
        (A_t)_{1,1} = 1 against recency
  zero  A = -100 (the code's value_zeros; two second-hand write-ups say -1000), so exp(Delta A) =
        e^{-100 Delta}, about 0 once Delta is large: the paper's (A_t)_{N,N} = 0 against over-smoothing
  both  one of each (the paper's polarized Mamba); none (the default) adds nothing.
B and C cover the extra dimensions as any other (x_proj is that much wider); Delta still applies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import require
from ..kernels import selective_scan
from .common import check_int
from .mixer_lm import CausalConv, MixerLM, MixerLMConfig, check_dt_range, inverse_softplus, log_uniform


# polarize -> (state dims with A = 0, state dims with A = ZERO_A), appended to the N learned ones
POLARIZE = {"none": (0, 0), "one": (1, 0), "zero": (0, 1), "both": (1, 1)}
ZERO_A = -100.0


@dataclass
class MambaConfig(MixerLMConfig):
    d_state: int = 16              # N
    d_conv: int = 4
    expand: int = 2                # E = expand * d_model
    dt_rank: int | None = None     # default ceil(d_model / 16)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False             # in_proj and out_proj
    init: Literal["default", "mimetic"] = "default"
    mimetic_a_max: float = 0.01    # mimetic only: the largest |A| at initialization
    polarize: Literal["none", "one", "zero", "both"] = "none"   # constant A = 0 / A = -100 state dims

    def __post_init__(self):
        super().__post_init__()
        for key in ("d_state", "d_conv", "expand"):
            check_int(self, key)
        require(self.dt_rank is None or self.dt_rank >= 1, "dt_rank", f"{self.dt_rank} must be at least 1")
        check_dt_range(self)
        require(self.polarize in POLARIZE, "polarize",
                f"{self.polarize!r} is not one of {', '.join(POLARIZE)}")
        require(self.mimetic_a_max > 0, "mimetic_a_max", f"{self.mimetic_a_max} must be above 0")
        if self.dt_rank is None:
            self.dt_rank = math.ceil(self.d_model / 16)


class MambaMixer(nn.Module):
    def __init__(self, cfg: MambaConfig, layer_idx: int = 0):
        super().__init__()
        D, E, R = cfg.d_model, cfg.expand * cfg.d_model, cfg.dt_rank
        self.n_one, self.n_zero = POLARIZE[cfg.polarize]
        N = cfg.d_state + self.n_one + self.n_zero                                         # states per channel
        self.N, self.R = N, R
        self.in_proj = nn.Linear(D, 2 * E, bias=cfg.bias)
        self.conv = CausalConv(E, cfg.d_conv, cfg.conv_bias)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)              # -> [Delta (low rank), B, C]
        self.dt_proj = nn.Linear(R, E, bias=True)
        self.out_proj = nn.Linear(E, D, bias=cfg.bias)
        with torch.no_grad():
            nn.init.uniform_(self.dt_proj.weight, -R ** -0.5, R ** -0.5)
            self.dt_proj.bias.copy_(inverse_softplus(log_uniform(E, cfg.dt_min, cfg.dt_max, cfg.dt_init_floor)))
        A = torch.arange(1, cfg.d_state + 1, dtype=torch.float32).repeat(E, 1)            # (E, d_state) S4D-Real
        if cfg.init == "mimetic":
            A = A * (cfg.mimetic_a_max / cfg.d_state)                                     # |A| <= mimetic_a_max
            with torch.no_grad():
                self.x_proj.weight[R + N:] = self.x_proj.weight[R:R + N]                  # W_C = W_B
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(E))

    def A(self) -> torch.Tensor:
        A = -torch.exp(self.A_log)                                                        # (E, d_state) learned
        if not (self.n_one or self.n_zero):
            return A
        E = A.shape[0]
        return torch.cat([A.new_zeros(E, self.n_one), A, A.new_full((E, self.n_zero), ZERO_A)], dim=1)  # (E, N)

    def _split(self, x: torch.Tensor):
        """Delta before softplus and its bias, B and C from the conv output x (..., E)."""
        dt, B, C = self.x_proj(x).split([self.R, self.N, self.N], dim=-1)
        return dt @ self.dt_proj.weight.t(), B, C                                         # (..., E), (..., N) x2

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(u).chunk(2, dim=-1)                                           # (B, T, E) each
        x = F.silu(self.conv(x))
        dt, B, C = self._split(x)
        x, dt, B, C, z = (t.transpose(1, 2) for t in (x, dt, B, C, z))                    # (B, *, T): mamba-ssm's layout
        y, _ = selective_scan(x, dt, self.A(), B, C, D=self.D, z=z,
                              delta_bias=self.dt_proj.bias, delta_softplus=True)          # (B, E, T)
        return self.out_proj(y.transpose(1, 2))                                           # (B, T, D)

    def init_state(self, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.conv.init_state(batch_size, device),
                torch.zeros(batch_size, self.D.shape[0], self.N, device=device))          # conv buffer, h (B, E, N)

    def step(self, u_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        conv_state, h = state
        x, z = self.in_proj(u_t).chunk(2, dim=-1)                                         # (B, E) each
        x, conv_state = self.conv.step(x, conv_state)
        x = F.silu(x)
        dt, B, C = self._split(x)
        dt = F.softplus(dt + self.dt_proj.bias)                                           # (B, E)
        h = torch.exp(dt[..., None] * self.A()) * h + (dt * x)[..., None] * B[:, None]    # (B, E, N)
        y = (h * C[:, None]).sum(-1) + self.D * x
        return self.out_proj(y * F.silu(z)), (conv_state, h)


class Mamba(MixerLM):
    mixer_cls = MambaMixer

    def __init__(self, cfg: MambaConfig):
        super().__init__(cfg)
