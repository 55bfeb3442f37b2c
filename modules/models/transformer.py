"""A causal Transformer (decoder-only, pre-norm), with a choice of positional scheme.

    h_0 = embed(x) (+ position embedding for `learned` and `sinusoidal`)
    h_l = h_{l-1} + Attn(LN(h_{l-1}));  h_l = h_l + MLP(LN(h_l))
    logits = W_out LN(h_L)

Positional schemes (`pos`):
  learned     a trained table of `max_len` vectors added to the input (GPT-2)
  sinusoidal  the fixed sin/cos table of Vaswani et al. 2017, added to the input
  rope        rotary embeddings of queries and keys (Su et al. 2021, the GPT-NeoX "rotate half" form)
  alibi       a linear bias -m_h (i - j) on the attention scores (Press et al. 2022)
  hard_alibi  Jelassi et al. 2024 ("Repeat After Me", section 4): head h < hard_alibi_heads sees
              only the last h + 1 positions (bias 0 inside the window, -inf beyond it), as in
              the authors' hard_alibi_model.py; the other heads are NoPE (no positional signal)
  none        no positional signal; causal masking alone carries order (Haviv et al. 2022)

`qk_norm: true` normalizes each head's queries and keys with a LayerNorm of their own (learned gain,
no bias) before the scores, as Dehghani et al. 2023 (ViT-22B) do: a query then weighs keys by
direction, not by their norms (Wang, Shi & Fox 2025 show softmax attention is a proper local
constant regressor only so).

Attention runs through torch's scaled_dot_product_attention: with `is_causal` for every
scheme but the two ALiBis, which need their bias as an explicit float mask. `step()` decodes one token
with a key-value cache and equals `forward` position by position.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import require
from .common import MLP, SeqInput, SeqIOConfig, check_int


@dataclass
class TransformerConfig(SeqIOConfig):
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    d_ff: int | None = None        # MLP width; default 4 * d_model
    dropout: float = 0.0
    pos: Literal["learned", "sinusoidal", "rope", "alibi", "hard_alibi", "none"] = "learned"
    hard_alibi_heads: int | None = None   # hard_alibi: heads with a window (h + 1); default n_head // 2
    max_len: int = 2048            # length of the learned position table (other schemes have no limit)
    rope_base: float = 10000.0
    bias: bool = True
    qk_norm: bool = False          # LayerNorm (gain only) of each head's queries and keys

    def __post_init__(self):
        self.check_io()
        for key in ("n_layer", "n_head", "d_model", "max_len"):
            check_int(self, key)
        require(self.d_model % self.n_head == 0, "n_head", f"{self.n_head} must divide d_model={self.d_model}")
        require(self.pos != "rope" or (self.d_model // self.n_head) % 2 == 0, "pos",
                f"rope needs an even head size; d_model / n_head = {self.d_model // self.n_head}")
        require(self.d_ff is None or self.d_ff >= 1, "d_ff", f"{self.d_ff} must be at least 1")
        require(0.0 <= self.dropout < 1.0, "dropout", f"{self.dropout} must be in [0, 1)")
        require(self.rope_base > 1.0, "rope_base", f"{self.rope_base} must be above 1")
        require(self.hard_alibi_heads is None or self.pos == "hard_alibi", "hard_alibi_heads",
                f"only applies with pos: hard_alibi (pos is {self.pos!r})")
        if self.pos == "hard_alibi" and self.hard_alibi_heads is None:
            self.hard_alibi_heads = self.n_head // 2
        require(self.hard_alibi_heads is None or 0 <= self.hard_alibi_heads <= self.n_head, "hard_alibi_heads",
                f"{self.hard_alibi_heads} must be between 0 and n_head={self.n_head}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model


# ---------------------------------------------------------------------------------------------
# positions

def sinusoidal_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """PE[t, 2i] = sin(t / 10000^(2i/D)), PE[t, 2i+1] = cos(t / 10000^(2i/D)); (T,) -> (T, D)."""
    i = torch.arange(0, d_model, 2, device=positions.device, dtype=torch.float32)
    angle = positions.float()[:, None] / (10000.0 ** (i / d_model))[None]              # (T, ceil(D/2))
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)[:, :d_model]     # (T, D)


def rope_cos_sin(positions: torch.Tensor, head_size: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = base ** (-torch.arange(0, head_size, 2, device=positions.device, dtype=torch.float32) / head_size)
    angle = positions.float()[:, None] * inv_freq[None]                                # (T, K/2)
    return angle.cos()[:, None, :], angle.sin()[:, None, :]                            # (T, 1, K/2) each


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+K/2}) by angle t * theta_i; x is (B, T, H, K) with cos, sin (T, 1, K/2),
    or (B, T, 2, H, K), queries and keys at once, with cos, sin (T, 1, 1, K/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)                                                # (B, T, H, K/2)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """The head slopes of Press et al. 2022: a geometric sequence starting at 2^(-8/n); for a
    head count that is not a power of two, the extra heads interleave the next power's slopes."""
    def pow2(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]
    if math.log2(n_head).is_integer():
        return torch.tensor(pow2(n_head))
    c = 2 ** math.floor(math.log2(n_head))
    return torch.tensor(pow2(c) + pow2(2 * c)[0::2][: n_head - c])


def alibi_mask(slopes: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """Float attention mask: -m_h (i - j) where key j <= query i, -inf after it; (H, Tq, Tk)."""
    dist = (q_pos[:, None] - k_pos[None, :]).float()                                   # (Tq, Tk)
    bias = -slopes.to(dist.device)[:, None, None] * dist[None]                         # (H, Tq, Tk)
    return bias.masked_fill(dist[None] < 0, float("-inf"))


def hard_alibi_mask(windows: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """Float attention mask: 0 where i - windows_h < j <= i, -inf elsewhere; a window of 0 means no
    limit (a NoPE head). windows (H,); returns (H, Tq, Tk)."""
    dist = (q_pos[:, None] - k_pos[None, :]).float()                                   # (Tq, Tk)
    w = windows.to(dist.device).float()[:, None, None]                                 # (H, 1, 1)
    out = (dist[None] < 0) | ((w > 0) & (dist[None] >= w))                             # (H, Tq, Tk)
    return torch.zeros(out.shape, device=dist.device).masked_fill(out, float("-inf"))


# ---------------------------------------------------------------------------------------------
# blocks

class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_head, self.head_size = cfg.n_head, cfg.d_model // cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.q_norm = nn.LayerNorm(self.head_size, bias=False) if cfg.qk_norm else None
        self.k_norm = nn.LayerNorm(self.head_size, bias=False) if cfg.qk_norm else None
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, ctx: dict, cache: tuple | None = None):
        """x (B, T, D); ctx holds the rope angles or the ALiBi mask; cache is (k, v) of the
        positions before x, each (B, H, S, K). Returns (y, (k, v) including x's positions)."""
        B, T, D = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_size)                  # (B, T, 3, H, K)
        qk, v = qkv[:, :, :2], qkv[:, :, 2]                                            # (B, T, 2, H, K), (B, T, H, K)
        if self.q_norm is not None:
            qk = torch.stack([self.q_norm(qk[:, :, 0]), self.k_norm(qk[:, :, 1])], 2)
        if "rope" in ctx:
            # queries and keys rotated in one pass: the same products element by element, half the ops
            qk = apply_rope(qk, *(c[:, None] for c in ctx["rope"]))                   # cos, sin (T, 1, 1, K/2)
        q, k, v = (t.transpose(1, 2) for t in (*qk.unbind(2), v))                      # (B, H, T, K)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)   # (B, H, S+T, K)
        mask = ctx.get("alibi")
        # a cached single query sees every key, so it needs no causal mask
        causal = mask is None and cache is None and T > 1
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, K)
        y = y.transpose(1, 2).reshape(B, T, D)                                         # (B, T, D)
        return self.resid_drop(self.proj(y)), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, cfg.bias, cfg.dropout)

    def forward(self, x: torch.Tensor, ctx: dict, cache: tuple | None = None):
        a, kv = self.attn(self.ln1(x), ctx, cache)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, kv                                                                   # (B, T, D)


# ---------------------------------------------------------------------------------------------
# model

class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = SeqInput(cfg, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.pos == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.out_size, bias=False)
        if cfg.pos == "alibi":
            self.register_buffer("slopes", alibi_slopes(cfg.n_head), persistent=False)
        if cfg.pos == "hard_alibi":
            windows = [h + 1 if h < cfg.hard_alibi_heads else 0 for h in range(cfg.n_head)]
            self.register_buffer("windows", torch.tensor(windows), persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):   # residual projections, scaled as in GPT-2
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def _embed(self, x: torch.Tensor, positions: torch.Tensor, last: int) -> tuple[torch.Tensor, dict]:
        """Input embedding plus whatever the positional scheme adds, and the per-layer context.
        `last` is positions[-1] as a Python int (no tensor read: torch.compile needs no graph break)."""
        cfg = self.cfg
        h = self.inp(x)                                                                # (B, T, D)
        ctx: dict = {}
        if cfg.pos == "learned":
            if last >= cfg.max_len:
                raise ValueError(f"position {last} is beyond the learned table (max_len="
                                 f"{cfg.max_len}); raise max_len or use another positional scheme")
            h = h + self.wpe(positions)                                                # (T, D) broadcast
        elif cfg.pos == "sinusoidal":
            h = h + sinusoidal_table(positions, cfg.d_model).to(h.dtype)
        elif cfg.pos == "rope":
            ctx["rope"] = rope_cos_sin(positions, cfg.d_model // cfg.n_head, cfg.rope_base)
        elif cfg.pos == "alibi":
            k_pos = torch.arange(last + 1, device=positions.device)
            ctx["alibi"] = alibi_mask(self.slopes, positions, k_pos).to(h.dtype)      # (H, T, S)
        elif cfg.pos == "hard_alibi":
            k_pos = torch.arange(last + 1, device=positions.device)
            ctx["alibi"] = hard_alibi_mask(self.windows, positions, k_pos).to(h.dtype)  # (H, T, S)
        return self.drop(h), ctx

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        T = x.shape[1]
        h, ctx = self._embed(x, torch.arange(T, device=x.device), T - 1)
        hiddens = []
        for block in self.blocks:
            h, _ = block(h, ctx)
            hiddens.append(h)                                                          # (B, T, D)
        logits = self.head(self.ln_f(h))                                               # (B, T, V)
        return (logits, hiddens) if return_hidden else logits

    # --- incremental decoding ---------------------------------------------------------------

    def init_state(self, batch_size: int) -> dict:
        """An empty key-value cache: position 0, no keys yet."""
        return {"t": 0, "kv": [None] * self.cfg.n_layer}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One position: x_t is (B,) token ids or (B, d_input); returns logits (B, V) and the
        state with this position's keys and values appended."""
        t = state["t"]
        h, ctx = self._embed(x_t.unsqueeze(1), torch.tensor([t], device=x_t.device), int(t))  # (B, 1, D)
        kv = []
        for block, cache in zip(self.blocks, state["kv"]):
            h, c = block(h, ctx, cache)
            kv.append(c)
        return self.head(self.ln_f(h))[:, 0], {"t": t + 1, "kv": kv}                  # (B, V)
