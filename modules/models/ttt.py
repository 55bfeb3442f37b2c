"""TTT: test-time training layers, TTT-Linear and TTT-MLP (Sun et al. 2024, "Learning to (Learn at
Test Time): RNNs with Expressive Hidden States", arXiv:2407.04620, Section 2).

Per head (n_head heads of K = d_model / n_head) the hidden state is the weights W of an inner
model, and the update rule is a gradient step on a self-supervised loss:
    k_t, v_t, q_t = theta_K x_t, theta_V x_t, theta_Q x_t         the training, label and test views
    l(W; x_t) = || f(k_t; W) - v_t ||^2
    f(k; W) = k + LN(g(k; W))        inner_norm: true, the paper's residual + LayerNorm form (LN per
            = g(k; W)                inner_norm: false          head, learnable, eps 1e-6)
    g(k) = k W + b                   inner: linear  (TTT-Linear, W: K x K)
         = gelu(k W1 + b1) W2 + b2   inner: mlp     (TTT-MLP, hidden 4K; exact GELU is ours, the
                                                     official code uses the tanh approximation)
Mini-batch gradient descent with mini-batch size b = mini_batch: for t in mini-batch i,
    W_t = W_{i-1} - c_t sum_{s in i, s <= t} eta_s grad l(W_{i-1}; x_s),    W_i = W_t of its last t
    z_t = f(q_t; W_t)                                               the output rule
b = 1 is online GD, b >= T batch GD (one mini-batch spanning the sequence). A short last mini-batch
is a mini-batch. eta_s = eta_base sigmoid(theta_lr,h . x_s + beta_h) / K per head (the learnable
rate; eta_learnable: false makes it eta_base / K). c_t = 1 / (t's position in its mini-batch) with
prefix_mean: true (W_t then follows the mean of the mini-batch's gradients so far), else 1.
W_0 (and b_0) is learned, drawn N(0, 0.02) (b_0 = 0), or fixed at 0 (w0: zero; linear only: an MLP
started at 0 gets no gradient). Output: out_proj(LN_D(z)) (post_norm over d_model; optional).

Theorem 1 (Sec. 2.6): with f(k) = W k (inner: linear, inner_norm: false, inner_bias: false), W_0 = 0,
batch GD and a fixed eta, z_t = 2 eta sum_{s<=t} v_s (k_s . q_t): linear attention, exactly so for
eta = 1/2 (eta_base = K / 2 with eta_learnable: false, prefix_mean: false); tests/modules/test_ttt.py.

`forward` runs each mini-batch in the dual form (Sec. 2.5): every layer of g has the weight gradient
X^T G (X its inputs on the keys, G the loss gradient at its output, both at W_{i-1}), so with
M[t, s] = c_t eta_s [s <= t] its output on the queries' side is Xq W - (M * Xq X^T) G + b - M G.
`step` is the primal form: the state holds W_{i-1}, sum_s eta_s grad l(W_{i-1}; x_s) of the current
mini-batch and the position in it, and applies the step at the mini-batch's end.

Checked against the official code (test-time-training/ttt-lm-pytorch ttt.py, ttt-lm-jax): the
target v - k inside f's residual, the LN, W_0 ~ N(0, 0.02), eta's gate (N(0, 0.02), bias 0) and
its 1/K, the 1/position scale (there with a learnable offset, left out here), eta_base 1 (linear)
and 0.1 (mlp) of the JAX training scripts (whose warm-up of it for the mlp is left out), the
post-norm over the full width. The loss is the paper's
||.||^2; the official code's gradient is that of 1/2 ||.||^2, so its ttt_base_lr is 2 x our eta_base.
Ours / left out: RoPE on q and k within a mini-batch, the gate and the Mamba-style backbone
options, PyTorch's default init of the projections. Checked against the paper's text: Sections
2.4 (mini-batch TTT, b = 16), 2.5 (dual form), 2.6 (Theorem 1: batch GD, W_0 = 0, eta = 1/2), the
output rule z_t = f(theta_Q x_t; W_t) with W_t after token t's own gradient, eta_base 1 and 0.1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import require
from .common import check_int
from .mixer_lm import MixerLM, MixerLMConfig, split_heads

LN_EPS = 1e-6


@dataclass
class TTTConfig(MixerLMConfig):
    n_head: int = 4
    inner: Literal["linear", "mlp"] = "linear"      # TTT-Linear or TTT-MLP
    inner_norm: bool = True        # f(k) = k + LN(g(k)) (the paper's); false: f = g
    inner_bias: bool = True        # g has biases (the official code's); false: g(k) = k W (Theorem 1)
    mini_batch: int = 16           # b; 1: online GD; >= the sequence length: batch GD
    eta_base: float | None = None  # default 1.0 (linear), 0.1 (mlp)
    eta_learnable: bool = True     # eta_s = eta_base sigmoid(theta_lr . x_s) / K; false: eta_base / K
    prefix_mean: bool = True       # c_t = 1 / position in the mini-batch; false: 1
    w0: Literal["learned", "zero"] = "learned"
    post_norm: bool = True         # LayerNorm over d_model before the output projection

    def __post_init__(self):
        super().__post_init__()
        check_int(self, "n_head")
        require(self.d_model % self.n_head == 0, "n_head", f"{self.n_head} must divide d_model={self.d_model}")
        check_int(self, "mini_batch")
        if self.eta_base is None:
            self.eta_base = 1.0 if self.inner == "linear" else 0.1
        require(self.eta_base > 0, "eta_base", f"{self.eta_base} must be above 0")
        require(self.w0 == "learned" or self.inner == "linear", "w0",
                "zero needs inner: linear (an MLP started at W = 0 gets no gradient)")


def _gelu_grad(h: torch.Tensor) -> torch.Tensor:
    """d gelu(h) / dh for the exact (erf) GELU: Phi(h) + h phi(h)."""
    return 0.5 * (1 + torch.erf(h / math.sqrt(2))) + h * torch.exp(-0.5 * h * h) / math.sqrt(2 * math.pi)


class TTTMixer(nn.Module):
    def __init__(self, cfg: TTTConfig, layer_idx: int = 0):
        super().__init__()
        D, H = cfg.d_model, cfg.n_head
        self.H, self.K, self.b = H, D // H, cfg.mini_batch
        self.eta_base, self.prefix_mean = cfg.eta_base, cfg.prefix_mean
        self.qkv = nn.Linear(D, 3 * D, bias=False)
        self.lr = nn.Linear(D, H) if cfg.eta_learnable else None                      # theta_lr, beta per head
        if self.lr is not None:
            nn.init.normal_(self.lr.weight, std=0.02)
            nn.init.zeros_(self.lr.bias)
        dims = [self.K, self.K] if cfg.inner == "linear" else [self.K, 4 * self.K, self.K]
        self.n_inner = len(dims) - 1
        for i, (d_in, d_out) in enumerate(pairwise(dims)):        # W_0: (H, in, out), b_0: (H, out)
            W, bias = torch.randn(H, d_in, d_out) * 0.02, torch.zeros(H, d_out)
            if cfg.w0 == "learned":
                self.register_parameter(f"W{i}", nn.Parameter(W))
                self.register_parameter(f"b{i}", nn.Parameter(bias) if cfg.inner_bias else None)
            else:
                self.register_buffer(f"W{i}", torch.zeros_like(W))
                self.register_buffer(f"b{i}", bias if cfg.inner_bias else None)
        self.ln_w = nn.Parameter(torch.ones(H, self.K)) if cfg.inner_norm else None    # the inner LN, per head
        self.ln_b = nn.Parameter(torch.zeros(H, self.K)) if cfg.inner_norm else None
        self.post_norm = nn.LayerNorm(D, eps=LN_EPS) if cfg.post_norm else None
        self.out_proj = nn.Linear(D, D, bias=False)

    # --- the inner model: params is [(W, b)] per layer, W (B, H, in, out), b (B, H, out) or None ---

    def _w0(self, batch: int) -> list:
        def bx(p):
            return None if p is None else p.expand(batch, *p.shape)
        return [(bx(getattr(self, f"W{i}")), bx(getattr(self, f"b{i}"))) for i in range(self.n_inner)]

    def _ln(self, z: torch.Tensor):
        mu, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
        std = torch.sqrt(var + LN_EPS)
        xhat = (z - mu) / std
        return xhat * self.ln_w[:, None] + self.ln_b[:, None], xhat, std              # (B, H, n, K)

    def _f(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f from g's output z on input x."""
        return z if self.ln_w is None else x + self._ln(z)[0]

    def _g(self, params: list, x: torch.Tensor):
        """g on x (B, H, n, K): each layer's input and pre-activation."""
        xs, hs = [], []
        for i, (W, b) in enumerate(params):
            xs.append(x)
            h = x @ W + (0 if b is None else b[:, :, None])
            hs.append(h)
            x = F.gelu(h) if i < self.n_inner - 1 else h
        return xs, hs

    def _grads(self, params: list, k: torch.Tensor, v: torch.Tensor):
        """Each layer's input X and loss gradient at its output G, per token, at `params`."""
        xs, hs = self._g(params, k)
        z = hs[-1]
        if self.ln_w is None:
            g = 2 * (z - v)
        else:
            y, xhat, std = self._ln(z)
            gx = 2 * (k + y - v) * self.ln_w[:, None]                                    # through LN's scale
            g = (gx - gx.mean(-1, keepdim=True) - xhat * (gx * xhat).mean(-1, keepdim=True)) / std
        gs = [g]
        for i in range(self.n_inner - 1, 0, -1):                                        # back through the MLP
            g = (g @ params[i][0].transpose(-1, -2)) * _gelu_grad(hs[i - 1])
            gs.insert(0, g)
        return xs, gs

    def _views(self, x: torch.Tensor):
        q, k, v = (split_heads(t, self.H).transpose(-3, -2) for t in self.qkv(x).chunk(3, -1))  # (B, H, T, K)
        gate = torch.ones_like(q[..., 0]) if self.lr is None else torch.sigmoid(self.lr(x)).transpose(-1, -2)
        return q, k, v, self.eta_base / self.K * gate                                             # eta (B, H, T)

    def _out(self, z: torch.Tensor) -> torch.Tensor:
        z = z.transpose(-3, -2).flatten(-2)                                              # (B, T, D)
        return self.out_proj(z if self.post_norm is None else self.post_norm(z))

    # --- the two forms ---

    def inner_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """z_t = f(q_t; W_t) for x (B, T, D), as (B, H, T, K): the dual form, mini-batch by mini-batch."""
        q, k, v, eta = self._views(x)
        params, outs = self._w0(x.shape[0]), []
        for s in range(0, x.shape[1], self.b):
            qc, kc, vc, ec = (t[:, :, s:s + self.b] for t in (q, k, v, eta))
            n = qc.shape[2]
            c = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
            c = 1 / c if self.prefix_mean else torch.ones_like(c)
            M = torch.tril(c[:, None] * ec[..., None, :])                   # (B, H, n, n): c_t eta_s [s <= t]
            last = M[..., -1, :, None]                                      # (B, H, n, 1): c_n eta_s
            xs, gs = self._grads(params, kc, vc)
            h, new = qc, []
            for i, ((W, b), X, G) in enumerate(zip(params, xs, gs)):
                if i > 0:
                    h = F.gelu(h)
                h = h @ W - (M * (h @ X.transpose(-1, -2))) @ G                # q W_t, from W_{i-1}
                if b is not None:
                    h = h + b[:, :, None] - M @ G
                new.append((W - X.transpose(-1, -2) @ (last * G), None if b is None else b - (last * G).sum(-2)))
            outs.append(self._f(qc, h))
            params = new
        return torch.cat(outs, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._out(self.inner_outputs(x))                                         # (B, T, D)

    @staticmethod
    def _zeros(params: list) -> list:
        return [(torch.zeros_like(W), None if b is None else torch.zeros_like(b)) for W, b in params]

    def init_state(self, batch_size: int, device) -> tuple:
        params = [(W.to(device), None if b is None else b.to(device)) for W, b in self._w0(batch_size)]
        return params, self._zeros(params), 0                          # W_{i-1}, sum eta_s grad, position

    def step(self, x_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        params, sums, pos = state
        q, k, v, eta = self._views(x_t[:, None])                                         # (B, H, 1, *)
        xs, gs = self._grads(params, k, v)
        e, pos = eta[..., None], pos + 1                                                 # (B, H, 1, 1)
        sums = [(sW + X.transpose(-1, -2) @ (e * G), None if sb is None else sb + (e * G)[:, :, 0])
                for (sW, sb), X, G in zip(sums, xs, gs)]
        c = 1 / pos if self.prefix_mean else 1.0
        now = [(W - c * sW, None if b is None else b - c * sb) for (W, b), (sW, sb) in zip(params, sums)]
        z = self._f(q, self._g(now, q)[1][-1])                                          # f(q_t; W_t)
        if pos == self.b:                                                               # the mini-batch ends
            params, sums, pos = now, self._zeros(now), 0
        return self._out(z)[:, 0], (params, sums, pos)


class TTT(MixerLM):
    mixer_cls = TTTMixer

    def __init__(self, cfg: TTTConfig):
        super().__init__(cfg)
