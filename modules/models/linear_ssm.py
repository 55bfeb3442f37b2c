"""The single-layer linear state-space model of Wang & Li's approximation papers ("Inverse
approximation theory for nonlinear recurrent neural networks", ICLR 2024, and "StableSSM:
Alleviating the Curse of Memory in State-space Models through Stable Reparameterization", ICML
2024), as the authors' perturbation code writes it (radarFudan/Curse-of-memory,
src/models/recurrent/ssm.py: a residual recurrence with time step dt and an orthogonally
initialized P):

    h_0 = 0;   h_{k+1} = h_k + dt (U x_k - P^T diag(lambda) P h_k);   y_k = C h_{k+1}

with m = d_state hidden units, U (m x d_input), C (d_output x m) and P (m x m, initialized
orthogonal by a QR of a Gaussian, then trained freely). The discrete transition is I - dt P^T diag
(lambda) P; with P orthogonal it is stable while 0 < dt lambda_i < 2, and its memory is long when
lambda_i is close to 0. The authors' linear maps around the recurrence (encoder, g, f, decoder)
compose into U and C. The model forms that transition once per forward, M = I - dt P^T diag(lambda)
P, and runs h_{k+1} = h_k M + dt U x_k: the same equation with one product per step in place of
two (rounded otherwise), as one op (modules/kernels/rnn's linear recurrence, a compiled loop on a
CPU).

lambda = f(w), `reparam` (StableSSM's reparameterizations, README and src/models/recurrent/
stablessm.py of radarFudan/StableSSM, written for lambda = -Lambda > 0):
    direct    lambda = w (StableSSM's "direct"; the authors' perturbation code takes relu(w) while
              training, which makes the trained model and the evaluated one differ wherever w < 0:
              not done here), so a perturbation of w can push lambda_i below 0
    exp       lambda = e^w
    softplus  lambda = log(1 + e^w)
    best      lambda = 1 / (w^2 + 0.1)     (StableSSM's "best" reparameterization)
Every reparameterization starts from the same lambda_i ~ U(0, 1) (drawn per unit, then w = f^-1;
ours: the authors' direct model draws w ~ N(0, 1)), so that they differ only in how w maps to
lambda. `state_matrix_weights` names w: what the `perturb_state` evaluation axis perturbs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from ..config import require
from ..kernels.rnn import linear_recurrence
from .common import SeqIOConfig, check_int


@dataclass
class LinearSSMConfig(SeqIOConfig):
    d_state: int = 64              # m, the hidden units
    dt: float = 1.0                # the residual step (the authors' 1.0)
    reparam: Literal["direct", "exp", "softplus", "best"] = "direct"
    lambda_max: float = 1.0        # initial lambda_i ~ U(0, lambda_max)

    def __post_init__(self):
        self.check_io()
        check_int(self, "d_state")
        require(self.dt > 0, "dt", f"{self.dt} must be above 0")
        require(self.reparam in ("direct", "exp", "softplus", "best"), "reparam",
                f"{self.reparam!r} is not one of direct, exp, softplus, best")
        require(0 < self.lambda_max <= (10.0 if self.reparam == "best" else math.inf), "lambda_max",
                f"{self.lambda_max} must be above 0 (and at most 10 for best: 1 / (w^2 + 0.1) <= 10)")


def lambda_of(w: torch.Tensor, reparam: str) -> torch.Tensor:
    if reparam == "direct":
        return w
    if reparam == "exp":
        return torch.exp(w)
    if reparam == "softplus":
        return nn.functional.softplus(w)
    return 1.0 / (w * w + 0.1)


def w_of(lam: torch.Tensor, reparam: str) -> torch.Tensor:
    """f^-1: the w that gives lambda (lambda > 0; below 10 for best)."""
    if reparam == "direct":
        return lam.clone()
    if reparam == "exp":
        return torch.log(lam)
    if reparam == "softplus":
        return lam + torch.log(-torch.expm1(-lam))
    return torch.sqrt(1.0 / lam - 0.1)


class LinearSSM(nn.Module):
    def __init__(self, cfg: LinearSSMConfig):
        super().__init__()
        self.cfg = cfg
        m = cfg.d_state
        self.tokens = cfg.vocab_size is not None
        self.U = nn.Embedding(cfg.vocab_size, m) if self.tokens else nn.Linear(cfg.d_input, m)
        self.P = nn.Parameter(torch.linalg.qr(torch.randn(m, m))[0])
        lam = torch.rand(m).clamp(min=1e-3) * cfg.lambda_max
        self.w = nn.Parameter(w_of(lam, cfg.reparam))
        self.C = nn.Linear(m, cfg.out_size)

    def lam(self) -> torch.Tensor:
        return lambda_of(self.w, self.cfg.reparam)

    def state_matrix_weights(self) -> list[torch.Tensor]:
        return [self.w]

    def transition(self) -> torch.Tensor:
        """M = I - dt P^T diag(lambda) P, so that the step is h_{k+1} = h_k M + dt U x_k."""
        P, lam = self.P, self.lam()
        return torch.eye(P.shape[0], device=P.device, dtype=P.dtype) - self.cfg.dt * (P.t() * lam) @ P

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        u = self.U(x) * self.cfg.dt                                                    # (B, T, m)
        # the recurrence h_{k+1} = dt u_k + h_k M as one op: a compiled loop on a CPU
        H, _ = linear_recurrence(u, self.transition().t())                             # (B, T, m)
        y = self.C(H)
        return (y, [H]) if return_hidden else y

    def init_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.cfg.d_state, device=self.w.device)

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.U(x_t) * self.cfg.dt + h @ self.transition()
        return self.C(h), h
