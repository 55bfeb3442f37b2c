"""A hybrid stack that interleaves mixers layer by layer (Samba, Ren et al. 2024: Mamba, then
sliding-window attention, each followed by an MLP; also Jamba- or H3-style mixes).

`pattern` names each layer's mixer, as a comma-separated string ("mamba,attention") or a list;
it is repeated to fill n_layer (n_layer must be a multiple of its length) or, when as long as
n_layer, used as is. A mixer is any state-space / linear-attention arch of the zoo (s4d, dss,
lru, mamba, mamba2, linear_attention, gla, deltanet) or `attention`: the transformer's causal
self-attention block (transformer.py's CausalSelfAttention) with RoPE, ALiBi or no positions and
an optional sliding `window` (Samba's SWA), or `ngram`: a hard-wired n-gram head (ngram_head.py;
Akyürek et al. 2024), a fixed attention from each position to the tokens that followed earlier
occurrences of its last n - 1 tokens, with learned value and direct maps; options `n` (the order,
2: match the previous token) and `direct` (true). A stack can hold heads of several orders under
the names `ngram2`, `ngram3`, ... (`ngram<n>`, n fixed by the name; `mixers.ngram3` takes the other
options). The authors' RetNet hybrid, one recurrent layer, heads of orders 2, 3, 4, four more
recurrent layers, reads pattern "gla,ngram2,ngram3,ngram4,gla,gla,gla,gla" with n_layer 8 (gla
with `decay: fixed` is RetNet's decay). An n-gram head reads the input token ids, which the model
hands it, so it needs token inputs (vocab_size).
`mixers` holds each mixer's own options, checked by that arch's config, e.g.
    {arch: hybrid, pattern: "mamba,attention", n_layer: 4,
     mixers: {mamba: {d_state: 16}, attention: {n_head: 4, window: 64}}}
d_model, n_layer, d_ff and dropout are the stack's and are set at the top level only.
Every layer steps (attention with a key-value cache, cut to the window; an n-gram head with the
ids and hidden states seen so far), so `step` equals `forward`.
"""
from __future__ import annotations

import dataclasses
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn

from ..config import ConfigError, build_config, require
from . import get_arch
from .mixer_lm import MixerLM, MixerLMConfig
from .ngram_head import NGramHead, NGramHeadConfig
from .transformer import CausalSelfAttention, TransformerConfig, alibi_mask, alibi_slopes, rope_cos_sin

MIXER_ARCHS = ("s4d", "dss", "lru", "mamba", "mamba2", "linear_attention", "gla", "deltanet")
MIXERS = ("attention", "ngram") + MIXER_ARCHS
NGRAM_NAME = re.compile(r"ngram([1-9][0-9]*)")          # ngram<n>: an n-gram head of order n


def ngram_order(name: str) -> int | None:
    """n for a pattern name `ngram<n>`, None for any other name (`ngram` takes n from its options)."""
    match = NGRAM_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def is_ngram(name: str) -> bool:
    return name == "ngram" or ngram_order(name) is not None


@dataclass
class AttentionMixerConfig:
    n_head: int = 4
    pos: Literal["rope", "alibi", "none"] = "rope"
    window: int | None = None      # sliding-window attention over the last `window` positions; None: full
    rope_base: float = 10000.0
    bias: bool = True

    def __post_init__(self):
        require(self.window is None or self.window >= 1, "window", f"{self.window} must be at least 1")


@dataclass
class HybridConfig(MixerLMConfig):
    pattern: str | list = "mamba,attention"
    mixers: dict | None = None     # mixer name -> its options
    layers: list = field(init=False, default_factory=list)          # the mixer of every layer
    mixer_cfgs: dict = field(init=False, default_factory=dict)      # mixer name -> its typed config

    def __post_init__(self):
        super().__post_init__()
        names = self.pattern.split(",") if isinstance(self.pattern, str) else self.pattern
        require(isinstance(names, list) and all(isinstance(n, str) for n in names) and names, "pattern",
                f"{self.pattern!r} must be a comma-separated string or a list of mixer names")
        names = [n.strip() for n in names]
        for n in names:
            require(n in MIXERS or ngram_order(n) is not None, "pattern",
                    f"{n!r} is not a mixer; known: {', '.join(MIXERS)}, ngram<n> (ngram2, ngram3, ...)")
            require(ngram_order(n) is None or ngram_order(n) >= 2, "pattern",
                    f"{n!r}: an n-gram head's order is at least 2 (ngram2 matches the previous token)")
            require(not is_ngram(n) or self.vocab_size is not None, "pattern",
                    f"{n!r} reads the input token ids; it needs token inputs (vocab_size), not d_input")
        if len(names) != self.n_layer:
            require(self.n_layer % len(names) == 0, "n_layer",
                    f"{self.n_layer} layers cannot repeat a pattern of {len(names)} ({','.join(names)}); "
                    f"use a multiple of {len(names)} or list every layer")
            names = names * (self.n_layer // len(names))
        self.layers = names
        options = self.mixers or {}
        require(isinstance(options, dict), "mixers", f"{options!r} must map mixer names to their options")
        for n, opts in options.items():
            require(n in names, f"mixers.{n}", f"is not in the pattern ({','.join(dict.fromkeys(names))})")
            require(isinstance(opts, dict), f"mixers.{n}", f"{opts!r} must be a mapping of options")
        block_keys = {f.name for f in dataclasses.fields(MixerLMConfig)}
        self.mixer_cfgs = {n: self._mixer_cfg(n, options.get(n, {}), block_keys) for n in dict.fromkeys(names)}

    def _mixer_cfg(self, name: str, opts: dict, block_keys: set) -> Any:
        for k in opts:
            if k in ("train_state", "train_state_scale", "tbptt"):
                require(False, f"mixers.{name}.{k}", "is not offered by hybrid stacks (lru and mamba2 alone offer it)")
            require(k not in block_keys, f"mixers.{name}.{k}", "is a setting of the whole stack; set it at the top level")
        try:
            if is_ngram(name):
                order = ngram_order(name)
                if order is not None and "n" in opts:
                    require(opts["n"] == order, "n", f"{opts['n']!r} contradicts the pattern name {name!r} "
                                                     f"(n = {order}); drop n, or name the mixer ngram{opts['n']}")
                return build_config(NGramHeadConfig, {**opts, "n": order} if order is not None else opts)
            if name == "attention":
                cfg = build_config(AttentionMixerConfig, opts)
                TransformerConfig(vocab_size=1, n_head=cfg.n_head, d_model=self.d_model, pos=cfg.pos,
                                  rope_base=cfg.rope_base)                                  # its checks (head size)
                return cfg
            _, cfg_cls = get_arch(name)
            io = {"vocab_size": self.vocab_size, "d_input": self.d_input, "d_output": self.d_output}
            return build_config(cfg_cls, {**io, "d_model": self.d_model, "n_layer": 1, "d_ff": 0, **opts})
        except ConfigError as e:
            raise ConfigError(f"mixers.{name}.{e.key}" if e.key else f"mixers.{name}", e.message) from None


class AttentionMixer(nn.Module):
    """The transformer's attention as a mixer: positions from RoPE or ALiBi, an optional window."""

    def __init__(self, cfg: AttentionMixerConfig, d_model: int, dropout: float = 0.0):
        super().__init__()
        tcfg = TransformerConfig(vocab_size=1, n_head=cfg.n_head, d_model=d_model, dropout=dropout,
                                 pos=cfg.pos, rope_base=cfg.rope_base, bias=cfg.bias)
        self.attn = CausalSelfAttention(tcfg)
        self.pos, self.window, self.rope_base = cfg.pos, cfg.window, cfg.rope_base
        self.head_size = d_model // cfg.n_head
        if cfg.pos == "alibi":
            self.register_buffer("slopes", alibi_slopes(cfg.n_head), persistent=False)

    def _ctx(self, q_pos: torch.Tensor, k_pos: torch.Tensor, masked: bool) -> dict:
        ctx: dict = {}
        if self.pos == "rope":
            ctx["rope"] = rope_cos_sin(q_pos, self.head_size, self.rope_base)
        if self.pos == "alibi":
            ctx["alibi"] = alibi_mask(self.slopes, q_pos, k_pos)                           # (H, Tq, Tk)
        if masked and self.window is not None:
            dist = q_pos[:, None] - k_pos[None, :]                                         # (Tq, Tk)
            mask = ctx.get("alibi", torch.zeros(dist.shape, device=dist.device))
            # CausalSelfAttention passes ctx["alibi"] to the attention as a float mask, whatever made it
            ctx["alibi"] = mask.masked_fill((dist < 0) | (dist >= self.window), float("-inf"))
        return ctx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1], device=x.device)
        y, _ = self.attn(x, self._ctx(pos, pos, masked=True))
        return y                                                                           # (B, T, D)

    def init_state(self, batch_size: int, device) -> dict:
        return {"t": 0, "kv": None}

    def step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        t, cache = state["t"], state["kv"]
        n_cached = 0 if cache is None else cache[0].shape[2]
        k_pos = torch.arange(t - n_cached, t + 1, device=x_t.device)
        y, (k, v) = self.attn(x_t[:, None], self._ctx(k_pos[-1:], k_pos, masked=False), cache)
        if self.window is not None:                    # the next query sees window - 1 past keys
            drop = max(0, k.shape[2] - (self.window - 1))
            k, v = k[:, :, drop:], v[:, :, drop:]
        return y[:, 0], {"t": t + 1, "kv": (k, v)}


class Hybrid(MixerLM):
    def __init__(self, cfg: HybridConfig):
        def make(i: int) -> nn.Module:
            name = cfg.layers[i]
            if name == "attention":
                return AttentionMixer(cfg.mixer_cfgs[name], cfg.d_model, cfg.dropout)
            if is_ngram(name):
                return NGramHead(cfg.mixer_cfgs[name], cfg.d_model)
            return get_arch(name)[0].mixer_cls(cfg.mixer_cfgs[name], i)

        super().__init__(cfg, make)

    # The n-gram heads read the input token ids, which the mixer interface (hidden states in,
    # hidden states out) does not carry: the model hands them to every head before a forward or a
    # step and takes them back after. A stack without n-gram heads runs MixerLM's code untouched.

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        with self._ids_to_heads(x):
            return super().forward(x, return_hidden)

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        with self._ids_to_heads(x_t[:, None]):     # (B,) ids -> (B, 1)
            return super().step(x_t, state)

    @contextmanager
    def _ids_to_heads(self, ids: torch.Tensor):
        heads = [b.mixer for b in self.blocks if isinstance(b.mixer, NGramHead)]
        if not heads:
            yield
            return
        if ids.is_floating_point():
            raise TypeError("this model reads tokens (integer ids); got a float tensor")
        for head in heads:
            head.feed(ids)
        try:
            yield
        finally:
            for head in heads:
                head.feed(None)
