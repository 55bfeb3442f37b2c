"""S4: the structured state space of Gu, Goel & Ré 2021, "Efficiently Modeling Long Sequences with
Structured State Spaces" (arXiv 2111.00396), with the normal-plus-low-rank (NPLR) HiPPO-LegS
matrix and the Cauchy-kernel algorithm for its convolution kernel (Section 3, Algorithm 1).

Per channel h (H = d_model channels, each its own single-input single-output SSM of state size N):
    x'(t) = A x(t) + B u(t),   y(t) = C x(t) + D u(t)
HiPPO-LegS (Section 2.2, eq. (2)) is  A_nk = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n = k), 0 (n < k),
B_n = sqrt(2n+1). With P_n = sqrt(n + 1/2), A + P P^T = -I/2 + S with S skew-symmetric, so it is
normal (Theorem 1): A = V Lambda V* - P P^T with V unitary and Re(Lambda) = -1/2. In the basis V
the SSM is the diagonal-plus-low-rank (DPLR) system (Lambda - p p*, b = V* B, c = C V), p = V* P.
A is real, so Lambda, p, b, c come in conjugate pairs: the parameters keep the M = N/2 members
with Im(Lambda) > 0 and the other half is their conjugate (`_full`).

Bilinear discretization with step Delta (Section 2.3, eq. (3)):
    Abar = (I - Delta/2 A)^-1 (I + Delta/2 A),   Bbar = (I - Delta/2 A)^-1 Delta B,   Cbar = C
and the kernel K_k = Cbar Abar^k Bbar (k = 0..L-1) of y = K * u + D u (eq. (4)-(5)).
`s4_kernel` computes K by Algorithm 1: the generating function at the L roots of unity z,
    Khat(z) = sum_k K_k z^k = Ctilde (I - Abar z)^-1 Bbar,   Ctilde = C (I - Abar^L)     (Lemma C.2)
            = 2/(1+z) Ctilde (g(z) - A)^-1 B,  g(z) = 2/Delta (1-z)/(1+z)               (Lemma C.3)
the resolvent of the DPLR A by the Woodbury identity (Lemma C.4)
    Khat(z) = 2/(1+z) [k00 - k01 (1 + k11)^-1 k10],  k_{ab}(z) = sum_n a*_n b_n / (g(z) - lambda_n)
(a in {Ctilde, p}, b in {B, p}: four Cauchy sums), then K = iFFT(Khat). Here the factor
1/(1+z) is folded into the Cauchy denominators, (2/Delta)(1-z) - (1+z) lambda_n, and the
Woodbury term becomes (1+z) k01 k10 / (1 + (1+z) k11): the same numbers, but finite at
z = -1 (a root of unity for even L), where g(z) is infinite. The Cauchy sums are a plain
batched matmul over the M modes and their conjugates (no CUDA/KeOps kernel; O(H N L) memory).

As in the paper and its reference code, Ctilde is the parameter (the map C -> Ctilde is
invertible): it is initialized from C ~ complex N(0, 1) by Ctilde = C (I - Abar^L) once, at the
kernel length L = `l_max`. A model runs any T <= l_max (the first T taps of the l_max kernel are
the length-T kernel; longer is an error). `step`, the recurrent mode, recovers C = Ctilde (I -
Abar^L)^-1 and runs the dense discretized state update x_k = Abar x_{k-1} + Bbar u_k, y_k =
Re(C x_k) in complex128 (a reference mode: N^2 per step, rebuilt every call).
`s4_kernel_ref` materializes the same dense Abar, Bbar, C and powers Abar: the tests compare it with
`s4_kernel`, and both with the kernel of the real HiPPO-LegS matrices.

Parameters (Section 3, "S4 parameters Lambda, P, Q, B, C, Delta"): log Delta (H), Lambda, p, B,
Ctilde (H, M) complex (stored as real pairs), D (H); Delta log-uniform in [dt_min, dt_max].
Deviations, all as in the authors' released code rather than the first arXiv version: Q is tied
to P (HiPPO-LegS has Q = P) and Re(Lambda) = -exp(log_lambda_re) < 0, so A + A* = 2 Re(Lambda) -
2 p p* is negative definite and every Abar is stable; one learning rate for every parameter (the
paper gives the SSM parameters a smaller one and no weight decay; the engine has one group).
The layer output goes through GELU and a position-wise linear map with a GLU, as S4D here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import require
from .mixer_lm import MixerLM, MixerLMConfig, check_conjugate_pairs, check_dt_range, log_uniform
from .s4d import DiagonalSSM


@dataclass
class S4Config(MixerLMConfig):
    d_state: int = 64              # N: the HiPPO-LegS order; N/2 conjugate pairs per channel
    l_max: int = 1024              # kernel length L that Ctilde is defined at; the longest sequence
    dt_min: float = 0.001
    dt_max: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        check_conjugate_pairs(self)
        require(self.l_max >= 2, "l_max", f"{self.l_max} must be at least 2")
        check_dt_range(self)


# --- HiPPO-LegS and its NPLR form ------------------------------------------------------------

def hippo_legs(N: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, B, P), float64: the HiPPO-LegS matrix (N, N), its input vector B (N) and the low-rank
    term P (N) with A + P P^T normal (eq. (2) and Theorem 1)."""
    n = torch.arange(N, dtype=torch.float64)
    r = torch.sqrt(2 * n + 1)
    A = -torch.where(n[:, None] > n[None, :], r[:, None] * r[None, :], torch.diag(n + 1))
    return A, r.clone(), torch.sqrt(n + 0.5)


def nplr_legs(N: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Lambda, p, b, V), complex128, the half with Im(Lambda) > 0 of  A = V Lambda V* - P P^T:
    Lambda (M), p = V* P (M), b = V* B (M), V (N, M); M = N/2 and the full V is [V, conj(V)].
    A + P P^T = -I/2 + S, S skew; S v = i omega v  <=>  (i S) v = -omega v, i S Hermitian."""
    A, B, P = hippo_legs(N)
    S = A + P[:, None] * P[None, :] + 0.5 * torch.eye(N, dtype=torch.float64)
    w, V = torch.linalg.eigh(1j * S.to(torch.complex128))                 # real w = -omega ascending
    V = V[:, : N // 2].flip(-1)                                           # omega > 0, ascending
    lam = torch.complex(torch.full((N // 2,), -0.5, dtype=torch.float64), -w[: N // 2].flip(-1))
    Vh = V.conj().transpose(0, 1)
    return lam, Vh @ P.to(V.dtype), Vh @ B.to(V.dtype), V


# --- the kernel -------------------------------------------------------------------------------

def _full(x: torch.Tensor) -> torch.Tensor:
    """(..., M) -> (..., 2M): the conjugate half appended."""
    return torch.cat([x, x.conj()], dim=-1)


def discretize(lam, P, B, Ct, dt, L: int):
    """Dense bilinear discretization of the full DPLR system (complex128):
    (Abar (H, N, N), Bbar (H, N), C (H, N)) with C = Ctilde (I - Abar^L)^-1."""
    lam, P, B, Ct = (_full(t.to(torch.complex128)) for t in (lam, P, B, Ct))          # (H, N)
    dt = dt.to(torch.float64)[:, None, None]
    N = lam.shape[-1]
    I = torch.eye(N, dtype=torch.complex128, device=lam.device)
    A = torch.diag_embed(lam) - P[..., :, None] * P.conj()[..., None, :]               # (H, N, N)
    back = I - dt / 2 * A
    Abar = torch.linalg.solve(back, I + dt / 2 * A)
    Bbar = torch.linalg.solve(back, dt[..., 0] * B)                                    # (H, N)
    C = torch.linalg.solve((I - torch.linalg.matrix_power(Abar, L)).transpose(-1, -2), Ct)  # C (I - Abar^L) = Ct
    return Abar, Bbar, C


def s4_kernel_ref(lam, P, B, Ct, dt, L: int, T: int | None = None) -> torch.Tensor:
    """K_k = Re(C Abar^k Bbar), k = 0..T-1, by materializing Abar and powering it (complex128):
    a loop over k.  lam, P, B, Ct: (H, M) complex; dt (H,) -> K (H, T) float64."""
    Abar, x, C = discretize(lam, P, B, Ct, dt, L)
    ks = []
    for _ in range(L if T is None else T):
        ks.append((C * x).sum(-1).real)
        x = (Abar @ x[..., None])[..., 0]                                              # Abar^{k+1} Bbar
    return torch.stack(ks, dim=-1)


def s4_kernel(lam, P, B, Ct, dt, L: int, T: int | None = None) -> torch.Tensor:
    """The same K by Algorithm 1 (Cauchy kernel + Woodbury at the roots of unity, then iFFT), in
    the dtype of the parameters. Same signature and returns as `s4_kernel_ref`."""
    z = torch.exp(-2j * math.pi * torch.arange(L // 2 + 1, device=lam.device, dtype=lam.real.dtype) / L)
    z = z.to(lam.dtype)                                                                # (J,) rfft nodes
    one_p = 1 + z
    g = (2 / dt)[:, None] * (1 - z)                                                    # (H, J)
    Pc = P.conj()
    v = torch.stack([Ct * B, Ct * P, Pc * B, Pc * P])                                  # (4, H, M)
    r = (torch.einsum("ahm,hmj->ahj", v, 1 / (g[:, None] - one_p * lam[..., None]))
         + torch.einsum("ahm,hmj->ahj", v.conj(), 1 / (g[:, None] - one_p * lam.conj()[..., None])))
    k00, k01, k10, k11 = r                                                             # (H, J) each
    Khat = 2 * (k00 - one_p * k01 * k10 / (1 + one_p * k11))
    K = torch.fft.irfft(Khat, n=L)                                                     # (H, L)
    return K if T is None else K[:, :T]


# --- the layer --------------------------------------------------------------------------------

class S4Mixer(DiagonalSSM):
    """y = K * u + D u, K from the DPLR SSM; GELU, linear, GLU (from `DiagonalSSM`)."""

    def __init__(self, cfg: S4Config, layer_idx: int = 0):
        H, N = cfg.d_model, cfg.d_state
        super().__init__(H, N)                         # the state: all N modes of the DPLR basis
        self.L = cfg.l_max
        lam, p, b, _ = nplr_legs(N)
        ex = lambda t: t.expand(H, N // 2).clone()                                     # noqa: E731
        self.log_dt = nn.Parameter(torch.log(log_uniform(H, cfg.dt_min, cfg.dt_max)))  # (H,)
        self.log_lambda_re = nn.Parameter(ex(torch.log(-lam.real)).float())           # Re Lambda = -1/2
        self.lambda_im = nn.Parameter(ex(lam.imag).float())
        self.P = nn.Parameter(torch.view_as_real(ex(p).to(torch.complex64)))          # (H, M, 2)
        self.B = nn.Parameter(torch.view_as_real(ex(b).to(torch.complex64)))
        C = torch.randn(H, N // 2, dtype=torch.complex64)
        with torch.no_grad():                                                          # Ctilde = C (I - Abar^L)
            Abar, _, _ = discretize(ex(lam), ex(p), ex(b), C, self.log_dt.exp(), self.L)
            AL = torch.linalg.matrix_power(Abar, self.L)                               # (H, N, N)
            Cf = _full(C.to(torch.complex128))
            Ct = Cf - (Cf[:, None, :] @ AL)[:, 0]
        self.C = nn.Parameter(torch.view_as_real(Ct[:, : N // 2].to(torch.complex64).contiguous()))

    def params(self):
        """(Lambda, p, B, Ctilde) complex (H, M) and Delta (H,)."""
        lam = torch.complex(-torch.exp(self.log_lambda_re), self.lambda_im)
        vc = torch.view_as_complex
        return lam, vc(self.P), vc(self.B), vc(self.C), torch.exp(self.log_dt)

    def kernel(self, T: int) -> torch.Tensor:
        if T > self.L:
            raise ValueError(f"S4 defines its kernel (Ctilde) at l_max={self.L} taps; a sequence of {T} "
                             f"positions is longer: raise l_max")
        return s4_kernel(*self.params(), self.L, T)                                    # (H, T)

    def step(self, u_t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        Abar, Bbar, C = discretize(*self.params(), self.L)                             # (H, N, N), (H, N)
        x = (Abar @ x[..., None])[..., 0] + Bbar * u_t.to(torch.float64)[..., None]   # (B, H, N)
        y = (C * x).sum(-1).real.to(u_t.dtype)                                         # (B, H)
        return self._finish(y + u_t * self.D), x


class S4(MixerLM):
    mixer_cls = S4Mixer

    def __init__(self, cfg: S4Config):
        super().__init__(cfg)
