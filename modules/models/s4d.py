"""S4D: the diagonal structured state space of Gu, Gupta, Goel & Ré 2022, "On the Parameterization
and Initialization of Diagonal State Space Models"; and the diagonal-SSM layer DSS shares (dss.py).

Per channel h (H = d_model channels, each its own single-input single-output SSM with M = N/2
complex modes; the other N/2 are their conjugates, hence the 2 Re below):
    x'(t) = A x(t) + B u(t),   y(t) = Re(C x(t)) + D u(t)           A = diag(a_1..a_M), B = 1
ZOH discretization with step Delta_h (a log-uniform per-channel parameter):
    x_k = exp(Delta A) x_{k-1} + (exp(Delta A) - 1) A^-1 B u_k
which unrolls into a causal convolution y = K * u + D u with the Vandermonde kernel
    K_k = 2 Re( sum_n C_n (exp(Delta a_n) - 1) / a_n * exp(Delta a_n)^k ),   k = 0..T-1.
`forward` builds K and convolves by FFT (modules.kernels.fftconv, O(T log T)); `step` runs the
recurrence. Both are the map  y_k = Re(sum_n c_n x_{n,k}),  x_{n,k} = z_n x_{n,k-1} + u_k  with
c_n = 2 C_n (z_n - 1) / a_n and z_n = exp(Delta a_n), so any diagonal SSM that can say what its
(c, log z) are gets both modes from `DiagonalSSM` (DSS does).

Initialization of A (Section 4 of the paper; `init`):
  lin   a_n = -1/2 + i pi n                          S4D-Lin
  inv   a_n = -1/2 + i (N / pi) (N / (2n + 1) - 1)   S4D-Inv (asymptotics of HiPPO-LegS)
with n = 0..N/2-1. B = 1 is folded into C (the paper's minimal S4D), C ~ complex N(0, 1), D ~ N(0, 1).

Re(a) = f(W) for a trained weight W (`reparam`), the parameterizations of Wang & Li 2024, "StableSSM"
(as in the authors' code, radarFudan/StableSSM, src/models/recurrent/stablessm.py):
  exp       f(W) = -e^W             (S4D's own; the default)
  softplus  f(W) = -log(1 + e^W)
  best      f(W) = -1 / (W^2 + 0.1) (the paper's "best", a = 1, b = 0.1 in the authors' code)
  direct    f(W) = W                (no reparameterization: nothing keeps Re(a) negative)
Every one starts at Re(a) = -1/2. (The authors' code stores 0.5 as every W, so its `direct` starts at
Re(a) = +1/2, an unstable mode; here all four start at the same stable point, so that only the
parameterization differs.) W keeps the name `log_a_real` whatever the map, so trained S4D checkpoints
load unchanged. The layer output goes through GELU
and a position-wise linear map with a GLU, as in the paper's S4D block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels import fftconv
from .mixer_lm import MixerLM, MixerLMConfig, check_conjugate_pairs, check_dt_range, log_uniform


@dataclass
class S4DConfig(MixerLMConfig):
    d_state: int = 64              # N: N/2 complex conjugate pairs per channel
    init: Literal["lin", "inv"] = "lin"
    reparam: Literal["exp", "softplus", "best", "direct"] = "exp"   # Re(a) = f(W), see above
    dt_min: float = 0.001
    dt_max: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        check_conjugate_pairs(self)
        check_dt_range(self)


# Re(a) = f(W) per `reparam`, and the W at which each gives Re(a) = -1/2
REPARAM = {
    "exp": lambda w: -torch.exp(w),
    "softplus": lambda w: -F.softplus(w),
    "best": lambda w: -1.0 / (w * w + 0.1),
    "direct": lambda w: w,
}
W_AT_HALF = {"exp": math.log(0.5), "softplus": math.log(math.expm1(0.5)), "best": math.sqrt(1 / 0.5 - 0.1),
             "direct": -0.5}


def s4d_imag(init: str, N: int) -> torch.Tensor:
    """Im(a_n), n = 0..N/2-1, for S4D-Lin or S4D-Inv with state size N."""
    n = torch.arange(N // 2, dtype=torch.float64)
    if init == "lin":
        return math.pi * n
    return N / math.pi * (N / (2 * n + 1) - 1)


def vandermonde(c: torch.Tensor, log_z: torch.Tensor, T: int, shift: torch.Tensor | None = None) -> torch.Tensor:
    """K_k = Re(sum_n c_n exp(k log z_n + shift_n)) for k = 0..T-1: c, log_z, shift (H, M) complex
    -> K (H, T) real. Writing k = b i + j with b ~ sqrt(T), exp(k log z) = exp(j log z) exp(b i log z):
    2 sqrt(T) complex exps per mode and one batched complex matmul instead of T exps (the exps and
    their backward were 70% of an S4D step). `shift` (e.g. a -log normalizer) joins the outer
    factor, whose exponent stays bounded when the inner one is small."""
    b = max(1, math.isqrt(T))
    n = -(-T // b)
    j = torch.arange(b, device=log_z.device, dtype=log_z.real.dtype)
    i = torch.arange(n, device=log_z.device, dtype=log_z.real.dtype) * b
    inner = c[..., None] * torch.exp(log_z[..., None] * j)                                # (H, M, b)
    outer = log_z[..., None] * i if shift is None else log_z[..., None] * i + shift[..., None]
    K = torch.exp(outer).transpose(-1, -2) @ inner                                         # (H, n, b)
    return K.real.reshape(K.shape[0], n * b)[:, :T]


class DiagonalSSM(nn.Module):
    """y = K * u + D u with K_k = Re(sum_n c_n z_n^k): FFT convolution forward, recurrent step.
    A subclass gives `modes()` -> (c, log z), each (H, M) complex, and may override `kernel`."""

    def __init__(self, d_model: int, n_modes: int):
        super().__init__()
        self.n_modes = n_modes
        self.D = nn.Parameter(torch.randn(d_model))
        self.out = nn.Linear(d_model, 2 * d_model)                     # then a GLU back to d_model

    def modes(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def kernel(self, T: int) -> torch.Tensor:
        return vandermonde(*self.modes(), T)                                           # (H, T)

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        return F.glu(self.out(F.gelu(y)), dim=-1)                                      # (..., H)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        y, _ = fftconv(u, self.kernel(u.shape[1]))                                     # (B, T, H)
        return self._finish(y + u * self.D)

    def init_state(self, batch_size: int, device) -> torch.Tensor:
        # complex128: for DSS-softmax modes with Re(a) > 0 the state grows like |z|^t before the
        # (tiny) coefficient scales it back down; double keeps both in range
        return torch.zeros(batch_size, self.D.shape[0], self.n_modes, dtype=torch.complex128, device=device)

    def step(self, u_t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, log_z = (m.to(torch.complex128) for m in self.modes())
        x = torch.exp(log_z) * x + u_t.to(torch.float64)[..., None]                   # (B, H, M)
        y = (c * x).real.sum(-1).to(u_t.dtype)                                         # (B, H)
        return self._finish(y + u_t * self.D), x


class S4DMixer(DiagonalSSM):
    def __init__(self, cfg: S4DConfig, layer_idx: int = 0):
        H, M = cfg.d_model, cfg.d_state // 2
        super().__init__(H, M)
        self.log_dt = nn.Parameter(torch.log(log_uniform(H, cfg.dt_min, cfg.dt_max)))          # (H,)
        self.reparam = cfg.reparam
        self.log_a_real = nn.Parameter(torch.full((H, M), W_AT_HALF[cfg.reparam]))             # Re a = -1/2
        self.a_imag = nn.Parameter(s4d_imag(cfg.init, cfg.d_state).float().expand(H, M).clone())
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, M, dtype=torch.cfloat)))      # (H, M, 2)

    def A(self) -> torch.Tensor:
        return torch.complex(REPARAM[self.reparam](self.log_a_real), self.a_imag)      # (H, M)

    def modes(self) -> tuple[torch.Tensor, torch.Tensor]:
        A = self.A()
        dtA = A * torch.exp(self.log_dt)[:, None]                                      # (H, M)
        c = 2 * torch.view_as_complex(self.C) * torch.expm1(dtA) / A                   # ZOH, B = 1
        return c, dtA


class S4D(MixerLM):
    mixer_cls = S4DMixer

    def state_matrix_weights(self) -> list[torch.Tensor]:
        """The trained W of Re(A) = f(W) in every layer: what `perturb_state` perturbs."""
        return [b.mixer.log_a_real for b in self.blocks]

    def __init__(self, cfg: S4DConfig):
        super().__init__(cfg)
