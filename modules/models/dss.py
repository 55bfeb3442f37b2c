"""DSS: Gupta, Gu & Berant 2022, "Diagonal State Spaces are as Effective as Structured State Spaces".

A diagonal SSM per channel with N complex eigenvalues lambda (real part of either sign for
softmax, negative for exp), a per-channel step Delta > 0 and a complex vector w; the kernel
of length L (Section 3, Proposition 1) in one of two parameterizations (`param`):

  DSS-exp       K_k = Re( sum_i w_i lambda_i^-1 (exp(lambda_i Delta) - 1) exp(lambda_i k Delta) ),
                Re(lambda) = -exp(log_lambda_re) < 0
  DSS-softmax   K_k = Re( sum_i w_i lambda_i^-1 softmax_k(lambda_i k Delta) ),  k = 0..L-1,
                softmax over the L taps of each row; Re(lambda) unconstrained

DSS-exp is S4D's ZOH kernel with B = 1 and C = w. DSS-softmax normalizes each mode's geometric
series over the L taps, which needs an L: here it is the fixed window `l_max` (the kernel of a
sequence of T <= l_max positions is its first T taps), so a model is the same causal map at
every length and has a recurrent form. Writing z = exp(lambda Delta) and
Z = sum_{j<L} z^j = expm1(L lambda Delta) / expm1(lambda Delta), the softmax kernel is
K_k = Re(sum_i (w_i / (lambda_i Z_i)) z_i^k): a diagonal SSM with c = w / (lambda Z), which
`DiagonalSSM` (s4d.py) runs as an FFT convolution forward and as a recurrence in `step`.
log Z is computed without overflow from Z(u) = exp((L-1) u) Z(-u) when Re(u) > 0.

Initialization (Section 3.3): lambda = the eigenvalues with positive imaginary part of the normal
part of the HiPPO-LegS matrix of size 2N (real parts -1/2); w ~ complex N(0, 1); Delta log-uniform
in [dt_min, dt_max]. Output: GELU and a linear map with a GLU, as in S4D.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from ..config import require
from .mixer_lm import MixerLM, MixerLMConfig, check_dt_range, log_uniform
from .s4d import DiagonalSSM, vandermonde


@dataclass
class DSSConfig(MixerLMConfig):
    d_state: int = 64              # N complex modes per channel
    param: Literal["exp", "softmax"] = "exp"
    l_max: int = 2048              # softmax only: taps the kernel is normalized over; the longest sequence
    dt_min: float = 0.001
    dt_max: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        require(self.d_state >= 1, "d_state", f"{self.d_state} must be at least 1")
        require(self.l_max >= 1, "l_max", f"{self.l_max} must be at least 1")
        check_dt_range(self)


def hippo_legs_normal_eigs(N: int) -> torch.Tensor:
    """The N eigenvalues with Im > 0 of the normal part of HiPPO-LegS (size 2N): -1/2 + i omega.
    HiPPO-LegS plus P P^T (P_n = sqrt(n + 1/2)) is -I/2 plus the skew matrix
    S_nk = -sign(n - k) sqrt((2n+1)(2k+1)) / 2."""
    n = torch.arange(2 * N, dtype=torch.float64)
    r = torch.sqrt(2 * n + 1)
    S = -0.5 * torch.sign(n[:, None] - n[None, :]) * r[:, None] * r[None, :]            # (2N, 2N) skew
    omega = -torch.linalg.eigvalsh(1j * S)                  # S v = i omega v  <=>  (iS) v = -omega v
    omega = omega[omega > 0].sort().values[:N]
    return torch.complex(torch.full_like(omega, -0.5), omega)


class DSSMixer(DiagonalSSM):
    def __init__(self, cfg: DSSConfig, layer_idx: int = 0):
        H, N = cfg.d_model, cfg.d_state
        super().__init__(H, N)
        self.param, self.L = cfg.param, cfg.l_max
        lam = hippo_legs_normal_eigs(N).to(torch.complex64).expand(H, N)
        re = torch.log(-lam.real) if cfg.param == "exp" else lam.real                 # exp keeps Re < 0
        self.lambda_re = nn.Parameter(re.clone())                                      # (H, N)
        self.lambda_im = nn.Parameter(lam.imag.clone())
        self.log_dt = nn.Parameter(torch.log(log_uniform(H, cfg.dt_min, cfg.dt_max)))  # (H,)
        self.W = nn.Parameter(torch.view_as_real(torch.randn(H, N, dtype=torch.cfloat)))

    def Lambda(self) -> torch.Tensor:
        re = -torch.exp(self.lambda_re) if self.param == "exp" else self.lambda_re
        return torch.complex(re, self.lambda_im)                                       # (H, N)

    def _parts(self):
        """(w / lambda, u = lambda Delta, log Z or None)."""
        lam = self.Lambda()
        u = lam * torch.exp(self.log_dt)[:, None]                                      # (H, N)
        c = torch.view_as_complex(self.W) / lam
        if self.param == "exp":
            return c * torch.expm1(u), u, None
        # log Z(u), Z(u) = sum_{j<L} e^{j u}, through v with Re v <= 0 (float64: cancellation near u = 0)
        u64 = u.to(torch.complex128)
        pos = u64.real > 0
        v = torch.where(pos, -u64, u64)
        log_Z = torch.log(torch.expm1(self.L * v)) - torch.log(torch.expm1(v)) + pos * (self.L - 1) * u64
        return c, u, log_Z

    def modes(self) -> tuple[torch.Tensor, torch.Tensor]:
        c, u, log_Z = self._parts()
        if log_Z is not None:
            c = (c.to(torch.complex128) * torch.exp(-log_Z)).to(c.dtype)
        return c, u

    def kernel(self, T: int) -> torch.Tensor:
        if self.param == "exp":
            return super().kernel(T)
        if T > self.L:
            raise ValueError(f"DSS-softmax normalizes its kernel over l_max={self.L} taps; a sequence of {T} "
                             f"positions is longer: raise l_max")
        c, u, log_Z = self._parts()
        # exp(k u - log Z) stays bounded for either sign of Re(u) (k < L)
        return vandermonde(c, u, T, shift=-log_Z.to(u.dtype))                                 # (H, T)


class DSS(MixerLM):
    mixer_cls = DSSMixer

    def __init__(self, cfg: DSSConfig):
        super().__init__(cfg)

